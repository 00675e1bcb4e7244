"""The report's "Inside the model" section and its model table.

What the network learned, and how sure we can be that the attribution maps tell the truth (faithfulness
measured on 100 test digits).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_json
from digitlab.data.images import to_unit_float
from digitlab.errors import DigitlabError
from digitlab.explain import faithfulness
from digitlab.explain.engine import Explainer, make_explainer
from digitlab.explain.explanation import ModelExplainer
from digitlab.explain.views import model_views

FAITHFULNESS_DIGITS = 100


def png_data_url(path: Path) -> str:
    """A PNG file as a `data:` URL, so the report opens without a server or its folder.

    Args:
        path: a PNG file.

    Returns:
        `data:image/png;base64,...`.
    """
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def layer_rows(model) -> dict[str, Any] | None:
    """Every layer (nested bases expanded) with its type, output shape and parameters, for the report's table.

    Args:
        model: a Keras model, or an imported ONNX network (which has no `layers`).

    Returns:
        `{"rows": [{name, depth, type, shape, parameters}], "parameters": total}`, or None for an ONNX graph.
    """
    if not hasattr(model, "layers"):
        return None
    rows = []

    def walk(m, depth: int) -> None:
        for layer in m.layers:
            shape = getattr(layer, "output", None)
            shape = "×".join(str(d) for d in shape.shape[1:]) if shape is not None else "?"
            rows.append(
                {
                    "name": layer.name,
                    "depth": depth,
                    "type": type(layer).__name__,
                    "shape": shape,
                    "parameters": layer.count_params(),
                }
            )
            if hasattr(layer, "layers"):
                walk(layer, depth + 1)

    walk(model, 0)
    return {"rows": rows, "parameters": model.count_params()}


def faithfulness_summary(explainer: Explainer, images: np.ndarray, cache: Path, digest: str) -> dict[str, Any]:
    """How far the attribution maps can be trusted, on the first 100 images (cached per model file).

    Args:
        explainer: the model's explainer.
        images: (N, 28, 28) uint8 test images; the first `FAITHFULNESS_DIGITS` are used.
        cache: the JSON file that holds the result for `digest`.
        digest: the model file's digest (a changed model recomputes).

    Returns:
        `digits`, the Integrated Gradients completeness error (median, max; relative) and, per method,
        the deletion AUC against random order (`auc`, `random_auc`, `ratio`; lower is better).
    """
    try:
        cached = json.loads(cache.read_text())
        if cached.get("digest") == digest:
            return cached
    except (OSError, ValueError):
        pass
    x = to_unit_float(images[:FAITHFULNESS_DIGITS])
    errors = faithfulness.completeness(explainer, x, steps=64, baseline="black")
    summary = {
        "digest": digest,
        "digits": len(x),
        "ig_completeness_median": float(np.median(errors)),
        "ig_completeness_max": float(errors.max()),
        "deletion": {m: faithfulness.deletion(explainer, x, m, randoms=2) for m in ("ig", "smoothgrad", "layercam")},
    }
    atomic_write_json(cache, summary)
    return summary


def inside_section(loaded, out_dir: Path, images, labels, logits, pairs: list) -> dict[str, Any]:
    """What the report's "Inside the model" section shows (`templates/inside.html.j2` renders it).

    Args:
        loaded: the evaluated `LoadedModel`.
        out_dir: the report folder (the views are written under `inside/`).
        images: (N, 28, 28) uint8 images of the evaluated split.
        labels: (N,) integer classes 0-9.
        logits: (N, 10) float logits of the model on `images`.
        pairs: the most confused pairs, `{"true", "predicted", "count"}` each.

    Returns:
        `{"figures": [(data_url, caption)], "faith": faithfulness_summary(...)}`, or `{"unavailable": why}` for a
        model the explainer cannot read (one sentence in the report, not a failure).
    """
    try:
        explainer = ModelExplainer(loaded, make_explainer(loaded.model))
        views = model_views(explainer, images, labels, logits, out_dir / "inside", pairs)
        faith = faithfulness_summary(
            explainer.explainer, images, out_dir / "inside" / "faithfulness.json", loaded.file_digest()
        )
    except DigitlabError as e:
        return {"unavailable": str(e)}
    return {"figures": [(png_data_url(p), caption) for p, caption in views], "faith": faith}

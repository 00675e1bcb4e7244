"""The report's "Inside the model" section and its model table: what the network learned, and how sure we can
be that the attribution maps tell the truth (faithfulness measured on 100 test digits)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_json
from digitlab.errors import DigitlabError
from digitlab.explain import faithfulness
from digitlab.explain.engine import Explainer, make_explainer
from digitlab.explain.explanation import ModelExplainer
from digitlab.explain.views import model_views

FAITHFULNESS_DIGITS = 100


def png_tag(path: Path, alt: str) -> str:
    """An <img> with the PNG embedded, so the report opens without a server or its folder."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def layer_table(model) -> str:
    """Every layer (nested bases expanded) with its type, output shape and parameters, as an HTML table."""
    if not hasattr(model, "layers"):
        return "<p>An imported ONNX graph, run as its owner saved it: its layers are not listed here.</p>"
    rows = []

    def walk(m, depth: int) -> None:
        for layer in m.layers:
            shape = getattr(layer, "output", None)
            shape = "×".join(str(d) for d in shape.shape[1:]) if shape is not None else "?"
            name = "&nbsp;" * 4 * depth + html.escape(layer.name)
            rows.append(
                f"<tr><td style='text-align:left'>{name}</td><td style='text-align:left'>{type(layer).__name__}</td>"
                f"<td>{shape}</td><td>{layer.count_params():,}</td></tr>"
            )
            if hasattr(layer, "layers"):
                walk(layer, depth + 1)

    walk(model, 0)
    return (
        "<table><tr><th>layer</th><th>type</th><th>output shape</th><th>parameters</th></tr>"
        + "".join(rows)
        + "</table>"
        f"<p>{model.count_params():,} parameters.</p>"
    )


def faithfulness_summary(explainer: Explainer, images: np.ndarray, cache: Path, digest: str) -> dict[str, Any]:
    try:
        cached = json.loads(cache.read_text())
        if cached.get("digest") == digest:
            return cached
    except (OSError, ValueError):
        pass
    x = images[:FAITHFULNESS_DIGITS].astype(np.float32) / 255.0
    errors = faithfulness.completeness(explainer, x, steps=64, baseline="black")
    summary = {
        "digest": digest,
        "digits": len(x),
        "ig_completeness_median": float(np.median(errors)),
        "ig_completeness_max": float(errors.max()),
        "deletion": {m: faithfulness.deletion(explainer, x, m, randoms=2) for m in ("ig", "smoothgrad", "gradcam")},
    }
    atomic_write_json(cache, summary)
    return summary


def inside_section(loaded, out_dir: Path, images, labels, logits, pairs: list) -> str:
    """The HTML of the section; a model the explainer cannot read gets one sentence saying why, not a failure."""
    try:
        explainer = ModelExplainer(loaded, make_explainer(loaded.model))
        views = model_views(explainer, images, labels, logits, out_dir / "inside", pairs)
        faith = faithfulness_summary(explainer.explainer, images, out_dir / "inside" / "faithfulness.json",
                                     loaded.file_digest())  # fmt: skip
    except DigitlabError as e:
        return f"<h2>Inside the model</h2><p>Not available for this model: {html.escape(str(e))}</p>"
    figures = "".join(f"<figure>{png_tag(p, c)}<figcaption>{html.escape(c)}</figcaption></figure>" for p, c in views)
    deletion = "".join(
        f"<tr><td>{m}</td><td>{d['auc']:.3f}</td><td>{d['random_auc']:.3f}</td><td>{d['ratio']:.2f}</td></tr>"
        for m, d in faith["deletion"].items()
    )
    return f"""<h2>Inside the model</h2>
<p>How the network turns a digit into an answer: what its first layer detects, what deeper channels look for,
where digits land in its last hidden layer, and which ink decides each class. <code>digitlab explain IMAGE
--model RUN</code> shows the same for one image; the draw page shows it live.</p>
{figures}
<h3>Can the attribution maps be trusted? (first {faith["digits"]} test digits)</h3>
<p>Integrated Gradients adds up: Σ attributions vs logit(x) − logit(black) differ by
{faith["ig_completeness_median"]:.2%} (median), {faith["ig_completeness_max"]:.2%} at most, at 64 steps.
Deletion: removing ink in the order a map ranks it should lower the predicted class's probability faster
than removing it at random; area under the curve (lower is better) and its ratio to random order:</p>
<table><tr><th>method</th><th>deletion AUC</th><th>random order</th><th>ratio</th></tr>{deletion}</table>
"""

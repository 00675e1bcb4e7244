"""`digitlab explain IMAGE… --model RUN`: a PNG panel per image, and one line saying what the model answered.

The line names the digit, what was explained and where the panel is; `--json` prints one JSON object per
image instead, with every map's 28×28 values. A bad file never stops the rest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from digitlab.atomic import save_figure
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ConfigError, ImageError
from digitlab.explain.engine import BASELINES, METHODS
from digitlab.explain.explanation import ModelExplainer
from digitlab.explain.options import CAM_METHODS
from digitlab.explain.render import panel
from digitlab.inference.predict import collect_paths


def run_explain(
    inputs: list[str | Path],
    model: str | Path,
    method: str = "all",
    target: int | None = None,
    contrast: int | None = None,
    out: str | Path = "explanations",
    steps: int = 32,
    baseline: str = "blur",
    data_dir: str | Path | None = None,
    stdout: TextIO | None = None,
    as_json: bool = False,
) -> int:
    """Explain each image: write its panel, print one line (or one JSON object) per image.

    Args:
        inputs: image files and/or folders (searched recursively).
        model: a run directory or a model file.
        method: one of `METHODS`, or "all" (those the model supports: no class activation maps without a
            convolution, occlusion alone for an imported ONNX model).
        target: the class to explain (default: the prediction), 0-9.
        contrast: explain `target` rather than this class (a second digit 0-9), or None.
        out: the folder for the PNG panels (`NNNNNN-<name>.png`).
        steps: Integrated Gradients steps, 4-256.
        baseline: Integrated Gradients baseline, one of `BASELINES`.
        data_dir: the MNIST folder (for the map of training digits).
        stdout: where the lines go (default `sys.stdout`).
        as_json: print one JSON object per image (label, logits, probabilities, layers and every map's values)
            instead of a readable line.

    Returns:
        1 if any image failed, else 0.

    Raises:
        ConfigError: for an unknown method or baseline, or when no images are found.
        ModelError: when the model cannot be loaded.
    """
    stdout = stdout or sys.stdout
    if method not in (*METHODS, "all"):
        raise ConfigError(f"--method must be one of {', '.join(METHODS)} or all, got {method!r}")
    if baseline not in BASELINES:
        raise ConfigError(f"--baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    paths = collect_paths(inputs)
    if not paths:
        raise ConfigError("no images found in the given paths")
    explainer = ModelExplainer.load(model, data_dir)
    methods = _methods_for(method, explainer)
    out = Path(out)
    failed = 0
    for n, path in enumerate(paths, 1):
        record: dict[str, Any] = {"path": str(path)}
        try:
            processed = to_mnist_28x28(path)
        except ImageError as e:
            failed += 1
            record["error"] = str(e)
        else:
            if processed.blank:
                record.update(blank=True, reason=processed.reason)
            else:
                panel = out / f"{n:06d}-{path.stem}.png"
                args = (methods, target, contrast, baseline, steps, panel, path.name)
                record.update(_explain_one(explainer, processed.pixels, *args))
        print(json.dumps(record) if as_json else _text_line(record), file=stdout, flush=True)
    print(f"{len(paths)} images explained into {out}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _methods_for(method: str, explainer: ModelExplainer) -> list[str]:
    """The methods to run: the one asked, or for "all" those the model supports.

    No class activation maps without a convolution; occlusion alone for an imported ONNX model (no gradients).
    """
    if method != "all":
        return [method]
    if not explainer.loaded.is_keras:
        return ["occlusion"]
    if explainer.explainer.cam_index is None:
        return [m for m in METHODS if m not in CAM_METHODS]
    return list(METHODS)


def _explain_one(
    explainer: ModelExplainer,
    pixels: np.ndarray,
    methods: list[str],
    target: int | None,
    contrast: int | None,
    baseline: str,
    steps: int,
    picture: Path,
    name: str,
) -> dict[str, Any]:
    """One image's maps: the panel written to `picture`, and the record `--json` prints."""
    base = explainer.explain(pixels, "none", layers=False, place=False)
    chosen = base["label"] if target is None else target
    maps = {m: explainer.explainer.attribution(pixels, m, chosen, contrast, baseline, steps) for m in methods}
    layers = explainer.explainer.activations(pixels)
    against = f" rather than {contrast}" if contrast is not None else ""
    title = f"{name}: predicted {base['label']} ({max(base['probabilities']):.1%}); why {chosen}{against}?"
    save_figure(panel(pixels, layers, maps, title), picture, dpi=90)
    return {
        "label": base["label"],
        "logits": base["logits"],
        "probabilities": base["probabilities"],
        "target": chosen,
        "contrast": contrast,
        "panel": str(picture),
        "layers": [{"name": a.name, "kind": a.kind, "shape": a.shape} for a in layers],
        "attributions": {
            m: {
                "values": np.round(a["values"], 5).tolist(),
                **({"baseline": a["baseline_name"], "completeness": a["completeness"]} if m == "ig" else {}),
            }
            for m, a in maps.items()
        },
    }


def _text_line(record: dict[str, Any]) -> str:
    """The line a person reads: the digit, its probability, what was explained and where the panel is."""
    if "error" in record:
        return f"{record['path']}: error: {record['error']}"
    if record.get("blank"):
        return f"{record['path']}: no digit ({record['reason']})"
    why = f"why {record['target']}" + (f" rather than {record['contrast']}" if record["contrast"] is not None else "")
    methods = ", ".join(record["attributions"])
    return (
        f"{record['path']}: {record['label']} ({max(record['probabilities']):.1%}); {why}: {methods} "
        f"→ {record['panel']}"
    )

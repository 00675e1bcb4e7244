"""`digitlab explain IMAGE… --model RUN`: a PNG panel and a JSON line per image; a bad file never stops the rest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from digitlab.atomic import save_figure
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ConfigError, ImageError
from digitlab.explain.engine import BASELINES, METHODS
from digitlab.explain.explanation import ModelExplainer
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
    stdout=None,
) -> int:
    """Explain each image; print one JSON object per image; return 1 if any image failed, else 0."""
    stdout = stdout or sys.stdout
    methods = list(METHODS) if method == "all" else [method]
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)} or all, got {m!r}")
    if baseline not in BASELINES:
        raise ConfigError(f"--baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    paths = collect_paths(inputs)
    if not paths:
        raise ConfigError("no images found in the given paths")
    explainer = ModelExplainer.load(model, data_dir)
    if "gradcam" in methods and explainer.explainer.cam_index is None and method == "all":
        methods.remove("gradcam")  # an MLP has no convolution to look at
    if method == "all" and not explainer.loaded.is_keras:
        methods = ["occlusion"]  # an imported ONNX model gives no gradients
    out = Path(out)
    failed = 0
    for n, path in enumerate(paths, 1):
        record: dict = {"path": str(path)}
        try:
            processed = to_mnist_28x28(path)
        except ImageError as e:
            failed += 1
            print(json.dumps({**record, "error": str(e)}), file=stdout, flush=True)
            continue
        if processed.blank:
            print(json.dumps({**record, "blank": True, "reason": processed.reason}), file=stdout, flush=True)
            continue
        base = explainer.explain(processed.pixels, "none", layers=False, place=False)
        chosen = base["label"] if target is None else target
        maps = {
            m: explainer.explainer.attribution(processed.pixels, m, chosen, contrast, baseline, steps) for m in methods
        }
        layers = explainer.explainer.activations(processed.pixels)
        against = f" rather than {contrast}" if contrast is not None else ""
        title = f"{path.name}: predicted {base['label']} ({max(base['probabilities']):.1%}); why {chosen}{against}?"
        picture = out / f"{n:06d}-{path.stem}.png"
        save_figure(panel(processed.pixels, layers, maps, title), picture, dpi=90)
        record.update(
            label=base["label"],
            logits=base["logits"],
            probabilities=base["probabilities"],
            target=chosen,
            contrast=contrast,
            panel=str(picture),
            layers=[{"name": a.name, "kind": a.kind, "shape": a.shape} for a in layers],
            attributions={
                m: {
                    "values": np.round(a["values"], 5).tolist(),
                    **({"baseline": a["baseline_name"], "completeness": a["completeness"]} if m == "ig" else {}),
                }
                for m, a in maps.items()
            },
        )
        print(json.dumps(record), file=stdout, flush=True)
    print(f"{len(paths)} images explained into {out}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0

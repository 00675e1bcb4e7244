"""The report's "Not a digit" section: what the run's refusal score trades, as a curve.

Real digits (MNIST *test* digits drawn in every canvas style of `synthetic.render`, then preprocessed as the
page does) against generated non-digits of the benchmark's families (`synthetic.NON_DIGIT_FAMILIES`, not the
ones the threshold was fitted on). For each threshold: the share of real digits wrongly refused against the
share of non-digits accepted; the run's own threshold is marked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import save_figure
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, render
from digitlab.errors import DigitlabError
from digitlab.evaluation.inside import png_data_url

DIGITS_PER_STYLE = 30
PER_FAMILY = 30


def refusal_section(loaded, forward_fn, test_images: np.ndarray, out_dir: Path) -> dict[str, Any]:
    """What the report's "Not a digit" section shows (`templates/refusal.html.j2` renders it).

    Args:
        loaded: the evaluated `LoadedModel`.
        forward_fn: (N, 28, 28) float32 in [0, 1] → (N, 10) logits, or → (logits, (N, D) features).
        test_images: (N, 28, 28) uint8 test digits (drawn in every canvas style).
        out_dir: the report folder (`refusal_curve.png` is written there).

    Returns:
        The shares refused at the run's threshold (`digits_refused`, `refused` per family), the counts, the
        six-feature refusal's shares beside them (`plain`) when the run's refusal uses the network's features,
        and the curves as a data URL (`image`); or `{"unavailable": why}` when the refusal cannot be fitted here.
    """
    from digitlab.inference.refusal import refusal_for

    try:
        refusal = refusal_for(loaded, forward_fn, log=lambda *_: None)
    except DigitlabError as e:
        return {"unavailable": str(e)}
    rng = np.random.default_rng(0)
    drawn = [render(test_images[i], STYLES[i % len(STYLES)], rng) for i in range(DIGITS_PER_STYLE * len(STYLES))]
    others = {f: [non_digit(f, rng) for _ in range(PER_FAMILY)] for f in NON_DIGIT_FAMILIES}
    kinds = {"with the network's features": refusal} if refusal.uses_features else {}
    kinds["six features" if refusal.uses_features else "the run's refusal"] = refusal.for_features(False)
    scored = {}
    for name, chosen in kinds.items():
        features_too = chosen.uses_features
        digits = _scores(chosen, forward_fn, drawn, features_too)
        families = {f: _scores(chosen, forward_fn, images, features_too) for f, images in others.items()}
        scored[name] = (digits, families, chosen.threshold)
    path = save_figure(_plot(scored), out_dir / "refusal_curve.png")
    shares = {name: _shares(*values) for name, values in scored.items()}
    first = next(iter(shares.values()))
    return {
        **first,
        "digits": len(next(iter(scored.values()))[0]),
        "styles": len(STYLES),
        "per_family": PER_FAMILY,
        "plain": shares.get("six features"),
        "image": png_data_url(path),
    }


def _shares(digits: np.ndarray, families: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    return {
        "digits_refused": float(np.mean(digits > threshold)),
        "refused": {f: float(np.mean(s > threshold)) for f, s in families.items()},
    }


def _scores(refusal, forward_fn, images, features_too: bool) -> np.ndarray:
    from digitlab.inference.refusal import split_forward

    pixels = np.stack([p.pixels for p in (to_mnist_28x28(image) for image in images) if not p.blank])
    logits, net = split_forward(forward_fn(pixels))
    return refusal.score(pixels, logits, net if features_too else None)


def _plot(scored: dict[str, tuple[np.ndarray, dict[str, np.ndarray], float]]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for i, (name, (digits, families, threshold)) in enumerate(scored.items()):
        grid = np.quantile(digits, np.linspace(0.5, 1.0, 101))
        everything = np.concatenate(list(families.values()))
        style = {"lw": 2.0} if i == 0 else {"lw": 1.2, "ls": "--"}
        line = ax.plot(
            [np.mean(digits > t) for t in grid], [np.mean(everything <= t) for t in grid], label=name, **style
        )[0]
        ax.scatter([np.mean(digits > threshold)], [np.mean(everything <= threshold)], color=line.get_color(), zorder=3)
    ax.set_xlabel("real digits refused")
    ax.set_ylabel("non-digits accepted (all families)")
    ax.set_xlim(0, 0.2)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return fig


def forward_of(loaded: Any, batch_size: int = 1024) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]:
    """(N, 28, 28) float32 in [0, 1] → (logits, features or None) through the loaded network, in batches.

    Args:
        loaded: a `LoadedModel` (Keras, or an imported ONNX model, which has no features).
        batch_size: images per call.

    Returns:
        The function.
    """
    from digitlab.inference.runtimes import KerasRuntime, OnnxRuntime

    runtime = KerasRuntime(loaded.model) if loaded.is_keras else OnnxRuntime(loaded.model)

    def forward(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.asarray(pixels, np.float32).reshape(-1, 28, 28, 1)
        parts = [runtime.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        logits = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 10), np.float32)
        net = None if not parts or parts[0][1] is None else np.concatenate([p[1] for p in parts])
        return logits, net

    return forward

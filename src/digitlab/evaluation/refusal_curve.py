"""The report's "Not a digit" section: what the run's refusal score trades, as a curve.

Real digits (MNIST *test* digits drawn in every canvas style of `synthetic.render`, then preprocessed as the
page does) against generated non-digits of the benchmark's families (`synthetic.NON_DIGIT_FAMILIES`, not the
ones the threshold was fitted on). For each threshold: the share of real digits wrongly refused against the
share of non-digits accepted; the run's own threshold is marked.
"""

from __future__ import annotations

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


def refusal_section(loaded, logits_fn, test_images: np.ndarray, out_dir: Path) -> dict[str, Any]:
    """What the report's "Not a digit" section shows (`templates/refusal.html.j2` renders it).

    Args:
        loaded: the evaluated `LoadedModel`.
        logits_fn: (N, 28, 28) float32 in [0, 1] → (N, 10) logits.
        test_images: (N, 28, 28) uint8 test digits (drawn in every canvas style).
        out_dir: the report folder (`refusal_curve.png` is written there).

    Returns:
        The shares refused at the run's threshold (`digits_refused`, `refused` per family), the counts, and the
        curve as a data URL (`image`); or `{"unavailable": why}` when the refusal cannot be fitted here.
    """
    from digitlab.inference.refusal import refusal_for

    try:
        refusal = refusal_for(loaded, logits_fn, log=lambda *_: None)
    except DigitlabError as e:
        return {"unavailable": str(e)}
    rng = np.random.default_rng(0)
    digits = _scores(
        refusal,
        logits_fn,
        (render(test_images[i], STYLES[i % len(STYLES)], rng) for i in range(DIGITS_PER_STYLE * len(STYLES))),
    )
    families = {
        f: _scores(refusal, logits_fn, (non_digit(f, rng) for _ in range(PER_FAMILY))) for f in NON_DIGIT_FAMILIES
    }
    path = save_figure(_plot(digits, families, refusal.threshold), out_dir / "refusal_curve.png")
    return {
        "digits": len(digits),
        "digits_refused": float(np.mean(digits > refusal.threshold)),
        "styles": len(STYLES),
        "per_family": PER_FAMILY,
        "refused": {f: float(np.mean(s > refusal.threshold)) for f, s in families.items()},
        "image": png_data_url(path),
    }


def _scores(refusal, logits_fn, images) -> np.ndarray:
    pixels = np.stack([p.pixels for p in (to_mnist_28x28(image) for image in images) if not p.blank])
    return refusal.score(pixels, logits_fn(pixels))


def _plot(digits: np.ndarray, families: dict[str, np.ndarray], threshold: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    grid = np.quantile(digits, np.linspace(0.5, 1.0, 101))
    everything = np.concatenate(list(families.values()))
    ax.plot([np.mean(digits > t) for t in grid], [np.mean(everything <= t) for t in grid], label="all families")
    for family, scores in families.items():
        ax.plot(
            [np.mean(digits > t) for t in grid], [np.mean(scores <= t) for t in grid], lw=0.8, alpha=0.7, label=family
        )
    ax.scatter([np.mean(digits > threshold)], [np.mean(everything <= threshold)], color="black", zorder=3)
    ax.set_xlabel("real digits refused")
    ax.set_ylabel("non-digits accepted")
    ax.set_xlim(0, 0.2)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return fig

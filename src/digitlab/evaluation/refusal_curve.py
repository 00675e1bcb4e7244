"""The report's "Not a digit" section: what the run's refusal score trades, as a curve.

Real digits (MNIST *test* digits drawn in every canvas style of `synthetic.render`, then preprocessed as the
page does) against generated non-digits of the benchmark's families (`synthetic.NON_DIGIT_FAMILIES`, not the
ones the threshold was fitted on). For each threshold: the share of real digits wrongly refused against the
share of non-digits accepted; the run's own threshold is marked.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from digitlab.atomic import save_figure
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, render
from digitlab.errors import DigitlabError

DIGITS_PER_STYLE = 30
PER_FAMILY = 30


def refusal_section(loaded, logits_fn, test_images: np.ndarray, out_dir: Path, png_tag) -> str:
    """The HTML of the section (one sentence when the refusal cannot be fitted here)."""
    from digitlab.inference.refusal import refusal_for

    try:
        refusal = refusal_for(loaded, logits_fn, log=lambda *_: None)
    except DigitlabError as e:
        return f"<h2>Not a digit</h2><p>Not available for this model: {html.escape(str(e))}</p>"
    rng = np.random.default_rng(0)
    digits = _scores(refusal, logits_fn, (render(test_images[i], STYLES[i % len(STYLES)], rng)
                                          for i in range(DIGITS_PER_STYLE * len(STYLES))))  # fmt: skip
    families = {
        f: _scores(refusal, logits_fn, (non_digit(f, rng) for _ in range(PER_FAMILY))) for f in NON_DIGIT_FAMILIES
    }
    path = out_dir / "refusal_curve.png"
    save_figure(_plot(digits, families, refusal.threshold), path)
    refused = {f: float(np.mean(s > refusal.threshold)) for f, s in families.items()}
    rows = "".join(f"<tr><td>{f}</td><td>{v:.0%}</td></tr>" for f, v in refused.items())
    return f"""<h2>Not a digit</h2>
<p>At the run's threshold the refusal score refuses {np.mean(digits > refusal.threshold):.1%} of {len(digits)} real
test digits drawn in {len(STYLES)} canvas styles, and these shares of generated non-digits ({PER_FAMILY} each;
families the threshold was not fitted on):</p>
<table><tr><th>family</th><th>refused</th></tr>{rows}</table>
<figure>{png_tag(path, "refusal trade-off")}<figcaption>Moving the threshold: real digits wrongly refused against
non-digits accepted (lower left is better); the dot is the run's threshold.</figcaption></figure>
"""


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
        ax.plot([np.mean(digits > t) for t in grid], [np.mean(scores <= t) for t in grid], lw=0.8, alpha=0.7,
                label=family)  # fmt: skip
    ax.scatter([np.mean(digits > threshold)], [np.mean(everything <= threshold)], color="black", zorder=3)
    ax.set_xlabel("real digits refused")
    ax.set_ylabel("non-digits accepted")
    ax.set_xlim(0, 0.2)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return fig

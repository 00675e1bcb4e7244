"""Plots and the self-contained HTML report of an evaluation.

Plots are drawn on `matplotlib.figure.Figure` objects (no pyplot, no backend switching, so a notebook's inline
backend is left alone) and embedded in the page as base64 PNGs. The page is the Jinja2 template
`templates/report.html.j2`, rendered with autoescape: every value from a run (its name, settings, an imported
model's contract) is escaped once, by the template engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy.special import softmax

from digitlab.atomic import atomic_write_text, save_figure
from digitlab.evaluation.inside import inside_section, layer_rows, png_data_url
from digitlab.evaluation.metrics import ECE_BINS, expected_calibration_error, reliability_bins
from digitlab.evaluation.refusal_curve import forward_of, refusal_section
from digitlab.rundir import RunDir

PLOTS = {
    "curves.png": "Training and validation curves",
    "confusion.png": "Confusion matrix",
    "reliability.png": "Reliability diagram (before and after temperature scaling)",
    "misclassified.png": "Misclassified digits",
    "f1.png": "F1 score per class",
}


def plot_curves(history: list[dict[str, float]], path: Path) -> Path | None:
    """Training and validation loss and accuracy per epoch, as a PNG.

    Args:
        history: one dict per epoch with `epoch` and any of `loss`, `accuracy`, `val_loss`, `val_accuracy`.
        path: where to write the PNG.

    Returns:
        `path`, or None when the history is empty (a bare model file has none).
    """
    if not history:
        return None
    epochs = [int(r["epoch"]) for r in history]
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, [r.get(key, np.nan) for r in history], "o-", label="training")
        ax.plot(epochs, [r.get(f"val_{key}", np.nan) for r in history], "s-", label="validation")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    return save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, path: Path) -> Path:
    """The confusion matrix twice: counts (log colour scale) and row-normalised (recall per true class).

    Args:
        confusion: (10, 10) integer counts, rows = true class, columns = predicted class.
        path: where to write the PNG.

    Returns:
        `path`.
    """
    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    fig = Figure(figsize=(13, 5.5))
    axes = fig.subplots(1, 2)
    for ax, data, title, fmt in (
        (axes[0], confusion, "Counts", "d"),
        (axes[1], normalised, "Row-normalised (recall per true class)", ".2f"),
    ):
        shown = np.log1p(data) if fmt == "d" else data  # log colour scale so off-diagonal errors are visible
        im = ax.imshow(shown, cmap="Blues")
        for i in range(10):
            for j in range(10):
                value = data[i, j]
                if value:
                    text = format(int(value), "d") if fmt == "d" else format(value, fmt)
                    dark = shown[i, j] > shown.max() * 0.6
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(10), yticks=range(10))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="log(1 + count)" if fmt == "d" else "share")
    return save_figure(fig, path)


def plot_reliability(logits: np.ndarray, labels: np.ndarray, temperature: float, path: Path) -> Path:
    """Reliability diagrams (accuracy against confidence, 15 bins) before and after temperature scaling.

    Args:
        logits: (N, 10) float logits.
        labels: (N,) integer classes 0-9.
        temperature: the fitted temperature (> 0) shown on the right.
        path: where to write the PNG.

    Returns:
        `path`.
    """
    fig = Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2, gridspec_kw={"height_ratios": [3, 1.2]}, sharex=True)
    for col, (t, name) in enumerate(((1.0, "before"), (temperature, f"after (T = {temperature:.2f})"))):
        probs = softmax(logits / t, axis=1)
        bins = reliability_bins(probs, labels, ECE_BINS)
        ece = expected_calibration_error(probs, labels)
        centers = (np.array(bins["edges"][:-1]) + np.array(bins["edges"][1:])) / 2
        width = 1 / ECE_BINS
        filled = np.array(bins["count"]) > 0
        ax = axes[0, col]
        ax.bar(
            centers[filled],
            np.array(bins["accuracy"])[filled],
            width=width,
            edgecolor="black",
            color="#4C72B0",
            label="accuracy",
        )
        gap = np.array(bins["confidence"]) - np.array(bins["accuracy"])
        ax.bar(
            centers[filled],
            gap[filled],
            bottom=np.array(bins["accuracy"])[filled],
            width=width,
            color="#DD8452",
            alpha=0.6,
            edgecolor="#DD8452",
            label="gap to confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        ax.set(title=f"{name}: ECE {ece:.4f}", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        ax.legend(loc="upper left", fontsize=8)
        hist = axes[1, col]
        hist.bar(centers, bins["count"], width=width, color="gray", edgecolor="black")
        hist.set(yscale="log", xlabel="confidence", ylabel="examples")
    fig.suptitle("Reliability diagram with confidence histogram (15 bins)")
    return save_figure(fig, path)


def plot_misclassified(
    images: np.ndarray, labels: np.ndarray, logits: np.ndarray, path: Path, rows: int = 4, cols: int = 11
) -> Path:
    """The classic prediction grid: "predicted/true" in red with the confidence, most confident errors first.

    Args:
        images: (N, 28, 28) or (N, 28, 28, 1) images (uint8 or floats; drawn as grey levels).
        labels: (N,) integer classes 0-9.
        logits: (N, 10) float logits.
        path: where to write the PNG.
        rows: grid rows.
        cols: grid columns (at most rows × cols errors are shown).

    Returns:
        `path`.
    """
    probs = softmax(logits, axis=1)
    predicted, confidence = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong])][: rows * cols]
    fig = Figure(figsize=(cols * 1.1, rows * 1.35))
    axes = fig.subplots(rows, cols)
    for k, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if k < len(wrong):
            i = wrong[k]
            ax.imshow(images[i].reshape(28, 28), cmap="gray_r")
            ax.set_title(f"{predicted[i]}/{labels[i]}\n{confidence[i]:.0%}", color="red", fontsize=9)
    fig.suptitle(f"{len(np.flatnonzero(predicted != labels))} misclassified: predicted/true and confidence")
    return save_figure(fig, path)


def plot_f1(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    """F1 score per class as bars, the worst in red.

    Args:
        per_class: class name ("0".."9") → scikit-learn's report entry (with `f1-score` in [0, 1]).
        path: where to write the PNG.

    Returns:
        `path`.
    """
    classes = sorted(per_class, key=int)
    f1 = [per_class[c]["f1-score"] for c in classes]
    fig = Figure(figsize=(8, 3.8))
    ax = fig.subplots()
    bars = ax.bar(classes, f1, color="#55A868", edgecolor="black")
    worst = int(np.argmin(f1))
    bars[worst].set_color("#C44E52")
    lo = max(0.0, min(f1) - 0.02)
    ax.set(title="F1 score per class (worst in red)", xlabel="digit", ylabel="F1", ylim=(lo, 1.0))
    for bar, value in zip(bars, f1, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _templates():
    """The Jinja2 environment over the package's `templates/` (autoescape on: values are escaped once, here)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(
        loader=PackageLoader("digitlab.evaluation", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt name fails the report instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _temperature_note(calibration: dict[str, Any]) -> dict[str, Any]:
    fitted = calibration["temperature_fitted_on"]
    return {
        "fitted": fitted == "validation",
        "why_not": fitted.removeprefix("nothing: "),
        "nll_before": calibration["validation_nll_before"],
        "nll_after": calibration["validation_nll_after"],
    }


def _grid_data_url(grid: np.ndarray, scale: int = 3) -> str:
    """A uint8 image as a PNG data URL, enlarged `scale`× with nearest-neighbour pixels."""
    import base64

    import cv2

    big = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", big)[1].tobytes()).decode()


def _rows_by_corruption(grid: np.ndarray | None, robustness: dict[str, Any] | None) -> dict[str, str]:
    """Each corruption's row of examples (28 px tall, in the table's order) as its own PNG data URL."""
    if grid is None or not robustness:
        return {}
    names = list(robustness["corruptions"])
    return {name: _grid_data_url(grid[28 * i : 28 * (i + 1)], scale=2) for i, name in enumerate(names)}


def write_report(
    out_dir: Path,
    metrics: dict[str, Any],
    loaded,
    images: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
    robustness_grid: np.ndarray | None = None,
) -> Path:
    """Render every plot, then report.html with the plots embedded (it opens without a server).

    Args:
        out_dir: the report folder (written: the PNGs, `inside/`, `refusal_curve.png`, `report.html`).
        metrics: what `evaluate_model` computed (the `digitlab.metrics/1` schema).
        loaded: the evaluated `LoadedModel`.
        images: (N, 28, 28) uint8 images of the evaluated split.
        labels: (N,) integer classes 0-9.
        logits: (N, 10) float logits of the model on `images`.
        robustness_grid: the Robustness section's examples, uint8 (rows of 28-px digits), or None.

    Returns:
        The path of `report.html`.
    """
    history = RunDir(loaded.run_dir).read_history() if loaded.run_dir else []
    calibration = metrics["calibration"]
    made = [
        plot_curves(history, out_dir / "curves.png"),
        plot_confusion(np.array(metrics["confusion_matrix"]), out_dir / "confusion.png"),
        plot_reliability(logits, labels, calibration["after"]["temperature"], out_dir / "reliability.png"),
        plot_misclassified(images, labels, logits, out_dir / "misclassified.png"),
        plot_f1(metrics["per_class"], out_dir / "f1.png"),
    ]
    page = (
        _templates()
        .get_template("report.html.j2")
        .render(
            m=metrics,
            before=calibration["before"],
            after=calibration["after"],
            temperature=_temperature_note(calibration),
            averages={name.replace("_", " "): metrics[name] for name in ("macro_avg", "weighted_avg")},
            figures=[(png_data_url(p), PLOTS[p.name]) for p in made if p],
            config=json.dumps(loaded.settings, indent=2) if loaded.settings else "(a bare model file, no run config)",
            layers=layer_rows(loaded.model),
            inside=inside_section(loaded, out_dir, images, labels, logits, metrics["most_confused"]),
            robustness=metrics.get("robustness"),
            robustness_rows=_rows_by_corruption(robustness_grid, metrics.get("robustness")),
            refusal=refusal_section(loaded, forward_of(loaded), images, out_dir),
        )
    )
    return atomic_write_text(out_dir / "report.html", page)

"""Plots and the self-contained HTML report of an evaluation (matplotlib, images embedded as base64)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.special import softmax

from digitlab.atomic import atomic_write_text, save_figure
from digitlab.evaluation.inside import inside_section, layer_table, png_tag
from digitlab.evaluation.metrics import ECE_BINS, expected_calibration_error, reliability_bins
from digitlab.evaluation.refusal_curve import refusal_section
from digitlab.models.forward import predict_logits
from digitlab.rundir import RunDir

PLOTS = {
    "curves.png": "Training and validation curves",
    "confusion.png": "Confusion matrix",
    "reliability.png": "Reliability diagram (before and after temperature scaling)",
    "misclassified.png": "Misclassified digits",
    "f1.png": "F1 score per class",
}


def plot_curves(history: list[dict[str, float]], path: Path) -> Path | None:
    if not history:
        return None
    epochs = [int(r["epoch"]) for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        ax.plot(epochs, [r.get(key, np.nan) for r in history], "o-", label="training")
        ax.plot(epochs, [r.get(f"val_{key}", np.nan) for r in history], "s-", label="validation")
        ax.set(title=title, xlabel="epoch", ylabel=key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    return save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, path: Path) -> Path:
    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
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
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), gridspec_kw={"height_ratios": [3, 1.2]}, sharex=True)
    for col, (t, name) in enumerate(((1.0, "before"), (temperature, f"after (T = {temperature:.2f})"))):
        probs = softmax(logits / t, axis=1)
        bins = reliability_bins(probs, labels, ECE_BINS)
        ece = expected_calibration_error(probs, labels)
        centers = (np.array(bins["edges"][:-1]) + np.array(bins["edges"][1:])) / 2
        width = 1 / ECE_BINS
        filled = np.array(bins["count"]) > 0
        ax = axes[0, col]
        ax.bar(centers[filled], np.array(bins["accuracy"])[filled], width=width, edgecolor="black",
               color="#4C72B0", label="accuracy")  # fmt: skip
        gap = np.array(bins["confidence"]) - np.array(bins["accuracy"])
        ax.bar(centers[filled], gap[filled], bottom=np.array(bins["accuracy"])[filled], width=width,
               color="#DD8452", alpha=0.6, edgecolor="#DD8452", label="gap to confidence")  # fmt: skip
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
    """The classic prediction grid: "predicted/true" in red with the confidence, most confident errors first."""
    probs = softmax(logits, axis=1)
    predicted, confidence = probs.argmax(1), probs.max(1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong])][: rows * cols]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.35))
    for k, ax in enumerate(np.ravel(axes)):
        ax.axis("off")
        if k < len(wrong):
            i = wrong[k]
            ax.imshow(images[i].reshape(28, 28), cmap="gray_r")
            ax.set_title(f"{predicted[i]}/{labels[i]}\n{confidence[i]:.0%}", color="red", fontsize=9)
    fig.suptitle(f"{len(np.flatnonzero(predicted != labels))} misclassified: predicted/true and confidence")
    return save_figure(fig, path)


def plot_f1(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    classes = sorted(per_class, key=int)
    f1 = [per_class[c]["f1-score"] for c in classes]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    bars = ax.bar(classes, f1, color="#55A868", edgecolor="black")
    worst = int(np.argmin(f1))
    bars[worst].set_color("#C44E52")
    lo = max(0.0, min(f1) - 0.02)
    ax.set(title="F1 score per class (worst in red)", xlabel="digit", ylabel="F1", ylim=(lo, 1.0))
    for bar, value in zip(bars, f1, strict=True):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _img(path: Path) -> str:
    return png_tag(path, PLOTS.get(path.name, path.name))


def _contract_note(metrics: dict[str, Any]) -> str:
    contract = metrics.get("contract")
    if not contract:
        return ""
    return (
        f'<p class="contract"><b>Imported {html.escape(contract["format"])} model.</b> What digitlab assumed: '
        f"{html.escape(contract['assumed'])}. digitlab feeds it 28×28 digits in [0, 1], white on black, "
        "and reads 10 logits.</p>"
    )


def _temperature_note(metrics: dict[str, Any]) -> str:
    calibration = metrics["calibration"]
    fitted = calibration["temperature_fitted_on"]
    if fitted != "validation":
        return f"No temperature fitted ({html.escape(fitted.removeprefix('nothing: '))})."
    return (
        f"Temperature fitted on the validation split only (validation NLL {calibration['validation_nll_before']:.4f}"
        f" → {calibration['validation_nll_after']:.4f})."
    )


def write_report(out_dir: Path, metrics: dict[str, Any], loaded, images, labels, logits) -> Path:
    """Render every plot, then report.html with the plots embedded (opens without a server)."""
    history = RunDir(loaded.run_dir).read_history() if loaded.run_dir else []
    temperature = metrics["calibration"]["after"]["temperature"]
    made = [
        plot_curves(history, out_dir / "curves.png"),
        plot_confusion(np.array(metrics["confusion_matrix"]), out_dir / "confusion.png"),
        plot_reliability(logits, labels, temperature, out_dir / "reliability.png"),
        plot_misclassified(images, labels, logits, out_dir / "misclassified.png"),
        plot_f1(metrics["per_class"], out_dir / "f1.png"),
    ]
    before, after = metrics["calibration"]["before"], metrics["calibration"]["after"]
    rows = "".join(
        f"<tr><td>{c}</td><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}</td>"
        f"<td>{v['f1-score']:.4f}</td><td>{v['support']}</td></tr>"
        for c, v in metrics["per_class"].items()
    )
    for name in ("macro_avg", "weighted_avg"):
        v = metrics[name]
        rows += (
            f"<tr class='avg'><td>{name.replace('_', ' ')}</td><td>{v['precision']:.4f}</td>"
            f"<td>{v['recall']:.4f}</td><td>{v['f1-score']:.4f}</td><td>{metrics['examples']}</td></tr>"
        )
    calib = "".join(
        f"<tr><td>{k}</td><td>{before[k]:.4f}</td><td>{after[k]:.4f}</td></tr>"
        for k in ("nll", "ece", "brier", "mean_confidence")
    )
    confused = "".join(
        f"<tr><td>{p['true']}</td><td>{p['predicted']}</td><td>{p['count']}</td></tr>" for p in metrics["most_confused"]
    )
    config = json.dumps(loaded.settings, indent=2) if loaded.settings else "(a bare model file, no run config)"
    figures = "".join(
        f"<figure>{_img(p)}<figcaption>{html.escape(PLOTS[p.name])}</figcaption></figure>" for p in made if p
    )
    inside = inside_section(loaded, out_dir, images, labels, logits, metrics["most_confused"])
    refusal = refusal_section(loaded, lambda x: predict_logits(loaded.model, x), images, out_dir, png_tag)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitlab report: {html.escape(metrics["model"])} on {metrics["split"]}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2rem auto; padding: 0 1rem; color: #222; }}
h1 {{ margin-bottom: .2rem; }} .sub {{ color: #666; margin-top: 0; }}
.cards {{ display: flex; gap: 1rem; flex-wrap: wrap; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: .8rem 1.2rem; min-width: 9rem; }}
.card b {{ display: block; font-size: 1.6rem; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; }}
td, th {{ border: 1px solid #ddd; padding: .25rem .7rem; text-align: right; }}
tr.avg td {{ font-weight: 600; background: #f6f6f6; }}
figure {{ margin: 1.5rem 0; }} figure img {{ max-width: 100%; }} figcaption {{ color: #555; }}
pre {{ background: #f6f6f6; padding: .8rem; overflow-x: auto; font-size: .8rem; }}
</style></head><body>
<h1>{html.escape(metrics["model"])}</h1>
<p class="sub">{metrics["split"]} split, {metrics["examples"]} images;
model file {html.escape(metrics["model_file"])}</p>
{_contract_note(metrics)}
<div class="cards">
<div class="card">accuracy<b>{metrics["accuracy"]:.2%}</b></div>
<div class="card">top-2 accuracy<b>{metrics["top2_accuracy"]:.2%}</b></div>
<div class="card">macro F1<b>{metrics["macro_avg"]["f1-score"]:.4f}</b></div>
<div class="card">ECE before → after<b>{before["ece"]:.4f} → {after["ece"]:.4f}</b></div>
<div class="card">temperature<b>{after["temperature"]:.3f}</b></div>
</div>
<h2>Classification report</h2>
<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>
<h2>Calibration</h2>
<p>{_temperature_note(metrics)}
ECE uses 15 equal-width confidence bins: Σ (n_bin / N) · |accuracy − confidence|.</p>
<table><tr><th>metric</th><th>before</th><th>after</th></tr>{calib}</table>
<h2>Most confused pairs</h2>
<table><tr><th>true</th><th>predicted</th><th>count</th></tr>{confused}</table>
<h2>Plots</h2>
{figures}
<h2>Run configuration</h2>
<pre>{html.escape(config)}</pre>
<h2>Model</h2>
{layer_table(loaded.model)}
{inside}
{refusal}
</body></html>
"""
    return atomic_write_text(out_dir / "report.html", page)

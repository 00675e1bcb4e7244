"""Model-level views for the report's "Inside the model" section: what the network learned, not one input.

- the first layer's filters (convolution kernels, or an MLP's first-layer weights as 28×28 templates);
- for the channels of a deeper convolution, the 9 test-set patches that excite each most (receptive-field
  crops: what the channel looks for);
- the penultimate layer's map: PCA of test digits, and the t-SNE map of training digits with every
  misclassified test digit placed on it (`embedding.py`);
- the mean Integrated Gradients map of each class (what ink counts for a 3, on average);
- the most-confused pairs, each with one misclassified digit and its contrastive map (why 9 and not 4).

Computed once per model file (~10-40 s on 2 cores, most of it the t-SNE map) and cached beside the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from digitlab.atomic import atomic_write_json, save_figure
from digitlab.data.images import to_unit_float
from digitlab.explain.engine import Explainer
from digitlab.explain.explanation import ModelExplainer
from digitlab.explain.graph import kind_of

CAPTIONS = {
    "filters.png": "First-layer filters. Each small square is one learned kernel (red: weights that respond to ink, "
    "blue: to its absence); most are edge and stroke detectors at one orientation. An MLP has no kernels: its first "
    "layer's weights are shown as 28×28 templates instead.",
    "patches.png": "What deeper channels look for: for each channel of a later convolution, the 9 test-image patches "
    "(its receptive field) that excite it most. Channels respond to parts of digits: curves, corners, line ends.",
    "embedding.png": "Where digits land in the network's last hidden layer. Left: PCA of test digits (straight "
    "projection). Right: t-SNE map of training digits with every misclassified test digit placed on it (×, coloured "
    "by its true class): mistakes sit at the borders between clusters.",
    "class_attribution.png": "Mean Integrated Gradients map per class, over correctly classified test digits "
    "(blurred baseline): red ink raised that class's score, blue lowered it.",
    "confused.png": "The most confused pairs: one misclassified test digit per pair and why the network chose its "
    "answer rather than the true class (IG of logit[predicted] − logit[true]).",
}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def model_views(
    explainer: ModelExplainer, images: np.ndarray, labels: np.ndarray, logits: np.ndarray, out: Path, pairs: list
) -> list[tuple[Path, str]]:
    """Write (or reuse, for the same model file) every model-level view under `out`.

    Args:
        explainer: the model's explainer.
        images: (N, 28, 28) uint8 test images (or floats in [0, 1]).
        labels: (N,) classes 0-9.
        logits: (N, 10) the model's logits on `images`.
        out: the folder for the PNGs and `views.json`.
        pairs: the most confused pairs, `{true, predicted, count}` each.

    Returns:
        (png path, caption) per view drawn (a view the model cannot have, e.g. filters of a model without
        kernels, is left out).
    """
    digest = explainer.loaded.file_digest()
    stamp = out / "views.json"
    names = list(CAPTIONS)
    try:
        cached = json.loads(stamp.read_text())
        if cached.get("digest") == digest and all((out / n).is_file() for n in cached["files"]):
            return [(out / n, CAPTIONS[n]) for n in cached["files"]]
    except (OSError, ValueError, KeyError):
        pass
    x = to_unit_float(images)
    predicted = logits.argmax(1)
    ex = explainer.explainer
    made = {
        "filters.png": _filters(ex),
        "patches.png": _patches(ex, x[:3000]),
        "embedding.png": _embedding(explainer, x, labels, predicted),
        "class_attribution.png": _class_attribution(ex, x, labels, predicted),
        "confused.png": _confused(ex, x, labels, predicted, pairs),
    }
    files = []
    for name in names:
        if made[name] is not None:
            save_figure(made[name], out / name, dpi=90)
            files.append(name)
    atomic_write_json(stamp, {"digest": digest, "files": files})
    return [(out / n, CAPTIONS[n]) for n in files]


def _grid(count: int, columns: int, size: float = 1.0):
    rows = int(np.ceil(count / columns))
    fig = Figure(figsize=(columns * size, rows * size))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def _filters(ex: Explainer):
    first = next((layer for layer in ex.layers if kind_of(layer) in ("conv", "dense")), None)
    if first is None:
        return None
    kernel = np.asarray(first.get_weights()[0])
    if kind_of(first) == "conv":
        maps = kernel.mean(axis=2).transpose(2, 0, 1)  # (out, k, k), averaged over input channels
    elif kernel.shape[0] == 784:
        maps = kernel.T.reshape(-1, 28, 28)  # an MLP's templates
    else:
        return None
    maps = maps[:64]
    fig, axes = _grid(len(maps), 16 if len(maps) > 32 else 8, 0.8)
    for ax, m in zip(axes, maps, strict=False):
        peak = float(np.abs(m).max()) or 1.0
        ax.imshow(m, cmap="RdBu_r", vmin=-peak, vmax=peak)
    fig.suptitle(f"{first.name}: {len(maps)} of {kernel.shape[-1]} first-layer filters", fontsize=10)
    return fig


def _receptive_fields(ex: Explainer, upto: int) -> tuple[int, int, float]:
    """(size, jump, start) of a unit of layer `upto` in input pixels, for valid/same convolutions and pooling."""
    size, jump, start = 1, 1, 0.0
    for layer in ex.layers[: upto + 1]:
        config = layer.get_config()
        if "kernel_size" in config or "pool_size" in config:
            k = (config.get("kernel_size") or config.get("pool_size"))[0]
            s = (config.get("strides") or (k,))[0]
            pad = (k - 1) / 2 if config.get("padding") == "same" else 0
            start += ((k - 1) / 2 - pad) * jump
            size += (k - 1) * jump
            jump *= s
    return size, jump, start


def _patches(ex: Explainer, x: np.ndarray, channels: int = 12):
    convs = [i for i, layer in enumerate(ex.layers) if kind_of(layer) == "conv"]
    if not convs:
        return None
    index = convs[1] if len(convs) > 1 else convs[0]
    import tensorflow as tf

    acts = np.concatenate(
        [ex.layer_output(tf.constant(x[i : i + 500, ..., None]), index).numpy() for i in range(0, len(x), 500)]
    )
    size, jump, start = _receptive_fields(ex, index)
    fig, axes = _grid(channels * 9, 9, 0.7)
    for c in range(min(channels, acts.shape[-1])):
        flat = acts[..., c].reshape(len(acts), -1)
        best = np.argsort(-flat.max(axis=1))[:9]  # 9 different images, each at its strongest position
        for k, n in enumerate(best):
            r, q = divmod(int(flat[n].argmax()), acts.shape[2])
            cy, cx = start + r * jump, start + q * jump
            y0, x0 = int(max(0, round(cy - size / 2 + 0.5))), int(max(0, round(cx - size / 2 + 0.5)))
            axes[c * 9 + k].imshow(x[n, y0 : y0 + size, x0 : x0 + size], cmap="gray", vmin=0, vmax=1)
        axes[c * 9].set_title(f"channel {c}", fontsize=7, loc="left")
    fig.suptitle(f"{ex.layers[index].name}: top-9 patches ({size}×{size} px receptive field)", fontsize=10)
    return fig


def _embedding(explainer: ModelExplainer, x: np.ndarray, labels: np.ndarray, predicted: np.ndarray):
    from matplotlib.lines import Line2D
    from sklearn.decomposition import PCA

    emb = explainer.embedding()
    features = explainer.explainer.features(x)
    wrong = np.flatnonzero(predicted != labels)
    sample = np.random.default_rng(0).choice(len(x), min(3000, len(x)), replace=False)
    pca = PCA(2, random_state=0).fit(features[sample])
    fig = Figure(figsize=(12, 5.6))
    left, right = fig.subplots(1, 2)
    shown = pca.transform(features[sample])
    left.scatter(shown[:, 0], shown[:, 1], s=3, c=[PALETTE[c] for c in labels[sample]], alpha=0.6)
    left.set_title(f"PCA of {len(sample)} test digits", fontsize=10)
    right.scatter(emb.coords[:, 0], emb.coords[:, 1], s=3, c=[PALETTE[c] for c in emb.labels], alpha=0.35)
    placed = np.array([emb.place(f) for f in features[wrong]]) if len(wrong) else np.zeros((0, 2))
    if len(wrong):
        right.scatter(placed[:, 0], placed[:, 1], marker="x", s=22, c=[PALETTE[c] for c in labels[wrong]])
    right.set_title(
        f"t-SNE of {len(emb.coords)} training digits; × = the {len(wrong)} misclassified test digits", fontsize=10
    )
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], marker="o", ls="", color=PALETTE[c], label=str(c)) for c in range(10)]
    fig.legend(handles=handles, loc="lower center", ncol=10, frameon=False)
    return fig


def _class_attribution(ex: Explainer, x: np.ndarray, labels: np.ndarray, predicted: np.ndarray, per_class: int = 20):
    fig, axes = _grid(10, 10, 1.3)
    for c in range(10):
        chosen = np.flatnonzero((labels == c) & (predicted == c))[:per_class]
        mean = np.mean([ex.attribution(x[i], "ig", c, baseline="blur")["values"] for i in chosen], axis=0)
        peak = float(np.abs(mean).max()) or 1.0
        axes[c].imshow(mean, cmap="RdBu_r", vmin=-peak, vmax=peak)
        axes[c].set_title(str(c), fontsize=9)
    return fig


def _confused(ex: Explainer, x: np.ndarray, labels: np.ndarray, predicted: np.ndarray, pairs: list[dict[str, Any]]):
    pairs = [p for p in pairs if np.any((labels == p["true"]) & (predicted == p["predicted"]))][:6]
    if not pairs:
        return None
    fig, axes = _grid(len(pairs) * 2, 4, 1.9)
    for k, p in enumerate(pairs):
        i = int(np.flatnonzero((labels == p["true"]) & (predicted == p["predicted"]))[0])
        a = ex.attribution(x[i], "ig", p["predicted"], p["true"], baseline="blur")["values"]
        peak = float(np.abs(a).max()) or 1.0
        axes[2 * k].imshow(x[i], cmap="gray", vmin=0, vmax=1)
        axes[2 * k].set_title(f"a {p['true']} read as {p['predicted']} ({p['count']}×)", fontsize=8)
        axes[2 * k + 1].imshow(x[i], cmap="gray", vmin=0, vmax=1)
        axes[2 * k + 1].imshow(a, cmap="RdBu_r", vmin=-peak, vmax=peak, alpha=0.75)
        axes[2 * k + 1].set_title(f"why {p['predicted']}, not {p['true']}", fontsize=8)
    return fig

"""How a model holds up beyond MNIST's test set: MNIST-C's corruptions, another set of writers, real digits.

Accuracy on each of MNIST-C's 15 corruptions (`digitlab.data.corruptions`) of the test digits, two ways: the
model alone (the corrupted 28×28 fed as it is) and through preprocessing (the corrupted 28×28 as an 8-bit image
through `to_mnist_28x28`, as `digitlab predict` reads a PNG of it; a digit preprocessing calls blank counts
wrong). The cross-writer check is scikit-learn's bundled 8×8 digits (UCI optdigits: 1,797 digits by writers
MNIST never had), upscaled and sent through preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean
from typing import Any

import cv2
import numpy as np

from digitlab.data.corruptions import CORRUPTIONS, corrupt
from digitlab.data.images import to_unit_float
from digitlab.data.preprocess import to_mnist_28x28

Logits = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28, 1) float32 in [0, 1] → (N, 10) logits


def accuracy_alone(logits: Logits, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the model on (N, 28, 28) uint8 digits fed as they are."""
    return float(np.mean(np.argmax(logits(to_unit_float(images)[..., None]), 1) == labels))


def preprocess_all(images: list[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image through `to_mnist_28x28`: ((N, 28, 28, 1) float32 inputs, (N,) bool blank)."""
    processed = [to_mnist_28x28(image) for image in images]
    return (
        np.stack([p.pixels for p in processed])[..., None].astype(np.float32),
        np.array([p.blank for p in processed]),
    )


def accuracy_through_preprocessing(logits: Logits, images, labels: np.ndarray) -> dict[str, float]:
    """Accuracy of preprocessing + model on any images (a blank answer is wrong), and the blank fraction."""
    inputs, blank = preprocess_all(images)
    right = (np.argmax(logits(inputs), 1) == labels) & ~blank
    return {"accuracy": float(right.mean()), "blank": float(blank.mean())}


def sklearn_digits(size: int = 64) -> tuple[list[np.ndarray], np.ndarray]:
    """scikit-learn's 1,797 8×8 digits (ink 0-16) as `size`×`size` uint8 images, white ink on black."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = [
        cv2.resize(np.uint8(np.round(image * 255 / 16)), (size, size), interpolation=cv2.INTER_CUBIC)
        for image in data.images
    ]
    return images, data.target


def mnist_c(
    logits: Logits,
    images: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
    preprocess_limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Accuracy on every MNIST-C corruption, the model alone and through preprocessing.

    Args:
      logits: the model, (N, 28, 28, 1) float32 in [0, 1] → (N, 10).
      images: (N, 28, 28) uint8 test digits.
      labels: (N,) their labels.
      seed: the corruptions' seed.
      preprocess_limit: score preprocessing on the first this many only (it costs ~1 ms an image).
      progress: called with each corruption's name as it starts.

    Returns:
      {"clean": {...}, "corruptions": {name: {"alone", "preprocessed", "blank"}}, "mean_alone",
      "mean_preprocessed", "examples", "preprocessed_examples"}.
    """
    n = len(images) if preprocess_limit is None else min(preprocess_limit, len(images))
    rows = {}
    for name in ["clean", *CORRUPTIONS]:
        if progress:
            progress(name)
        corrupted = images if name == "clean" else corrupt(images, name, seed)
        through = accuracy_through_preprocessing(logits, corrupted[:n], labels[:n])
        rows[name] = {
            "alone": accuracy_alone(logits, corrupted, labels),
            "preprocessed": through["accuracy"],
            "blank": through["blank"],
        }
    clean = rows.pop("clean")
    return {
        "clean": clean,
        "corruptions": rows,
        "mean_alone": mean(r["alone"] for r in rows.values()),
        "mean_preprocessed": mean(r["preprocessed"] for r in rows.values()),
        "examples": len(images),
        "preprocessed_examples": n,
    }


REPORT_DIGITS = 50  # per class, model alone: 500 digits × 15 corruptions, a few seconds
REPORT_PREPROCESSED = 10  # per class through preprocessing (~1 ms an image): 100 × 15
EXAMPLES = 4  # digits shown per corruption


def stratified(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first `per_class` indices of each class (fewer where a class has fewer), in class order."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])


def report_section(logits: Logits, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The report's Robustness numbers on a fixed stratified subset, cheap enough for every `evaluate`.

    Args:
      logits: the model, (N, 28, 28, 1) float32 in [0, 1] → (N, 10).
      images: (N, 28, 28) uint8 digits of the evaluated split.
      labels: (N,) their labels.
      seed: the corruptions' seed.

    Returns:
      `mnist_c`'s result on `REPORT_DIGITS` digits per class (the first `REPORT_PREPROCESSED` per class also
      through preprocessing), plus `"grid"`: (15 × 28, EXAMPLES × 2 × 28) uint8, each corruption's row of
      examples as corrupted and as preprocessing made them.
    """
    pick = stratified(labels, REPORT_DIGITS)
    order = np.concatenate([stratified(labels[pick], REPORT_PREPROCESSED), np.arange(len(pick))])
    pick = pick[list(dict.fromkeys(order.tolist()))]  # the preprocessed ones first, each digit once
    result = mnist_c(logits, images[pick], labels[pick], seed, preprocess_limit=REPORT_PREPROCESSED * 10)
    shown = images[pick[:: max(1, REPORT_PREPROCESSED * 10 // EXAMPLES)][:EXAMPLES]]
    rows = []
    for name in CORRUPTIONS:
        corrupted = corrupt(shown, name, seed)
        processed = np.uint8(np.round(preprocess_all(corrupted)[0][..., 0] * 255))
        rows.append(np.concatenate([np.concatenate(pair, 1) for pair in zip(corrupted, processed, strict=True)], 1))
    result["grid"] = np.concatenate(rows, 0)
    return result

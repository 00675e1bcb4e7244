"""What the "not a digit" refusal keeps of training digits' features: a kNN bank and Mahalanobis distances.

A network's features (`digitlab.models.features`) are its penultimate activations, then, for a convolutional
network, its last convolution's channels averaged over positions. `FeatureBank` holds, from training digits:

- the L2-normalised penultimate features of `BANK_DIGITS` of them, for the cosine distance to their
  `BANK_NEIGHBOURS` nearest (kNN in feature space, Sun et al., "Out-of-distribution detection with deep nearest
  neighbors", ICML 2022);
- for each part of the features, a shared-covariance Gaussian per class (the whitening and the whitened class
  means), for the Mahalanobis distance to the nearest class mean (Lee et al., "A simple unified framework for
  detecting out-of-distribution samples and adversarial attacks", NeurIPS 2018; one distance per layer is their
  feature ensemble).

How the refusal uses them, and why, is `digitlab.inference.refusal`'s docstring.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitlab.atomic import atomic_write_bytes

BANK_DIGITS = 2000  # training digits whose features form the bank
BANK_NEIGHBOURS = 10
BANK_ARRAYS = ("whitening", "centres", "conv_whitening", "conv_centres")  # saved beside `bank`, each when present


@dataclass(frozen=True)
class FeatureBank:
    """What the refusal keeps of training digits' features, for its feature measures.

    The features are [penultimate (P), last convolution (C)] (`digitlab.models.features`; C = 0 for a network
    without convolutions). `bank`: (K, P) float16, L2-normalised penultimate features, for the cosine kNN.
    `whitening`: (P, P) float32, a factor L of the shared covariance's inverse (L Lᵀ = Σ⁻¹), and `centres`: (10, P)
    float32, the class means times L, for the Mahalanobis distance; `conv_whitening` (C, C) and `conv_centres`
    (10, C) the same for the convolution's part. None in a bank made without labels (or without that part).
    """

    bank: np.ndarray
    whitening: np.ndarray | None = None
    centres: np.ndarray | None = None
    conv_whitening: np.ndarray | None = None
    conv_centres: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        features: np.ndarray,
        labels: np.ndarray | None = None,
        bank_rows: int = BANK_DIGITS,
        penultimate: int | None = None,
    ) -> FeatureBank:
        """The bank of (N, D) training features: the first `bank_rows` for kNN, all N (with labels) for Mahalanobis.

        `penultimate` is P, the width of the penultimate part (None: all D); the rest is the convolution's.
        """
        f = np.asarray(features, np.float32)
        split = f.shape[1] if penultimate is None else penultimate
        kept = f[:bank_rows, :split]
        bank = (kept / np.maximum(np.linalg.norm(kept, axis=1, keepdims=True), 1e-12)).astype(np.float16)
        if labels is None:
            return cls(bank)
        conv = _class_gaussian(f[:, split:], labels) if split < f.shape[1] else (None, None)
        return cls(bank, *_class_gaussian(f[:, :split], labels), *conv)

    def distance(self, features: np.ndarray) -> np.ndarray:
        """(N,) 1 − mean cosine similarity to the `BANK_NEIGHBOURS` nearest bank entries, for (N, D) features."""
        f = np.asarray(features, np.float32)[:, : self.bank.shape[1]]
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        similarity = f @ self.bank.astype(np.float32).T
        k = min(BANK_NEIGHBOURS, similarity.shape[1])
        nearest = np.partition(similarity, similarity.shape[1] - k, axis=1)[:, -k:]
        return (1.0 - nearest.mean(axis=1)).astype(np.float64)

    def mahalanobis(self, features: np.ndarray) -> np.ndarray:
        """The squared Mahalanobis distance of features to the nearest class mean, under the shared covariance.

        Args:
            features: (N, D) the network's features.

        Returns:
            (N,) float64, ≥ 0.

        Raises:
            ValueError: a bank made without labels.
        """
        if self.whitening is None or self.centres is None:
            raise ValueError("this feature bank was made without labels: it has no class means")
        return _nearest_centre(np.asarray(features, np.float32)[:, : len(self.whitening)], self.whitening, self.centres)

    def conv_mahalanobis(self, features: np.ndarray) -> np.ndarray | None:
        """The same distance for the last convolution's part of (N, D) features; None for a bank without it."""
        if self.conv_whitening is None or self.conv_centres is None or self.whitening is None:
            return None
        part = np.asarray(features, np.float32)[:, len(self.whitening) :]
        return _nearest_centre(part, self.conv_whitening, self.conv_centres)

    def save(self, path: Path) -> None:
        """Write the arrays to `path` (.npz) atomically."""
        arrays = {"bank": self.bank}
        arrays |= {name: getattr(self, name) for name in BANK_ARRAYS if getattr(self, name) is not None}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> FeatureBank:
        """The bank `save` wrote (OSError, ValueError, KeyError when it is missing or damaged)."""
        with np.load(path, allow_pickle=False) as data:
            return cls(data["bank"], *(data.get(name) for name in BANK_ARRAYS))


def _class_gaussian(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whitening L with L Lᵀ = Σ⁻¹, the class means times L), float32, of (N, D) features with one shared covariance.

    The covariance is shrunk by 1e-3 on its diagonal (features of a ReLU layer are often dead: a singular
    covariance otherwise).
    """
    f64, labels = np.asarray(features, np.float64), np.asarray(labels)
    means = np.stack([f64[labels == c].mean(axis=0) for c in range(10)])
    centred = f64 - means[labels]
    covariance = centred.T @ centred / len(centred) + 1e-3 * np.eye(f64.shape[1])
    whitening = np.linalg.cholesky(np.linalg.inv(covariance))
    return whitening.astype(np.float32), (means @ whitening).astype(np.float32)


def _nearest_centre(features: np.ndarray, whitening: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,) float64 squared Mahalanobis distance to the nearest class mean, from the whitening and whitened means."""
    z = features @ whitening
    d2 = (z * z).sum(axis=1)[:, None] - 2.0 * z @ centres.T + (centres * centres).sum(axis=1)[None]
    return np.maximum(d2.min(axis=1), 0.0).astype(np.float64)

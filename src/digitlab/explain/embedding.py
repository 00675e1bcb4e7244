"""Where a drawing lands among the training digits: the network's penultimate representation, mapped to 2-D.

The last layer is a linear classifier, so what it sees (the penultimate activations) is the space in which
the network has made digits separable. A fixed sample of training digits is mapped to 2-D with t-SNE (after
PCA to 50 dimensions, the usual preparation), which keeps each digit's neighbourhood. t-SNE has no
`transform` for new points, so a drawing is placed at the mean map position of its 5 nearest training digits
in the full representation (cosine similarity), the same 5 shown beside the map: placing each sample point
this way from the others lands it within about 1% of the map's width of where t-SNE put it. Computed once
per model (~20-30 s on 2 cores) and cached in `RUN/explain/embedding.npz`, keyed by the model file's sha256.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitlab.atomic import atomic_write_bytes
from digitlab.data.images import to_unit_float
from digitlab.explain.engine import Explainer

SAMPLE = 2500  # training digits on the map (a seeded sample, the same for every run of a model)
NEIGHBOURS = 5


@dataclass
class Embedding:
    """A t-SNE map of training digits in a model's penultimate layer.

    Attributes:
        indices: (S,) int, which training images (into `load_mnist().x_train`).
        labels: (S,) int64 classes 0-9.
        features: (S, D) float32, L2-normalised (cosine neighbours).
        coords: (S, 2) float32 map coordinates.
    """

    indices: np.ndarray  # which training images (into load_mnist().x_train)
    labels: np.ndarray
    features: np.ndarray  # (SAMPLE, D) float32, L2-normalised for cosine neighbours
    coords: np.ndarray  # (SAMPLE, 2): the t-SNE map

    def place(self, feature: np.ndarray) -> tuple[float, float]:
        """Where a new input lands: the mean position of its nearest training digits.

        Args:
            feature: (D,) the input's penultimate features.

        Returns:
            (x, y) map coordinates.
        """
        x, y = self.coords[self.neighbours(feature, NEIGHBOURS)].mean(axis=0)
        return float(x), float(y)

    def neighbours(self, feature: np.ndarray, k: int = NEIGHBOURS) -> list[int]:
        """The training digits most alike in the representation (cosine similarity).

        Args:
            feature: (D,) the input's penultimate features.
            k: how many.

        Returns:
            Positions into this sample, most similar first.
        """
        unit = feature / (np.linalg.norm(feature) or 1.0)
        return [int(i) for i in np.argsort(-(self.features @ unit))[:k]]


def build(explainer: Explainer, x_train: np.ndarray, y_train: np.ndarray, seed: int = 0) -> Embedding:
    """Build the map (van der Maaten & Hinton 2008, t-SNE, after PCA to 50 dimensions).

    Args:
        explainer: the model's explainer.
        x_train: (N, 28, 28) uint8 training images.
        y_train: (N,) classes 0-9.
        seed: the sample's and t-SNE's seed.

    Returns:
        The `Embedding` of a seeded sample of `SAMPLE` training digits.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    indices = np.sort(np.random.default_rng(seed).choice(len(x_train), min(SAMPLE, len(x_train)), replace=False))
    features = explainer.features(to_unit_float(x_train[indices]))
    reduced = PCA(n_components=min(50, *features.shape), random_state=seed).fit_transform(features)
    coords = TSNE(2, init="pca", perplexity=30, random_state=seed).fit_transform(reduced)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return Embedding(
        indices=indices,
        labels=y_train[indices].astype(np.int64),
        features=(features / np.maximum(norms, 1e-12)).astype(np.float32),
        coords=coords.astype(np.float32),
    )


def load_or_build(explainer: Explainer, cache: Path, digest: str, data_dir=None) -> Embedding:
    """The cached map when it was made from this model file, else a new one (written atomically).

    Args:
        explainer: the model's explainer.
        cache: the `.npz` cache file.
        digest: the model file's digest.
        data_dir: the MNIST folder (default: digitlab's cache).

    Returns:
        The `Embedding`.
    """
    try:
        with np.load(cache) as f:
            if str(f["digest"]) == digest:
                return Embedding(**{k: f[k] for k in Embedding.__dataclass_fields__})
    except (OSError, KeyError, ValueError):
        pass
    from digitlab.data.mnist import load_mnist

    mnist = load_mnist(data_dir)
    embedding = build(explainer, mnist.x_train, mnist.y_train)
    buf = io.BytesIO()
    np.savez(buf, digest=np.array(digest), **{k: getattr(embedding, k) for k in Embedding.__dataclass_fields__})
    with contextlib.suppress(OSError):  # a read-only run directory: it is rebuilt next time, nothing is lost
        atomic_write_bytes(cache, buf.getvalue())
    return embedding

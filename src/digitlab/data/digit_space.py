"""Where MNIST digits live in pixel space: a PCA basis of training digits and a bank of digits in it.

Two model-free measures of how much a 28×28 looks like *some* MNIST digit, used by the refusal score ("not a
digit") and by the reader (is a cut piece one whole digit?):

- `knn`: the mean Euclidean distance, in the first 40 principal components, to its 5 nearest training digits;
- `residual`: the norm of what those 40 components cannot express (a digit is mostly inside their span).

No TensorFlow; built in about half a second from the training split and kept for the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

BANK_DIGITS = 20000  # training digits in the bank
BASIS_DIGITS = 5000  # training digits the principal components are computed from
COMPONENTS = 40
NEIGHBOURS = 5


@dataclass(frozen=True)
class DigitSpace:
    """A PCA basis (`components`: (40, 784) float32, around `mean`: (784,)) and the bank's coordinates."""

    mean: np.ndarray
    components: np.ndarray
    bank: np.ndarray  # (BANK_DIGITS, 40) float32
    bank_sq: np.ndarray  # (BANK_DIGITS,) squared norms

    def measures(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How far digits lie from the training digits' space.

        Args:
            pixels: (N, 28, 28) float32 in [0, 1], white on black.

        Returns:
            (knn, residual), each (N,) float32: the mean distance to the nearest training digits in the PCA space,
            and the distance from that space (what the 40 components cannot express).
        """
        centred = np.asarray(pixels, np.float32).reshape(-1, 784) - self.mean
        z = centred @ self.components.T
        d2 = self.bank_sq[None] - 2.0 * (z @ self.bank.T) + (z * z).sum(axis=1)[:, None]
        nearest = np.partition(d2, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        knn = np.sqrt(np.maximum(nearest, 0.0)).mean(axis=1)
        residual = np.linalg.norm(centred - z @ self.components, axis=1)
        return knn.astype(np.float32), residual.astype(np.float32)


@lru_cache(maxsize=2)
def digit_space(data_dir: str | Path | None = None) -> DigitSpace:
    """The digit space of the MNIST training split (computed once per process).

    Args:
        data_dir: the MNIST folder (default: digitlab's cache).

    Returns:
        The `DigitSpace`.
    """
    from digitlab.data.images import to_unit_float
    from digitlab.data.mnist import load_mnist

    train = to_unit_float(load_mnist(data_dir).x_train[:BANK_DIGITS]).reshape(-1, 784)
    mean = train.mean(axis=0)
    centred = (train[:BASIS_DIGITS] - mean).astype(np.float64)
    # the principal axes: the top eigenvectors of the 784×784 scatter matrix, asked of LAPACK by index (0.07 s;
    # NumPy's full eigh or an SVD of the data took 7-30 s with this OpenBLAS beside a busy model thread)
    from scipy.linalg import eigh

    _, vectors = eigh(centred.T @ centred, subset_by_index=[784 - COMPONENTS, 783])
    components = np.ascontiguousarray(vectors[:, ::-1].T, np.float32)
    bank = np.ascontiguousarray((train - mean) @ components.T, np.float32)
    return DigitSpace(mean, components, bank, (bank * bank).sum(axis=1))

"""What MNIST's four files are, and the checks that a candidate is them byte for byte.

Their sha256 and sizes from Yann LeCun's page, their shapes, and the conversion of Keras' `mnist.npz` back into
them: what every source of `fetch.py` is held to.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from digitlab.data.idx import decode_idx, idx_bytes
from digitlab.errors import DataError

# name -> (sha256, size in bytes) of the original files from Yann LeCun's MNIST page.
FILES: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47_040_016,
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60_008,
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7_840_016,
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10_008,
    ),
}
SHAPES = {  # name -> the array shape each original file holds
    "train-images-idx3-ubyte": (60_000, 28, 28),
    "train-labels-idx1-ubyte": (60_000,),
    "t10k-images-idx3-ubyte": (10_000, 28, 28),
    "t10k-labels-idx1-ubyte": (10_000,),
}

# IDX file name -> key in Keras' mnist.npz.
_NPZ_KEYS = {
    "train-images-idx3-ubyte": "x_train",
    "train-labels-idx1-ubyte": "y_train",
    "t10k-images-idx3-ubyte": "x_test",
    "t10k-labels-idx1-ubyte": "y_test",
}


class SourceUnavailable(Exception):
    """One source could not provide the files; the chain moves on to the next."""


def sha256(data: bytes) -> str:
    """The SHA-256 of some bytes.

    Args:
        data: the bytes.

    Returns:
        64 lowercase hex digits.
    """
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks by `hashlib.file_digest` (constant memory).

    Args:
        path: a readable file.

    Returns:
        64 lowercase hex digits.

    Raises:
        OSError: when the file cannot be read.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def npz_to_idx(npz_bytes: bytes) -> dict[str, bytes]:
    """Convert Keras' `mnist.npz` to the four IDX files (which must reproduce the originals exactly).

    Args:
        npz_bytes: the `.npz` file's bytes.

    Returns:
        File name → IDX bytes, for the four names of `FILES`.

    Raises:
        SourceUnavailable: when the bytes are not a valid mnist.npz.
    """
    try:
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            return {name: idx_bytes(npz[key]) for name, key in _NPZ_KEYS.items()}
    except (KeyError, ValueError, OSError) as e:
        raise SourceUnavailable(f"not a valid mnist.npz ({e})") from e


def check_files(files: dict[str, bytes]) -> None:
    """Check that all four files are present with the expected sha256.

    Args:
        files: file name → bytes.

    Raises:
        SourceUnavailable: one line per file that is missing or differs.
    """
    problems = []
    for name, (expected, _size) in FILES.items():
        if name not in files:
            problems.append(f"{name} is missing")
            continue
        got = sha256(files[name])
        if got != expected:
            problems.append(f"{name}: sha256 mismatch (got {got[:12]}…, expected {expected[:12]}…)")
    if problems:
        raise SourceUnavailable("\n".join(problems))


def check_idx(name: str, data: bytes) -> str:
    """What is wrong with some bytes as one of MNIST's files, before their hash is even compared.

    Args:
        name: one of the names in `FILES`.
        data: the (un-gzipped) bytes.

    Returns:
        "" when nothing; else why: not IDX (gzip twice, an HTML page, byte order, truncated, ...) or IDX of
        another shape.
    """
    try:
        array = decode_idx(data, ndim=len(SHAPES[name]))
    except DataError as e:
        return str(e)
    if array.shape != SHAPES[name]:
        return f"a well-formed IDX of shape {array.shape}, but MNIST's {name} has shape {SHAPES[name]}"
    return ""

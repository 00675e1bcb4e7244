"""Served copies: each training digit once more, as the preprocessing hands a large drawing of it to the model.

Why: a model trained on MNIST's 28×28s is served `to_mnist_28x28` of canvases, uploads and photos, whose 28×28s
differ from MNIST's in small, regular ways (the stroke width brought toward MNIST's by a disk, Lanczos edges,
saturated cores, the box from a threshold). On validation digits drawn large, `make run`'s model loses 0.5-1.2
points to that shift alone (`bench/served_copies.py`). Training on the copies as well as the originals teaches
the model what the served pixels look like: the same idea as training on the inference pipeline's own output
(Google's "Rules of ML", rule 32: re-use code between the training and serving pipelines).

The copies are drawn with their own small renderer (`drawn_large`: a bicubic upscale and a random stroke width on
a plain canvas), not with `digitlab.data.synthetic.render`, which the benchmarks use: the canvas, photo and number
styles the benchmarks score stay unseen in training.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from digitlab.atomic import atomic_write_bytes
from digitlab.data.fetch import default_data_dir
from digitlab.data.preprocess import map_in_processes, to_mnist_28x28, usable_cpus

SIDES = (60, 240)  # the drawn digit's side in pixels (MNIST's 28 × 2-9): a small upload to a canvas
STROKE_STEPS = (-2, 3)  # stroke radius change, in units of side / 80 (about one MNIST pixel's third): thin to fat
CHUNK = 2000  # digits per worker task
VERSION = 1  # part of the cache key: raise it when `drawn_large` changes (`to_mnist_28x28` is checked by a probe)
PROBE = 8  # copies recomputed to check a cached file against today's preprocessing


def drawn_large(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One MNIST digit drawn as a person's canvas might hold it: larger, its stroke thinner or thicker.

    Args:
      digit: (28, 28) uint8 MNIST digit, white on black.
      rng: the randomness (the side, the stroke change).

    Returns:
      (S + S/2, S + S/2) uint8, white on black: the digit upscaled bicubically to S ∈ `SIDES` pixels, its strokes
      grey-dilated or eroded by a disk of up to 3 × S/80 pixels (an erosion that would remove most of the ink is
      skipped), with a margin of S/4 on each side.
    """
    side = int(rng.integers(SIDES[0], SIDES[1] + 1))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.BICUBIC), np.float32) * np.float32(1 / 255)
    radius = int(rng.integers(STROKE_STEPS[0], STROKE_STEPS[1] + 1)) * side // 80
    if radius:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))
        if radius > 0:
            big = cv2.dilate(big, disk)
        else:
            thinner = cv2.erode(big, disk)
            if np.count_nonzero(thinner > 0.5) > 0.3 * np.count_nonzero(big > 0.5):
                big = thinner
    big = np.pad(big, side // 4)
    return np.clip(big * 255, 0, 255).astype(np.uint8)


def served_copy(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`to_mnist_28x28` of `drawn_large(digit)`: (28, 28) uint8 in [0, 255], what the model is served.

    Args:
      digit: (28, 28) uint8 MNIST digit.
      rng: the randomness of `drawn_large`.

    Returns:
      (28, 28) uint8; all zero in the rare case the preprocessing finds no digit in the drawing.
    """
    pixels = to_mnist_28x28(drawn_large(digit, rng)).pixels
    return np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8)


def _copies(task: tuple[np.ndarray, int, int]) -> np.ndarray:
    """The served copies of one chunk: digit i of the whole array gets the generator seeded (seed, i)."""
    digits, start, seed = task
    out = np.empty_like(digits)
    for i, digit in enumerate(digits):
        out[i] = served_copy(digit, np.random.default_rng([seed, start + i]))
    return out


def _computed(x: np.ndarray, seed: int, workers: int) -> Iterator[np.ndarray]:
    """The copies chunk by chunk, in order, on `workers` processes (`map_in_processes`; here when 1)."""
    tasks = [(x[i : i + CHUNK], i, seed) for i in range(0, len(x), CHUNK)]
    if workers <= 1 or len(tasks) == 1:
        yield from map(_copies, tasks)
        return
    died = (
        "a process making served copies died: out of memory, or a script that calls served_copies outside "
        "`if __name__ == '__main__':` (spawned workers import it again); pass workers=1 to stay in-process"
    )
    yield from map_in_processes(_copies, tasks, workers, died)


def served_copies(
    x: np.ndarray, seed: int = 0, data_dir: str | Path | None = None, workers: int | None = None
) -> np.ndarray:
    """`served_copy` of every digit of `x`, cached in the data folder.

    About 2 ms a digit on one core (55,000 digits: ~1 minute on 2 cores, once). The cache is keyed by the digits,
    the seed and `VERSION`, and checked against today's preprocessing by recomputing `PROBE` copies: a change to
    `to_mnist_28x28` makes them again instead of training on stale pixels.

    Args:
      x: (N, 28, 28) uint8 MNIST digits.
      seed: the renderer's seed (digit i uses the generator seeded (seed, i)).
      data_dir: the cache's parent (default: the MNIST data folder, `$DIGITLAB_DATA` or ~/.cache/digitlab).
      workers: processes (default: the CPUs this process may use).

    Returns:
      (N, 28, 28) uint8 copies, row i of digit i.

    Raises:
      DigitlabError: a worker process died. (A cache that cannot be read is made again; one that cannot be
        written is skipped.)
    """
    from tqdm import tqdm

    key = hashlib.sha256(np.ascontiguousarray(x).tobytes() + f"{seed}/{VERSION}".encode()).hexdigest()[:16]
    path = Path(data_dir or default_data_dir()) / "served-copies" / f"{key}.npy"
    probe = _copies((x[:PROBE], 0, seed))
    try:
        cached = np.load(path, mmap_mode="r")
        if cached.shape == x.shape and np.array_equal(cached[:PROBE], probe):
            return np.asarray(cached)
    except (OSError, ValueError):  # none yet, or not a readable array: made again
        pass
    workers = workers or usable_cpus()
    chunks = _computed(x, seed, workers)
    bar = tqdm(chunks, total=-(-len(x) // CHUNK), desc="served copies", unit="chunk", disable=None)
    copies = np.concatenate(list(bar))
    with contextlib.suppress(OSError):  # a read-only or full data folder: the copies serve this run uncached
        atomic_write_bytes(path, _npy_bytes(copies))
    return copies


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()

"""MNIST on disk → NumPy → tf.data.

`load_mnist` reads the four verified IDX files (fetching them first when missing), `split_train_validation`
carves a seeded, stratified validation set out of the 60k training images so the 10k test set is only ever
used for the final report, and `make_dataset` builds the tf.data pipeline the trainers consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digitlab.data.fetch import default_data_dir, fetch_mnist, verify_data_dir
from digitlab.data.idx import decode_idx
from digitlab.data.images import NUM_CLASSES
from digitlab.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

DEFAULT_VALIDATION_SIZE = 5000


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file, raw or gzip whatever its name.

    Args:
        path: The file; gzip is recognised by its magic bytes, not by its name.
        ndim: The number of dimensions it must have (3 for images, 1 for labels); None accepts any.

    Returns:
        The array as stored (uint8 for MNIST: (N, 28, 28) images or (N,) labels).

    Raises:
        DataError: The file cannot be read or is not a well-formed IDX of `ndim` dims; the message names the file
            and what it holds instead (see `digitlab.data.idx.decode_idx`).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    try:
        return decode_idx(raw, ndim)
    except DataError as e:
        raise DataError(f"{path}: {e}") from e


@dataclass(frozen=True)
class Mnist:
    """The official split: 60k training and 10k test images (uint8, 28×28) with uint8 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_mnist(data_dir: str | Path | None = None, fetch: bool = True) -> Mnist:
    """Load verified MNIST from `data_dir`, fetching it first if it is missing and `fetch` is true.

    Args:
        data_dir: The folder holding the four IDX files (default: `default_data_dir()`).
        fetch: Fetch (and verify) MNIST when the folder does not hold verified files; False raises instead.

    Returns:
        The official split: (60000, 28, 28) and (10000, 28, 28) uint8 images in [0, 255], white digits on black,
        with (N,) uint8 labels in 0..9.

    Raises:
        DataError: The files are not usable and `fetch` is false, or a file is not a well-formed IDX.
        FetchError: Fetching was needed and no source gave verified files.
    """
    data_dir = Path(data_dir or default_data_dir()).expanduser()
    problems = verify_data_dir(data_dir)
    if problems:
        if not fetch:
            raise DataError(f"MNIST in {data_dir} is not usable ({problems[0]}); run `digitlab fetch`")
        fetch_mnist(data_dir, force=True)
    arrays = {}
    for key, name, ndim in (
        ("x_train", "train-images-idx3-ubyte", 3),
        ("y_train", "train-labels-idx1-ubyte", 1),
        ("x_test", "t10k-images-idx3-ubyte", 3),
        ("y_test", "t10k-labels-idx1-ubyte", 1),
    ):
        arrays[key] = read_idx(data_dir / name, ndim=ndim)
    return Mnist(**arrays)


def split_train_validation(
    labels: np.ndarray, validation_size: int = DEFAULT_VALIDATION_SIZE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of indices into (train, validation); every class keeps its share."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    if validation_size == 0:
        return indices, indices[:0]
    train, val = train_test_split(indices, test_size=validation_size, stratify=labels, random_state=seed, shuffle=True)
    return np.sort(train), np.sort(val)


@dataclass(frozen=True)
class Splits:
    """Train / validation / test arrays; the validation set comes out of the official training set."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_splits(
    data_dir: str | Path | None = None,
    validation_size: int = DEFAULT_VALIDATION_SIZE,
    seed: int = 0,
    limit: int | None = None,
    full_train: bool = False,
) -> Splits:
    """Load MNIST and split off the validation set; `limit` keeps a stratified subset of the training part.

    `full_train` trains on all 60k: the validation images are then *also* in the training part, kept only so
    the run still reports the same numbers (marked as seen in training), never to choose anything.
    """
    mnist = load_mnist(data_dir)
    train, val = split_train_validation(mnist.y_train, validation_size, seed)
    if full_train:
        train = np.arange(len(mnist.y_train))
    if limit is not None and limit < len(train):
        rng = np.random.default_rng(seed)
        train = np.sort(rng.choice(train, size=limit, replace=False))
    return Splits(
        mnist.x_train[train],
        mnist.y_train[train],
        mnist.x_train[val],
        mnist.y_train[val],
        mnist.x_test,
        mnist.y_test,
    )


def fixed_order(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training set in one seeded random order, made once.

    `--order fixed` then slices it in order every epoch, never reshuffling (the data order of the public one-epoch
    MNIST record, tuomaso/train_mnist_fast).

    The order depends only on `seed` (a fresh permutation per seed, so a mean over seeds averages over orders
    too); nothing about it is chosen by looking at any score.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    return images[order], labels[order]


def training_order(splits: Splits, order: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels in the order the pipeline should get them.

    "reshuffle": as split (tf.data reshuffles them, seeded, every epoch); "fixed": in `fixed_order` (one
    permutation, made here, kept for every epoch).
    """
    if order == "fixed":
        return fixed_order(splits.x_train, splits.y_train, seed)
    return splits.x_train, splits.y_train


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int | None = None,
    flatten: bool = False,
    one_hot: bool = False,
    cache: bool = True,
    shuffle_buffer: int | None = None,
    drop_remainder: bool = False,
    augment: bool = False,
    handwriting: bool = False,
    handwriting_style: str = "default",
) -> tf.data.Dataset:
    """A tf.data pipeline of float32 images in [0, 1], shaped (B, 28, 28, 1) or (B, 784) when `flatten`.

    The uint8 tensors are cached and batched before the cast, so the per-example work is one vectorised
    op per batch rather than a Python-level map per image. `augment` adds one random affine warp per image,
    `handwriting` the handwriting augmentation instead (`digitlab.data.augment`, seeded by `seed`, in the named
    `handwriting_style` of `augment.STYLES`): for training batches only, never for evaluation.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    shape = (-1, 784) if flatten else (-1, 28, 28, 1)

    def prepare(x, y=None):
        x = tf.reshape(tf.cast(x, tf.float32) / 255.0, shape)
        if y is None:
            return x
        y = tf.one_hot(tf.cast(y, tf.int32), NUM_CLASSES) if one_hot else tf.cast(y, tf.int32)
        return x, y

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if augment or handwriting:
        if labels is None:
            raise ValueError("augmentation is for labelled training batches")
        from digitlab.data.augment import STYLES, augment_dataset, handwriting_dataset

        if handwriting:
            ds = handwriting_dataset(ds, seed or 0, STYLES[handwriting_style])
        else:
            ds = augment_dataset(ds, seed or 0)
    return ds.prefetch(tf.data.AUTOTUNE)


def split_seed(settings: dict) -> int:
    """The seed of a run's validation split: `split_seed` when set (shared by an ensemble's members), else `seed`.

    Args:
      settings: a run's settings (config.json's `settings`, any schema version).

    Returns:
      The seed (0 when the settings name none).
    """
    value = settings.get("split_seed")
    return int(settings.get("seed", 0) if value is None else value)


def validation_split_of(settings: dict) -> tuple[int, int]:
    """(validation size, split seed) of a run: which training images it held out.

    Args:
      settings: a run's settings (config.json's `settings`, any schema version).

    Returns:
      The size (DEFAULT_VALIDATION_SIZE when unrecorded) and the seed (see `split_seed`).
    """
    return int(settings.get("validation_size", DEFAULT_VALIDATION_SIZE)), split_seed(settings)


def splits_for(settings: dict, data_dir: str | Path | None = None) -> Splits:
    """The train/validation/test split a run was trained with, rebuilt from its settings.

    Every reader of a finished run (evaluate, ensemble, finetune, the refusal) takes its validation images from
    here, so none can calibrate or choose on images the run trained on.

    Args:
      settings: the run's settings (config.json's `settings`).
      data_dir: MNIST location (default $DIGITLAB_DATA or ~/.cache/digitlab).

    Returns:
      The Splits: uint8 (N, 28, 28) images and uint8 labels; the training part is the full one (no `limit`).

    Raises:
      DataError: MNIST is missing and cannot be fetched, or its files are corrupt.
    """
    size, seed = validation_split_of(settings)
    return load_splits(data_dir, size, seed)


# --- summary ------------------------------------------------------------------------------------------------


def describe(splits: Splits) -> dict:
    """Counts per class per split and pixel statistics (of [0, 1] pixels, as the models see them)."""
    out = {}
    for name in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        pixels = x.astype(np.float64) / 255.0
        out[name] = {
            "count": len(y),
            "per_class": np.bincount(y, minlength=NUM_CLASSES).tolist(),
            "pixel_mean": float(pixels.mean()) if len(x) else float("nan"),
            "pixel_std": float(pixels.std()) if len(x) else float("nan"),
        }
    return out


def format_summary(summary: dict) -> str:
    """`describe`'s numbers as a table: one row per split, counts per class, pixel mean and std."""
    lines = [f"{'split':<6}{'count':>7}  " + "".join(f"{d:>6}" for d in range(NUM_CLASSES)) + "    mean    std"]
    for name, s in summary.items():
        counts = "".join(f"{c:>6}" for c in s["per_class"])
        lines.append(f"{name:<6}{s['count']:>7}  {counts}  {s['pixel_mean']:.4f} {s['pixel_std']:.4f}")
    return "\n".join(lines)


def save_sample_grid(images: np.ndarray, labels: np.ndarray, path: str | Path, per_class: int = 10) -> Path:
    """A PNG grid with `per_class` sample digits for each class (one row per class)."""
    from matplotlib.figure import Figure

    from digitlab.atomic import save_figure

    fig = Figure(figsize=(per_class * 0.8, NUM_CLASSES * 0.8 + 0.5))
    axes = fig.subplots(NUM_CLASSES, per_class, squeeze=False)
    for digit in range(NUM_CLASSES):
        picks = np.flatnonzero(labels == digit)[:per_class]
        for j in range(per_class):
            ax = axes[digit, j]
            ax.axis("off")
            if j < len(picks):
                ax.imshow(images[picks[j]], cmap="gray_r", vmin=0, vmax=255)
        axes[digit, 0].text(-8, 14, str(digit), fontsize=12, va="center", ha="right")
    fig.suptitle("MNIST training samples, one row per class")
    return save_figure(fig, path)

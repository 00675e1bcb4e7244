"""Training-time augmentation: one fused random affine warp per image, inside the tf.data pipeline.

Rotation, zoom, shear and shift are composed into a single 3×3 matrix per image and applied with one
bilinear resampling (`keras.ops.image.affine_transform`), so a digit is interpolated once, not once per
transform, and the work is one vectorised op per batch. The randomness is stateless and seeded per batch
(`tf.data.Dataset.random`), so a seed gives the same augmented stream on every run. Only the training
pipeline is augmented; validation, test and serving always see the digits as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class Affine:
    """Ranges of the random affine (uniform in ±range); the defaults are Deotte's MNIST settings plus mild shear."""

    rotation: float = 10.0  # degrees
    zoom: float = 0.10  # relative scale change
    shift: float = 0.10  # fraction of the side (0.1 × 28 = 2.8 px)
    shear: float = 0.15  # radians (~8.6°)


def affine_matrices(seed: tf.Tensor, batch: tf.Tensor, size: int, affine: Affine) -> tf.Tensor:
    """Random affine transforms about the image centre, as `keras.ops.image.affine_transform` takes them.

    Args:
        seed: (2,) int seed of the stateless random ops.
        batch: how many transforms (a scalar tensor).
        size: the image side in pixels.
        affine: the ranges.

    Returns:
        (batch, 8) float32 projective transforms mapping output pixels to input pixels.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 4)

    def uniform(i: int, bound: float) -> tf.Tensor:
        return tf.random.stateless_uniform((batch,), seeds[i], -bound, bound)

    angle = uniform(0, math.radians(affine.rotation))
    scale = 1.0 + uniform(1, affine.zoom)
    shear = uniform(2, affine.shear)
    shift = tf.random.stateless_uniform((batch, 2), seeds[3], -affine.shift, affine.shift) * size
    cos, sin = tf.cos(angle), tf.sin(angle)
    # A = rotation · shear · scale (output → input coordinates); inverse-vs-forward does not matter for a
    # distribution symmetric about the identity.
    a0, a1 = cos / scale, (-sin + cos * tf.tan(shear)) / scale
    b0, b1 = sin / scale, (cos + sin * tf.tan(shear)) / scale
    centre = (size - 1) / 2.0
    a2 = centre - a0 * centre - a1 * centre + shift[:, 0]
    b2 = centre - b0 * centre - b1 * centre + shift[:, 1]
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def augment_batch(images: tf.Tensor, seed: tf.Tensor, affine: Affine = Affine()) -> tf.Tensor:
    """Warp a batch with random affines (bilinear, zero fill).

    Args:
        images: (B, 28, 28, 1) float32 in [0, 1].
        seed: (2,) int seed of the stateless random ops.
        affine: the ranges.

    Returns:
        (B, 28, 28, 1) float32, still in [0, 1].
    """
    import keras
    import tensorflow as tf

    transforms = affine_matrices(seed, tf.shape(images)[0], images.shape[1] or 28, affine)
    warped = keras.ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant")
    return tf.clip_by_value(warped, 0.0, 1.0)


def augment_dataset(ds: tf.data.Dataset, seed: int, affine: Affine = Affine()) -> tf.data.Dataset:
    """Add the random affine to a batched (images, labels) dataset; labels pass through untouched.

    Args:
        ds: batches of ((B, 28, 28, 1) float32 in [0, 1], labels).
        seed: the seed of the per-batch seeds (a new draw every epoch).
        affine: the ranges.

    Returns:
        The augmented dataset.
    """
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda batch, s: (augment_batch(batch[0], s, affine), batch[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
    )

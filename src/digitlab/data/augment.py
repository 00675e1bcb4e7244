"""Training-time augmentation: one fused random affine warp per image, inside the tf.data pipeline.

Rotation, zoom, shear and shift are composed into a single 3×3 matrix per image and applied with one
bilinear resampling (`keras.ops.image.affine_transform`), so a digit is interpolated once, not once per
transform, and the work is one vectorised op per batch. The randomness is stateless and seeded per batch
(`tf.data.Dataset.random`), so a seed gives the same augmented stream on every run. Only the training
pipeline is augmented; validation, test and serving always see the digits as they are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
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
    return map_seeded(ds, seed, lambda images, s: augment_batch(images, s, affine))


def map_seeded(ds: tf.data.Dataset, seed: int, augment: Callable) -> tf.data.Dataset:
    """Apply `augment(images, (2,) seed)` to each batch's images with a fresh stateless seed per batch and epoch.

    Args:
        ds: batches of (images, labels).
        seed: the seed of the per-batch seeds.
        augment: the batch augmentation; labels pass through untouched.

    Returns:
        The augmented dataset (parallel map).
    """
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds).map(
        lambda batch, s: (augment(batch[0], s), batch[1]), num_parallel_calls=tf.data.AUTOTUNE
    )


# --- how people write and how cameras see ---------------------------------------------------------------------
#
# The `handwriting` augmentation: families drawn from how people write (slant, size, stroke width, wobble,
# outlined "bubble" strokes) and how canvases and cameras see (blur, sensor noise, low contrast, grey or uneven
# paper, stray strokes across the digit). None of them is one of the MNIST-C corruption functions that
# `digitlab.data.corruptions` scores a model on (Mu & Gilmer 2019); their parameters were set from the
# writing and imaging they model and chosen on validation against our own held-out variants, not on MNIST-C.
# Everything is vectorised TensorFlow on a batch, seeded statelessly: no per-image Python on the training path.


@dataclass(frozen=True)
class Handwriting:
    """Ranges of the handwriting augmentation (each image draws its own values).

    Attributes:
      affine: the geometric warp (wider than `Affine()`: people slant, shrink and misplace digits).
      elastic: Simard et al. (2003)'s elastic distortion: displacement std in pixels after smoothing.
      elastic_sigma: the smoothing Gaussian's sigma in pixels (Simard: 4).
      stroke: probability of thinning or thickening the strokes (by 0.5 or 1 px, at 2× resolution).
      outline: probability of drawing the digit as its outline (a hollow "bubble" digit).
      blur: probability of a Gaussian blur (sigma 0.5-1.5 px).
      noise: probability of additive Gaussian sensor noise (std up to 0.25).
      background: probability of a grey or unevenly lit background under lower-contrast ink.
      strokes: probability of one or two stray straight strokes across the image.
      skip: probability of a skipping pen: one or two short gaps (1.5-3 px) cut across the strokes. The one
        family that removes ink; a pen skip is the held-out shift the other families lose most on.
      clean: probability that an image gets none of the photometric families (only the warp).
    """

    affine: Affine = Affine(rotation=15.0, zoom=0.2, shift=0.15, shear=0.3)
    elastic: float = 1.0
    elastic_sigma: float = 4.0
    stroke: float = 0.5
    outline: float = 0.1
    blur: float = 0.25
    noise: float = 0.25
    background: float = 0.35
    strokes: float = 0.2
    skip: float = 0.0
    clean: float = 0.3


# Named styles of the handwriting augmentation (`digitlab train --handwriting-style NAME`), screened by
# bench/robust_recipe.py on validation digits. "default" is the style `--recipe robust` has used since it was set
# by hand; the others are what that search's first slice pointed at (the default's families cost contrast and
# texture on held-out shifts: milder, and one that removes ink).
MILD = Handwriting(
    affine=Affine(rotation=10.0, zoom=0.1, shift=0.1, shear=0.15),
    elastic=0.7,
    stroke=0.3,
    outline=0.05,
    blur=0.15,
    noise=0.15,
    background=0.2,
    strokes=0.1,
    clean=0.5,
)
STYLES: dict[str, Handwriting] = {
    "default": Handwriting(),
    "mild": MILD,
    "skipping pen": Handwriting(skip=0.3),
    "mild, skipping pen": dataclasses.replace(MILD, skip=0.3),
}


def _gaussian_kernel(sigma: float, radius: int):
    import tensorflow as tf

    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-0.5 * (x / sigma) ** 2)
    return k / tf.reduce_sum(k)


def _separable_blur(images, sigma: float):
    """Gaussian blur of (B, H, W, C) images, zero padding."""
    import tensorflow as tf

    radius = max(1, round(3 * sigma))
    k = _gaussian_kernel(sigma, radius)
    channels = images.shape[-1]
    kx = tf.tile(tf.reshape(k, (1, -1, 1, 1)), (1, 1, channels, 1))
    ky = tf.tile(tf.reshape(k, (-1, 1, 1, 1)), (1, 1, channels, 1))
    out = tf.nn.depthwise_conv2d(images, kx, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(out, ky, [1, 1, 1, 1], "SAME")


def warp_grid(seed: tf.Tensor, batch: tf.Tensor, size: int, style: Handwriting) -> tf.Tensor:
    """Per-image sampling coordinates: the random affine composed with an elastic displacement field.

    Args:
      seed: (2,) int seed.
      batch: how many images (a scalar tensor).
      size: the image side in pixels.
      style: the ranges.

    Returns:
      (batch, size, size, 2) float32 input coordinates (x, y) for every output pixel.
    """
    import tensorflow as tf

    s_affine, s_field = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    m = affine_matrices(s_affine, batch, size, style.affine)  # output → input: x' = a0 x + a1 y + a2, ...
    ys, xs = tf.meshgrid(tf.range(size, dtype=tf.float32), tf.range(size, dtype=tf.float32), indexing="ij")
    x = m[:, 0, None, None] * xs + m[:, 1, None, None] * ys + m[:, 2, None, None]
    y = m[:, 3, None, None] * xs + m[:, 4, None, None] * ys + m[:, 5, None, None]
    field = tf.random.stateless_normal((batch, size, size, 2), s_field)
    field = _separable_blur(field, style.elastic_sigma)
    # smoothing shrinks the field's std by ~ 2·sqrt(pi)·sigma: rescale so `elastic` is the std in pixels
    field = field * (style.elastic * 2.0 * math.sqrt(math.pi) * style.elastic_sigma)
    return tf.stack([x + field[..., 0], y + field[..., 1]], axis=-1)


def bilinear_sample(images: tf.Tensor, grid: tf.Tensor) -> tf.Tensor:
    """Sample (B, H, W, 1) images at (B, H, W, 2) (x, y) coordinates; outside the image is 0."""
    import tensorflow as tf

    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])  # a ring of zeros: clamped look-ups read 0
    x, y = grid[..., 0] + 1.0, grid[..., 1] + 1.0
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = x - x0, y - y0
    batch_idx = tf.broadcast_to(tf.range(shape[0])[:, None, None], tf.shape(x0))

    def at(yy, xx):
        yi = tf.clip_by_value(tf.cast(yy, tf.int32), 0, h + 1)
        xi = tf.clip_by_value(tf.cast(xx, tf.int32), 0, w + 1)
        return tf.gather_nd(padded, tf.stack([batch_idx, yi, xi], axis=-1))[..., 0]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bottom * fy)[..., None]


def _choose(mask, a, b):
    """Per image: `a` where mask (B,) is true, else `b`."""
    import tensorflow as tf

    return tf.where(mask[:, None, None, None], a, b)


def _stroke_width(images, seeds):
    """Thin or thicken strokes by 0.5 or 1 px: grey erosion/dilation at 2× resolution (3×3 or 5×5 window)."""
    import tensorflow as tf

    b = tf.shape(images)[0]
    big = tf.image.resize(images, (56, 56), method="bilinear")
    variants = [
        -tf.nn.max_pool2d(-big, 5, 1, "SAME"),
        -tf.nn.max_pool2d(-big, 3, 1, "SAME"),
        big,
        tf.nn.max_pool2d(big, 3, 1, "SAME"),
        tf.nn.max_pool2d(big, 5, 1, "SAME"),
    ]
    pick = tf.random.stateless_uniform((b,), seeds[0], 0, 5, dtype=tf.int32)
    stacked = tf.stack(variants, axis=1)  # (B, 5, 56, 56, 1)
    chosen = tf.gather(stacked, pick, batch_dims=1)
    return tf.nn.avg_pool2d(chosen, 2, 2, "VALID")


def _outline(images):
    """The digit's outline, about 1 px wide: grey dilation minus grey erosion at 2× resolution."""
    import tensorflow as tf

    big = tf.image.resize(images, (56, 56), method="bilinear")
    ring = tf.nn.max_pool2d(big, 3, 1, "SAME") + tf.nn.max_pool2d(-big, 3, 1, "SAME")
    return tf.clip_by_value(tf.nn.avg_pool2d(ring, 2, 2, "VALID") * 1.6, 0.0, 1.0)


def _stray_strokes(seed, batch, size: int):
    """One or two straight strokes of random position, angle, width (0.8-2 px) and intensity, (B, H, W, 1)."""
    import tensorflow as tf

    ys, xs = tf.meshgrid(tf.range(size, dtype=tf.float32), tf.range(size, dtype=tf.float32), indexing="ij")
    seeds = tf.random.experimental.stateless_split(seed, 2)
    out = tf.zeros((batch, size, size), tf.float32)
    for i in range(2):
        u = tf.random.stateless_uniform((batch, 7), seeds[i])
        x0, y0, x1, y1 = (u[:, j, None, None] * size for j in range(4))
        width = 0.8 + 1.2 * u[:, 4, None, None]
        strength = (0.5 + 0.5 * u[:, 5, None, None]) * tf.cast(
            u[:, 6, None, None] < (1.0 if i == 0 else 0.4), tf.float32
        )
        dx, dy = x1 - x0, y1 - y0
        t = tf.clip_by_value(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy + 1e-6), 0.0, 1.0)
        dist = tf.sqrt((xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2)
        out = tf.maximum(out, strength * tf.clip_by_value(width / 2 + 0.5 - dist, 0.0, 1.0))
    return out[..., None]


def _pen_skips(seed, batch, size: int):
    """A multiplicative mask (B, H, W, 1) in [0, 1] with one or two short gaps across the strokes.

    Each gap is a band 1.5-3 px wide and 4-8 px long at a random angle, centred within the digit's middle
    16×16 pixels (where the strokes are): the ink under it is erased, as where a pen skips.
    """
    import tensorflow as tf

    ys, xs = tf.meshgrid(tf.range(size, dtype=tf.float32), tf.range(size, dtype=tf.float32), indexing="ij")
    seeds = tf.random.experimental.stateless_split(seed, 2)
    mask = tf.ones((batch, size, size), tf.float32)
    for i in range(2):
        u = tf.random.stateless_uniform((batch, 6), seeds[i])
        cx, cy = (6.0 + 16.0 * u[:, j, None, None] for j in range(2))
        angle = math.pi * u[:, 2, None, None]
        half_width = 0.75 + 0.75 * u[:, 3, None, None]
        half_length = 2.0 + 2.0 * u[:, 4, None, None]
        on = tf.cast(u[:, 5, None, None] < (1.0 if i == 0 else 0.5), tf.float32)
        dx, dy = xs - cx, ys - cy
        along = tf.abs(dx * tf.cos(angle) + dy * tf.sin(angle))
        across = tf.abs(-dx * tf.sin(angle) + dy * tf.cos(angle))
        gap = tf.clip_by_value(half_width + 0.5 - across, 0.0, 1.0) * tf.clip_by_value(half_length - along, 0.0, 1.0)
        mask = mask * (1.0 - on * gap)
    return mask[..., None]


def _smooth_field(seed, batch, size: int, cells: int = 3):
    """A slowly varying field in [0, 1]: a random cells×cells grid, bicubically upsampled (uneven light)."""
    import tensorflow as tf

    grid = tf.random.stateless_uniform((batch, cells, cells, 1), seed)
    return tf.clip_by_value(tf.image.resize(grid, (size, size), method="bicubic"), 0.0, 1.0)


def handwriting_batch(images: tf.Tensor, seed: tf.Tensor, style: Handwriting = Handwriting()) -> tf.Tensor:
    """Apply the handwriting augmentation to a batch.

    Args:
      images: (B, 28, 28, 1) float32 in [0, 1], white ink on black.
      seed: (2,) int seed of the stateless random ops (same seed, same batch).
      style: the ranges and probabilities.

    Returns:
      (B, 28, 28, 1) float32 in [0, 1].
    """
    import tensorflow as tf

    b = tf.shape(images)[0]
    size = images.shape[1] or 28
    seeds = tf.random.experimental.stateless_split(seed, 14)

    def coin(i, p):
        return tf.random.stateless_uniform((b,), seeds[i]) < p

    def level(i, low, high):
        return tf.random.stateless_uniform((b, 1, 1, 1), seeds[i], low, high)

    x = _choose(coin(0, style.stroke), _stroke_width(images, seeds[1:2]), images)
    x = bilinear_sample(x, warp_grid(seeds[2], b, size, style))
    x = _choose(coin(3, style.outline), _outline(x), x)
    if style.skip:  # before the photometric families: the paper shows through the gap, not black
        x = _choose(coin(12, style.skip), x * _pen_skips(seeds[13], b, size), x)
    photometric = ~coin(4, style.clean)
    x = tf.maximum(
        x, _choose(coin(5, style.strokes) & photometric, _stray_strokes(seeds[5], b, size), tf.zeros_like(x))
    )
    blurred = _separable_blur(x, 1.0)
    amount = level(6, 0.4, 1.0)
    x = _choose(coin(6, style.blur) & photometric, (1 - amount) * x + amount * blurred * 1.3, x)
    # paper and light: ink of lower contrast over a grey, possibly uneven, background
    lit = coin(7, style.background) & photometric
    bg = level(8, 0.0, 0.55) * (0.4 + 0.6 * _smooth_field(seeds[8], b, size))
    ink = bg + (1.0 - bg) * level(9, 0.45, 1.0)  # never below the paper: a faint digit, never an erased one
    x = _choose(lit, bg + (ink - bg) * tf.clip_by_value(x, 0.0, 1.0), x)
    noisy = coin(10, style.noise) & photometric
    noise = tf.random.stateless_normal(tf.shape(x), seeds[10]) * level(11, 0.03, 0.25)
    x = _choose(noisy, x + noise, x)
    return tf.clip_by_value(x, 0.0, 1.0)


def handwriting_dataset(ds: tf.data.Dataset, seed: int, style: Handwriting = Handwriting()) -> tf.data.Dataset:
    """Add the handwriting augmentation to a batched (images, labels) dataset; labels pass through.

    Args:
      ds: batches of ((B, 28, 28, 1) float32 in [0, 1], labels).
      seed: the seed of the per-batch seeds (a new draw every epoch).
      style: the ranges and probabilities.

    Returns:
      The augmented dataset.
    """
    return map_seeded(ds, seed, lambda images, s: handwriting_batch(images, s, style))

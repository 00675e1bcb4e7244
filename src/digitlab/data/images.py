"""MNIST's image facts in one place: the 28×28 size, the 10 classes, and uint8 pixels → the floats a model reads.

Every plane imports these instead of writing `28`, `10` or `astype(np.float32) / 255.0` again.
"""

from __future__ import annotations

import numpy as np

IMAGE_SIDE = 28  # pixels per side of an MNIST digit
INPUT_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)  # one digit, as a model reads it (channels last)
NUM_CLASSES = 10  # the digits 0-9


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1], the same shape: uint8 [0, 255] is divided by 255, floats pass through.

    Args:
        images: any shape; uint8 in [0, 255], or floats already in [0, 1].

    Returns:
        float32, same shape, values in [0, 1] (a float input is cast, not rescaled).
    """
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def to_input_batch(images: np.ndarray) -> np.ndarray:
    """A batch of digits as a model reads it: float32 (N, 28, 28, 1) in [0, 1].

    Args:
        images: (N, 28, 28) or (N, 28, 28, 1), uint8 [0, 255] or floats in [0, 1].

    Returns:
        float32 (N, 28, 28, 1) in [0, 1].

    Raises:
        ValueError: when the images do not hold 28×28 pixels each.
    """
    return to_unit_float(images).reshape(-1, *INPUT_SHAPE)

"""The one uint8 → float helper: the division every plane used to write again, and the model's input shape."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data.images import INPUT_SHAPE, NUM_CLASSES, to_input_batch, to_unit_float


def test_uint8_becomes_float32_in_unit_range_and_floats_pass_through():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    x = to_unit_float(images)
    assert x.dtype == np.float32 and x.shape == images.shape
    np.testing.assert_array_equal(x, images.astype(np.float32) / 255.0)  # bit for bit what the callers computed
    assert x.min() == 0.0 and x.max() == 1.0
    floats = np.full((2, 28, 28), 0.5, np.float64)
    assert to_unit_float(floats).dtype == np.float32 and np.all(to_unit_float(floats) == 0.5)  # not rescaled


def test_a_batch_is_shaped_as_a_model_reads_it():
    digits = np.zeros((3, 28, 28), np.uint8)
    assert to_input_batch(digits).shape == (3, *INPUT_SHAPE) and INPUT_SHAPE == (28, 28, 1) and NUM_CLASSES == 10
    assert to_input_batch(digits[..., None]).shape == (3, 28, 28, 1)
    with pytest.raises(ValueError):
        to_input_batch(np.zeros((3, 27, 27), np.uint8))

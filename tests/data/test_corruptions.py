"""MNIST-C's corruptions (digitlab.data.corruptions): seeded, shape- and range-keeping, and the digit survives."""

from __future__ import annotations

import numpy as np
import pytest

from digitlab.data.corruptions import CORRUPTIONS, corrupt

RANDOM = {
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "shear",
    "rotate",
    "translate",
    "fog",
    "spatter",
    "dotted_line",
    "zigzag",
}


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.x_test[:24]


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_seeded_and_keeps_shape_dtype_and_range(digits, name):
    out = corrupt(digits, name, seed=1)
    assert out.shape == digits.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(digits, name, seed=1))  # same seed, same images
    assert not np.array_equal(out, digits)  # it did something
    if name in RANDOM:
        assert not np.array_equal(out, corrupt(digits, name, seed=2))  # another seed, other draws


LOCAL = ("shot_noise", "impulse_noise", "glass_blur", "spatter", "dotted_line", "zigzag", "canny_edges")
MOVING = {"shear": 1.0, "rotate": 1.0, "translate": 1.0, "motion_blur": 1.0, "scale": 0.49}  # ink kept ×


@pytest.mark.parametrize("name", LOCAL)
def test_local_corruptions_leave_the_digit_where_it_was(digits, name):
    """Noise, blur, spatter, added lines and edges leave each digit more like itself than like the others."""
    from scipy import ndimage

    def view(x):
        return ndimage.gaussian_filter(x.astype(np.float64), (0, 1.5, 1.5)).reshape(len(x), -1)

    out, ref = view(corrupt(digits, name, seed=0)), view(digits)
    corr = np.corrcoef(np.vstack([out, ref]))[: len(out), len(out) :]
    assert np.mean(corr.argmax(1) == np.arange(len(out))) >= 0.9


@pytest.mark.parametrize("name", list(MOVING))
def test_moving_corruptions_keep_the_ink(digits, name):
    """Shear, rotation, shift and motion blur move the ink without losing it; scale shrinks it to 0.7² of it."""
    ratio = corrupt(digits, name, seed=0).astype(float).sum((1, 2)) / digits.astype(float).sum((1, 2))
    assert np.all(np.abs(ratio - MOVING[name]) < 0.2 * MOVING[name])


def test_translate_moves_by_three_pixels_on_each_axis(digits):
    moved = corrupt(digits, "translate", seed=0).astype(float)
    rows = np.arange(28.0)

    def centre(x):
        return np.stack([(x.sum(2) * rows).sum(1), (x.sum(1) * rows).sum(1)], 1) / x.sum((1, 2))[:, None]

    shift = np.abs(centre(moved) - centre(digits.astype(float)))
    assert np.median(shift) == pytest.approx(3.0, abs=0.3)


def test_the_deterministic_ones_match_their_definitions(digits):
    brighter = corrupt(digits, "brightness").astype(int)
    assert np.abs(brighter - np.minimum(digits.astype(int) + 127.5, 255)).max() <= 1
    striped = corrupt(digits, "stripe")
    np.testing.assert_array_equal(striped[:, :, :7], 255 - digits[:, :, :7])
    np.testing.assert_array_equal(striped[:, :, 7:21], digits[:, :, 7:21])
    shrunk = corrupt(digits, "scale")
    assert 0.35 < (shrunk > 127).sum() / (digits > 127).sum() < 0.65  # 70% of the side: about half the ink


def test_bad_input_and_names_are_refused(digits):
    with pytest.raises(ValueError, match="uint8"):
        corrupt(digits.astype(np.float32), "fog")
    with pytest.raises(KeyError, match="unknown corruption"):
        corrupt(digits, "snow")

"""Every image mode Pillow decodes reaches the model as the same 28×28 as its 8-bit greyscale version (issue 23).

A 16-bit scan of a "5" was "blank: no ink" (values above 255 clipped to white); the property test renders one
digit in every mode, bit depth and polarity and compares what the model would see.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from digitlab.data.decode import load_pixels, scale_to_uint8
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ImageError

FIELD = Path(__file__).parents[1] / "field_cases"
TOLERANCE = 0.06  # max |difference| of any 28×28 pixel in [0, 1]: rounding of 12-bit and YCbCr round trips

# mode → (how the 8-bit grey digit becomes that mode, the formats that store it)
WIDE = {
    "I;16 full range": lambda a: Image.fromarray(a.astype(np.uint16) * 257),
    "I;16 12-bit values": lambda a: Image.fromarray(np.round(a * (4095 / 255)).astype(np.uint16)),
    "I;16B": lambda a: Image.frombytes("I;16B", a.shape[::-1], (a.astype(">u2") * 257).tobytes()),
    "I;16L": lambda a: Image.frombytes("I;16L", a.shape[::-1], (a.astype("<u2") * 256).tobytes()),
    "I 8-bit values": lambda a: Image.fromarray(a.astype(np.int32)),
    "I 31-bit values": lambda a: Image.fromarray((a.astype(np.int64) * (2**31 - 1) // 255).astype(np.int32)),
    "F in [0, 1]": lambda a: Image.fromarray(a.astype(np.float32) / 255),
    "F in [0, 255]": lambda a: Image.fromarray(a.astype(np.float32)),
}
CONVERTED = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX"]
TRANSPARENT = ["LA", "PA", "P with transparency", "RGBA"]  # ink on a transparent background
MODES = [*WIDE, *CONVERTED, *(f"{m} transparent" for m in TRANSPARENT), "GIF 2 frames", "TIFF 2 pages"]


@pytest.fixture(scope="module")
def digits(mnist):
    """A few real test digits, 3× larger (84×84), 8-bit grey, white ink on black."""
    return [np.asarray(Image.fromarray(mnist.x_test[i]).resize((84, 84), Image.BILINEAR)) for i in range(6)]


def _transparent(grey: np.ndarray, mode: str) -> Image.Image:
    """Ink opaque black, the background transparent: the alpha band carries the digit."""
    if mode.startswith("P with"):
        palette = Image.fromarray(np.where(grey >= 128, 1, 0).astype(np.uint8), "P")
        palette.putpalette([255, 255, 255, 0, 0, 0])
        palette.info["transparency"] = 0
        return palette
    if mode.startswith("PA"):  # (Pillow's LA → PA conversion drops the alpha: build it by hand)
        pa = Image.frombytes("PA", grey.shape[::-1], np.stack([np.zeros_like(grey), grey], -1).tobytes())
        pa.putpalette([0, 0, 0] * 256)
        return pa
    base, alpha = Image.new("L", grey.shape[::-1], 0), Image.fromarray(grey)
    bands = (base, alpha) if mode.startswith("LA") else (base, base, base, alpha)
    return Image.merge(mode.split()[0], bands)


def _lab(image: Image.Image) -> Image.Image:
    """As a CIELAB TIFF holds it (Pillow's own L → LAB is not colorimetric)."""
    from PIL import ImageCms

    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    return ImageCms.applyTransform(image.convert("RGB"), ImageCms.buildTransform(srgb, lab, "RGB", "LAB"))


def _two_frames(image: Image.Image, fmt: str) -> Image.Image:
    """The digit, then a frame of noise the reader must ignore."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, image.size[::-1], np.uint8))
    buf = io.BytesIO()
    image.save(buf, format=fmt, save_all=True, append_images=[noise])
    return Image.open(io.BytesIO(buf.getvalue()))


SPECIAL = {
    "1": lambda image: image.point(lambda v: 255 if v >= 128 else 0).convert("1"),
    "P": lambda image: image.convert("P"),  # a grey palette: exact
    "LAB": _lab,
    "GIF 2 frames": lambda image: _two_frames(image, "GIF"),
    "TIFF 2 pages": lambda image: _two_frames(image, "TIFF"),
}


def in_mode(grey: np.ndarray, mode: str) -> Image.Image:
    """The 8-bit grey image `grey` stored in `mode` (same picture)."""
    if mode in WIDE:
        return WIDE[mode](grey)
    if mode.endswith("transparent"):
        return _transparent(grey, mode)
    image = Image.fromarray(grey)
    return SPECIAL[mode](image) if mode in SPECIAL else image.convert(mode)


def reference(grey: np.ndarray, mode: str) -> np.ndarray:
    """What the 8-bit L version gives (for the lossy modes: of the same, already-reduced picture)."""
    if mode == "1" or mode.startswith("P with"):
        grey = np.where(grey >= 128, 255, 0).astype(np.uint8)
    return to_mnist_28x28(Image.fromarray(grey)).pixels


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES), which=st.integers(0, 5), dark_on_light=st.booleans(), encode=st.booleans())
def test_every_mode_depth_and_polarity_sees_the_same_28x28(digits, mode, which, dark_on_light, encode):
    grey = digits[which]
    if dark_on_light and not mode.endswith("transparent"):
        grey = 255 - grey
    image = in_mode(grey, mode)
    if encode and mode in ("I;16 full range", "I;16 12-bit values", "F in [0, 1]", "I 31-bit values"):
        buf = io.BytesIO()  # through a file, as people send them: 16-bit PNG, float and 32-bit TIFF
        image.save(buf, format="PNG" if mode.startswith("I;16") else "TIFF")
        image = buf.getvalue()
    seen = to_mnist_28x28(image)
    expected = reference(grey, mode)
    assert not seen.blank, (mode, seen.reason)
    assert np.abs(seen.pixels - expected).max() <= TOLERANCE, mode


@pytest.mark.parametrize(
    "values, expected",
    [
        (np.array([[0, 4095]], np.uint16), [0, 255]),  # 12-bit
        (np.array([[312, 4006]], np.uint16), [19, 249]),  # the field case's range
        (np.array([[0, 65535]], np.uint16), [0, 255]),
        (np.array([[0, 1]], np.uint16), [0, 255]),  # a [0, 1] mask
        (np.array([[0.0, 0.5]], np.float32), [0, 128]),  # floats in [0, 1]
        (np.array([[-1.0, 1.0]], np.float32), [0, 255]),  # negative values: the range stretched
        (np.array([[7, 200]], np.int32), [7, 200]),  # already 8-bit
    ],
)
def test_wide_values_scale_by_their_range(values, expected):
    assert scale_to_uint8(values).ravel().tolist() == expected


@pytest.mark.parametrize("name", ["five_scan_16bit_fullrange.png", "five_scan_16bit_12bit_values.png"])
def test_field_case_16bit_scans_are_a_5(good_cnn, name):
    """Both were "blank: no ink": every value above 255 was clipped to white paper."""
    from digitlab.models.forward import predict_logits
    from digitlab.models.saved import load_model

    processed = to_mnist_28x28(FIELD / name)
    assert not processed.blank and processed.polarity == "dark-on-light", processed.reason
    logits = predict_logits(load_model(good_cnn).model, processed.as_model_input())
    assert int(logits.argmax()) == 5


def test_field_case_16bit_values_are_read_by_their_range():
    pixels = load_pixels(FIELD / "five_scan_16bit_12bit_values.png")
    assert pixels.dtype == np.uint8 and pixels.min() < 40 and pixels.max() > 240  # not "almost black"


def test_a_mode_without_a_grey_reading_is_refused_naming_it():
    from types import SimpleNamespace

    from digitlab.data.decode import to_8bit

    with pytest.raises(ImageError, match="mode BGR;15"):  # a mode Pillow may add that has no grey reading here
        to_8bit(SimpleNamespace(mode="BGR;15", info={}))
    with pytest.raises(ImageError, match="NaN or infinite"):
        load_pixels(Image.fromarray(np.full((8, 8), np.nan, np.float32)))

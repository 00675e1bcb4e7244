"""Property-based fuzzing of the image path (hypothesis): whatever bytes, image or array comes in,
`to_mnist_28x28` either raises `ImageError` with a message or returns a 28×28 float image in [0, 1] (or "no
digit"); never another exception. How long the worst inputs take is measured in bench/timing_bounds.py.

Bounded for `make test` (a few hundred examples); `DIGITLAB_FUZZ=long` runs 20× more.
"""

from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ImageError

LONG = os.environ.get("DIGITLAB_FUZZ") == "long"
FUZZ = settings(
    max_examples=4000 if LONG else 200,
    deadline=None,  # timings are measured (bench/timing_bounds.py), never asserted
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not LONG,  # CI runs the same examples every time; the long profile explores
)
MAX_PIXELS = 4_000_000  # the fuzzed calls use a lower limit, so "over the limit" paths are reached often


def check(source) -> None:
    try:
        result = to_mnist_28x28(source, max_pixels=MAX_PIXELS)
    except ImageError as e:
        assert str(e), "an ImageError must say what is wrong"
    else:
        assert result.pixels.shape == (28, 28) and result.pixels.dtype == np.float32
        assert np.all(np.isfinite(result.pixels))
        assert result.pixels.min() >= 0.0 and result.pixels.max() <= 1.0
        assert not result.blank or not result.pixels.any()


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
@example(b"GIF89a")
@example(b"BM" + b"\x00" * 60)
def test_random_bytes(data):
    check(data)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
FORMATS = {  # what each format can store
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "JPEG": {"L", "RGB", "CMYK"},
    "GIF": {"L", "P", "1"},
    "BMP": {"1", "L", "P", "RGB"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"},
    "WEBP": {"L", "RGB", "RGBA"},
}


@st.composite
def images(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(sorted(FORMATS[fmt])))
    shape = draw(
        st.one_of(
            st.tuples(st.integers(1, 96), st.integers(1, 96)),
            st.sampled_from([(1, 1), (1, 20000), (20000, 1), (2000, 2000), (3, 600)]),
        )
    )
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    w, h = shape
    kind = draw(st.sampled_from(["noise", "blank", "stroke"]))
    base = np.zeros((h, w), np.uint8) if kind != "noise" else rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "stroke":
        base[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 2 : w // 2 + max(1, w // 8)] = 255
    if fmt == "WEBP":  # WebP's own size limit
        base = base[:16383, :16383]
    image = (
        Image.fromarray(base, "L").convert(mode)
        if mode not in ("I;16",)
        else Image.fromarray(base.astype(np.uint16) * 257)
    )
    options = {}
    if fmt == "PNG" and draw(st.booleans()):
        options["optimize"] = True
    if fmt == "GIF" and draw(st.booleans()):  # animated: a second frame
        options.update(save_all=True, append_images=[image.copy()])
    if fmt == "PNG" and mode in ("RGB", "RGBA") and draw(st.booleans()):  # APNG
        options.update(save_all=True, append_images=[image.copy()])
    if fmt == "JPEG" and draw(st.booleans()):  # an EXIF orientation tag
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(1, 8))
        options["exif"] = exif
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    data = buf.getvalue()
    if draw(st.booleans()):  # sometimes damaged
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=16)) + data[cut + 1 :]
    return data


@FUZZ
@given(images())
def test_images_of_every_mode_and_format(data):
    check(data)


@FUZZ
@given(
    st.one_of(
        st.builds(
            lambda h, w, c, v: np.full((h, w, c) if c else (h, w), v, np.float64),
            st.integers(1, 64),
            st.integers(1, 64),
            st.sampled_from([0, 1, 2, 3, 4, 5]),
            st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1.0, 255.0, 256.0, 1e30]),
        ),
        st.builds(lambda n: np.zeros(n, np.uint8), st.integers(0, 100)),
        st.builds(lambda: np.zeros((4, 4), dtype=complex)),
        st.builds(lambda: np.array([["a"] * 4] * 4)),
    )
)
def test_arrays(array):
    check(array)


@FUZZ
@given(
    st.one_of(
        st.builds(
            lambda mime, payload: f"data:{mime};base64,{payload}",
            st.sampled_from(["image/png", "image/jpeg", "text/plain", "application/json", "", "image/svg+xml"]),
            st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=@!-_ ", max_size=64),
        ),
        st.builds(lambda data: "data:image/png;base64," + base64.b64encode(data).decode(), st.binary(max_size=256)),
        st.text(max_size=64).map(lambda t: "data:" + t),
    )
)
def test_data_urls(url):
    check(url)


@pytest.mark.parametrize("shape", [(1, 1), (1, 20000), (20000, 1), (2000, 2000)])
def test_extreme_shapes_within_the_limit(shape):
    w, h = shape
    buf = io.BytesIO()
    Image.new("L", (w, h), 255).save(buf, format="PNG")
    check(buf.getvalue())

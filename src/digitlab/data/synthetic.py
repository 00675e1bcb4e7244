"""Realistic inputs made from real MNIST digits: canvas drawings, inverted scans, transparent PNGs, photos.

Used by the tests and benches to check that `to_mnist_28x28` recovers what the model expects, and to show
that a plain resize does not. Each style turns one 28×28 MNIST digit into the kind of image a person
would send: large canvases (300–500 px), thicker and thinner strokes, off-centre and in corners, scaled
0.5–1.3×, white-on-black, black-on-white, black ink on a transparent background, and a photo of grey paper
with a lighting gradient, noise and JPEG compression.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image
from scipy import ndimage

STYLES = (
    "canvas",  # white on black, upscaled, random scale and position
    "corner",  # pushed into a corner of the canvas
    "thick",  # strokes dilated (a fat marker)
    "thin",  # strokes eroded (a fine pen)
    "black-on-white",  # dark ink on a white canvas
    "transparent",  # black ink on a transparent background (RGBA)
    "photo",  # grey paper, lighting gradient, noise, JPEG
)


def _place(digit: np.ndarray, rng: np.random.Generator, corner: bool = False) -> np.ndarray:
    """Upscale a 28×28 digit by a random factor onto a 300–500 px canvas at a random position."""
    size = int(rng.integers(300, 501))
    scale = rng.uniform(0.5, 1.3) * size / 28 * 0.75
    side = max(8, int(28 * scale))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0
    if side > size:
        big = big[(side - size) // 2 : (side - size) // 2 + size, (side - size) // 2 : (side - size) // 2 + size]
        side = size
    canvas = np.zeros((size, size), np.float32)
    room = size - side
    if corner:
        y, x = [int(rng.choice([0, room])) for _ in range(2)]
    else:
        y, x = int(rng.integers(0, room + 1)), int(rng.integers(0, room + 1))
    canvas[y : y + side, x : x + side] = big
    return canvas


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


def render(digit: np.ndarray, style: str, rng: np.random.Generator) -> Image.Image:
    """One realistic image of a 28×28 uint8 MNIST digit in the given style."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    ink = _place(digit, rng, corner=style == "corner")
    stroke = ink.shape[0] / 28  # pixels per MNIST pixel, roughly
    if style == "thick":
        ink = ndimage.grey_dilation(ink, footprint=_disk(max(2, int(stroke * 0.6))))
    elif style == "thin":
        ink = ndimage.grey_erosion(ink, footprint=_disk(max(1, int(stroke * 0.35))))
        if ink.max() < 0.5:
            ink = ndimage.grey_erosion(_place(digit, rng), footprint=_disk(1))
    as_uint8 = lambda a: np.clip(a * 255, 0, 255).round().astype(np.uint8)  # noqa: E731
    if style in ("canvas", "corner", "thick", "thin"):
        return Image.fromarray(as_uint8(ink), mode="L")
    if style == "black-on-white":
        return Image.fromarray(as_uint8(1 - ink), mode="L").convert("RGB")
    if style == "transparent":
        rgba = np.zeros((*ink.shape, 4), np.uint8)
        rgba[..., 3] = as_uint8(ink)  # black ink, opacity = ink
        return Image.fromarray(rgba, mode="RGBA")
    # photo: grey paper lit from one side, dark ink, sensor noise, JPEG
    h, w = ink.shape
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    light = 0.55 + 0.3 * (np.cos(angle) * xx + np.sin(angle) * yy)
    paper = light * rng.uniform(0.85, 1.0) + ndimage.gaussian_filter(rng.normal(0, 0.03, (h, w)), 1.5)
    photo = paper * (1 - 0.8 * ink) + rng.normal(0, 0.03, (h, w))
    tint = np.array([1.0, rng.uniform(0.95, 1.0), rng.uniform(0.85, 0.95)])  # warm indoor light
    rgb = np.clip(photo[..., None] * tint, 0, 1)
    buf = io.BytesIO()
    Image.fromarray(as_uint8(rgb), mode="RGB").save(buf, format="JPEG", quality=int(rng.integers(60, 85)))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def browser_png(image: Image.Image) -> bytes:
    """PNG bytes encoded the way a browser's `canvas.toDataURL("image/png")` does (checked against Chromium):
    8-bit RGBA, every row with the "Up" filter, zlib's fastest level (Chromium's zlib header says so).
    Benches of what the page sends use this: Pillow's encoder (adaptive filters, level 6) writes files that
    decode 3-4× slower, and a benchmark should see what the server will see."""
    rgba = np.asarray(image.convert("RGBA"))
    h, w, _ = rgba.shape
    rows = rgba.reshape(h, w * 4)
    up = np.empty((h, w * 4 + 1), np.uint8)
    up[:, 0] = 2  # filter type: Up (difference to the row above, modulo 256)
    up[0, 1:] = rows[0]
    up[1:, 1:] = rows[1:] - rows[:-1]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit, colour type 6 (RGBA), no interlace
    idat = zlib.compress(up.tobytes(), 1)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def plain_resize(image: Image.Image) -> np.ndarray:
    """What many demos do: grayscale, resize the whole image to 28×28, scale to [0, 1]. For comparison only."""
    return np.asarray(image.convert("L").resize((28, 28), Image.BILINEAR), dtype=np.float32) / 255.0

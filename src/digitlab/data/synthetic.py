"""Realistic inputs made from real MNIST digits: canvas drawings, inverted scans, transparent PNGs, photos.

Used by the tests and benches to check that `to_mnist_28x28` recovers what the model expects, and to show
that a plain resize does not. Each style turns one 28×28 MNIST digit into the kind of image a person
would send: large canvases (300–500 px), thicker and thinner strokes, off-centre and in corners, scaled
0.5–1.3×, white-on-black, black-on-white, black ink on a transparent background, a photo of grey paper
with a lighting gradient, noise and JPEG compression, and the digit redrawn with a round pen of one width, as
a drawing app's canvas (the draw page's own) makes it.
"""

from __future__ import annotations

import io
import struct
import zlib

import cv2
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
    "brush",  # the stroke's centre line redrawn with a round pen of one width, as the draw page's canvas draws
)
# The pen's width as a share of the digit's longer side: from a fine pen to about MNIST's widest strokes (its median
# is 0.16, 90% under 0.21); the page's brush (6-40 px on a 280 px canvas) spans this for digits drawn 60-90% as
# tall as the canvas, and a fat pen on a small digit, a blob nobody reads, is left out
PEN_WIDTH = (0.06, 0.22)


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
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def _dilate(ink: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by a disk: SciPy's `grey_dilation` (mirrored borders) to the bit, 5-15x faster in OpenCV."""
    return cv2.dilate(ink, _disk(radius), borderType=cv2.BORDER_REFLECT)


def _erode(ink: np.ndarray, radius: int) -> np.ndarray:
    """Grey erosion by a disk, as `_dilate`."""
    return cv2.erode(ink, _disk(radius), borderType=cv2.BORDER_REFLECT)


def _redrawn(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit as a drawing app draws it: its strokes' centre line, redrawn with a round pen of one width.

    A pen's stroke is flat, as wide everywhere and round at its ends, where MNIST's strokes (a scanned pen) have
    grey edges and vary in width: the refusal, fitted on MNIST-like strokes only, refused digits drawn this way
    nearly three times as often as others (1.7% against 0.6% of drawn validation digits). The centre line is the
    ridge of the distance to the background (pixels within half a pixel as far from it as their farthest neighbour,
    over a pixel inside); the pen's width is drawn from `PEN_WIDTH` × the digit's longer side, and its edge is
    anti-aliased as a canvas draws it.
    """
    from digitlab.data.segment import bounding_box

    mask = (ink > 0.5).astype(np.uint8)
    distance = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    ridge = (distance >= cv2.dilate(distance, np.ones((3, 3), np.uint8)) - 0.5) & (distance > 1)
    top, bottom, left, right = bounding_box(mask) if mask.any() else (0, ink.shape[0], 0, ink.shape[1])
    longest = max(bottom - top, right - left)
    radius = max(1, round(rng.uniform(*PEN_WIDTH) * longest / 2))
    pen = cv2.dilate(ridge.astype(np.uint8), _disk(radius)).astype(np.float32)
    return cv2.GaussianBlur(pen, (0, 0), 0.7)


def render(digit: np.ndarray, style: str, rng: np.random.Generator) -> Image.Image:
    """One realistic image of an MNIST digit in the given style.

    Args:
        digit: (28, 28) uint8 MNIST digit.
        style: one of `STYLES`.
        rng: the randomness (placement, stroke, noise).

    Returns:
        A PIL image as that style would deliver it (canvas, paper, photo, ...).

    Raises:
        ValueError: for an unknown style.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}")
    ink = _place(digit, rng, corner=style == "corner")
    if style == "brush":
        ink = _redrawn(ink, rng)
    stroke = ink.shape[0] / 28  # pixels per MNIST pixel, roughly
    if style == "thick":
        ink = _dilate(ink, max(2, int(stroke * 0.6)))
    elif style == "thin":
        ink = _erode(ink, max(1, int(stroke * 0.35)))
        if ink.max() < 0.5:
            ink = _erode(_place(digit, rng), 1)
    as_uint8 = lambda a: np.clip(a * 255, 0, 255).round().astype(np.uint8)  # noqa: E731
    if style in ("canvas", "corner", "thick", "thin", "brush"):
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
    """PNG bytes encoded the way a browser's `canvas.toDataURL("image/png")` does (checked against Chromium).

    8-bit RGBA, every row with the "Up" filter, zlib's fastest level (Chromium's zlib header says so).
    Benches of what the page sends use this: Pillow's encoder (adaptive filters, level 6) writes files that
    decode 3-4× slower, and a benchmark should see what the server will see.

    Args:
        image: any PIL image.

    Returns:
        The PNG file's bytes.
    """
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
    """What many demos do: grayscale, resize the whole image to 28×28, scale to [0, 1]. For comparison only.

    Args:
        image: any PIL image.

    Returns:
        (28, 28) float32 in [0, 1].
    """
    return np.asarray(image.convert("L").resize((28, 28), Image.BILINEAR), dtype=np.float32) / 255.0


# --- numbers and non-digits (the reader's and the refusal's benchmarks) ---------------------------------------

NUMBER_STYLES = ("canvas", "black-on-white", "photo")
GAPS = ("touching", "close", "apart", "wide")  # the space between neighbouring digits' ink


def _ink_crop(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(digit.max(axis=1) > 30), np.flatnonzero(digit.max(axis=0) > 30)
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255.0


def number_image(
    digits: list[np.ndarray], rng: np.random.Generator, gap: str = "apart", style: str = "canvas"
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """A handwritten number made of 28×28 MNIST digits, in one line, and each digit's ink box.

    Args:
      digits: uint8 (28, 28) MNIST digits, left to right (the benchmark uses *test* digits).
      rng: the randomness (sizes ±15%, baselines ±8% of the height, gaps, stroke weight).
      gap: touching (neighbours' ink overlaps so they form one blob), close (1–3 px at MNIST scale),
        apart (4–9 px) or wide (10–20 px).
      style: canvas (white on black), black-on-white, or photo (as `render`'s photo).

    Returns:
      The image (height 200–280 px, width as the number needs) and the boxes [x0, y0, x1, y1] of each digit's
      ink in it, in image pixels.

    Raises:
      ValueError: for an unknown gap or style.
    """
    if gap not in GAPS or style not in NUMBER_STYLES:
        raise ValueError(f"unknown gap {gap!r} or style {style!r}")
    height = int(rng.integers(200, 281))
    unit = height / 40  # pixels per MNIST pixel: a 20 px MNIST digit becomes half the canvas height
    crops = [_ink_crop(d) for d in digits]
    scales = rng.uniform(0.85, 1.15, len(crops)) * unit
    pieces = [_scaled(c, s) for c, s in zip(crops, scales, strict=True)]
    margin = int(6 * unit)
    widths = [p.shape[1] for p in pieces]
    spaces = [_gap_pixels(gap, rng, unit) for _ in pieces[1:]]
    canvas = np.zeros((height, margin * 2 + sum(widths) + sum(spaces) + 4), np.float32)
    boxes, x = [], margin
    for i, piece in enumerate(pieces):
        h, w = piece.shape
        y = int(np.clip((height - h) / 2 + rng.normal(0, 0.04) * height, 0, height - h))
        canvas[y : y + h, x : x + w] = np.maximum(canvas[y : y + h, x : x + w], piece)
        boxes.append((x, y, x + w, y + h))
        x += w + (spaces[i] if i < len(spaces) else 0)
    canvas = canvas[:, : x + margin]
    return _styled(canvas, style, rng), boxes


def _scaled(crop: np.ndarray, scale: float) -> np.ndarray:
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.BILINEAR))


def _gap_pixels(gap: str, rng: np.random.Generator, unit: float) -> int:
    low, high = {"touching": (-2.5, -1.0), "close": (1, 3), "apart": (4, 9), "wide": (10, 20)}[gap]
    return round(rng.uniform(low, high) * unit)


def _styled(ink: np.ndarray, style: str, rng: np.random.Generator) -> Image.Image:
    as_uint8 = np.clip(ink * 255, 0, 255).round().astype(np.uint8)
    if style == "canvas":
        return Image.fromarray(as_uint8, mode="L")
    if style == "black-on-white":
        return Image.fromarray(255 - as_uint8, mode="L").convert("RGB")
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    paper = 0.55 + 0.3 * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.normal(0, 0.02, (h, w))
    photo = np.clip(paper * (1 - 0.8 * ink) + rng.normal(0, 0.03, (h, w)), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((photo * 255).astype(np.uint8), mode="L").convert("RGB").save(buf, format="JPEG", quality=75)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


NON_DIGIT_FAMILIES = ("line", "cross", "shape", "scribble", "letter")
# Letters that cannot pass for a digit in anyone's handwriting are kept; O, D, Q (0), l, I, i, j, L, T (1),
# Z, z (2), S, s (5), b, G (6), B (8), g, q, P (9), A, H (4), and e, a, y (easily a 9, 6 or 4) are left out.
LETTERS = "CEFKMNRUVWXYcfhkmnrtuvwx"


def non_digit(family: str, rng: np.random.Generator, size: int = 280) -> Image.Image:
    """A drawing that is not a digit, white ink on black, as a person draws on the page's canvas.

    The benchmark's families (`NON_DIGIT_FAMILIES`): line (a dash or a flat slash, within 40° of horizontal: a
    steeper line is a 1), cross (+ or ×), shape (triangle, square, star, arrow; never a plain circle, which is a 0),
    scribble (a random smooth stroke with several turns), letter (from `LETTERS`, in the scalable font Pillow
    ships). The refusal's fitting families (`FIT_NON_DIGIT_FAMILIES`, never the benchmark's) are drawn at any
    rotation: zigzag, spiral, hatching, blob, wave.

    Args:
        family: one of `NON_DIGIT_FAMILIES` or `FIT_NON_DIGIT_FAMILIES`.
        rng: the randomness.
        size: the canvas side in pixels.

    Returns:
        A grey PIL image, size × size.

    Raises:
        ValueError: for an unknown family.
    """
    from PIL import ImageDraw

    if family in FIT_NON_DIGIT_FAMILIES:
        return _fit_non_digit(family, rng, size)
    if family not in NON_DIGIT_FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(max(4, size // 40), size // 14))
    c = size / 2
    r = size * rng.uniform(0.22, 0.4)
    if family == "line":  # a dash or a flat slash: within 40° of horizontal (steeper lines are 1s)
        angle = np.deg2rad(rng.uniform(-40, 40))
        dx, dy = np.cos(angle) * r, np.sin(angle) * r
        draw.line([(c - dx, c - dy), (c + dx, c + dy)], fill=255, width=width)
    elif family == "cross":
        turn = rng.choice([0.0, np.pi / 4]) + rng.normal(0, 0.1)
        for a in (turn, turn + np.pi / 2):
            dx, dy = np.cos(a) * r, np.sin(a) * r
            draw.line([(c - dx, c - dy), (c + dx, c + dy)], fill=255, width=width)
    elif family == "shape":
        draw.line(
            _shape_points(str(rng.choice(["triangle", "square", "star", "arrow"])), c, r, rng),
            fill=255,
            width=width,
            joint="curve",
        )
    elif family == "scribble":
        points = np.cumsum(rng.normal(0, r / 3, (int(rng.integers(5, 9)), 2)), axis=0)
        points = (points - points.mean(axis=0)) / max(np.abs(points).max(), 1) * r + c
        draw.line([tuple(p) for p in _smooth(points)], fill=255, width=width, joint="curve")
    else:
        from PIL import ImageFont

        font = ImageFont.load_default(size=int(size * rng.uniform(0.5, 0.75)))
        letter = str(rng.choice(list(LETTERS)))
        draw.text((c, c), letter, fill=255, font=font, anchor="mm", stroke_width=max(0, width // 4))
    return image.rotate(float(rng.normal(0, 8)), resample=Image.BILINEAR)


def _shape_points(kind: str, c: float, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    if kind == "triangle":
        angles = np.array([90, 210, 330, 90]) + rng.normal(0, 5)
    elif kind == "square":
        angles = np.array([45, 135, 225, 315, 45]) + rng.normal(0, 5)
    elif kind == "star":
        angles = np.array([90, 234, 18, 162, 306, 90]) + rng.normal(0, 3)
    else:  # an arrow pointing right: shaft, then the head
        return [(c - r, c), (c + r, c), (c + r * 0.5, c - r * 0.5), (c + r, c), (c + r * 0.5, c + r * 0.5)]
    rad = np.deg2rad(angles)
    return [(c + r * np.cos(a), c - r * np.sin(a)) for a in rad]


def _smooth(points: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """A Catmull-Rom curve through the points (a hand's stroke, not a polygon)."""
    p = np.vstack([points[0], points, points[-1]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        # the cubic's coefficients (t¹, t², t³) in the usual Catmull-Rom matrix form
        a1, a2, a3 = -p0 + p2, 2 * p0 - 5 * p1 + 4 * p2 - p3, -p0 + 3 * p1 - 3 * p2 + p3
        out.append(0.5 * ((2 * p1) + a1 * t + a2 * t**2 + a3 * t**3))
    return np.vstack([*out, points[-1:]])


# The refusal score's threshold is fitted on these, and benchmarked on `NON_DIGIT_FAMILIES`: different families,
# so the benchmark's refusal rate is not tuned on itself.
FIT_NON_DIGIT_FAMILIES = ("zigzag", "spiral", "hatching", "blob", "wave")


def _fit_non_digit(family: str, rng: np.random.Generator, size: int = 112) -> Image.Image:
    """A drawing of one of `FIT_NON_DIGIT_FAMILIES` (see `non_digit`), white on black, at any rotation.

    zigzag: 4–7 sharp turns; spiral: 1.5–2.5 turns; hatching: 3–5 parallel strokes; blob: a filled irregular
    polygon; wave: a sine stroke of 1–2 periods.
    """
    from PIL import ImageDraw

    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    c, r, width = size / 2, size * rng.uniform(0.25, 0.42), int(rng.integers(3, 9))
    points = None
    if family == "zigzag":
        n = int(rng.integers(5, 9))
        ys = c + r * 0.6 * np.where(np.arange(n) % 2, 1, -1) * rng.uniform(0.5, 1, n)
        points = list(zip(np.linspace(c - r, c + r, n), ys, strict=True))
    elif family == "spiral":
        t = np.linspace(0, rng.uniform(3, 5) * np.pi, 60)
        points = list(zip(c + r * t / t.max() * np.cos(t), c + r * t / t.max() * np.sin(t), strict=True))
    elif family == "hatching":
        for k in range(int(rng.integers(3, 6))):
            offset = (k - 2) * r * 0.35
            draw.line([(c - r, c + offset - r * 0.3), (c + r, c + offset + r * 0.3)], fill=255, width=width)
    elif family == "blob":
        angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        radii = r * rng.uniform(0.5, 1, 12)
        draw.polygon(list(zip(c + radii * np.cos(angles), c + radii * np.sin(angles), strict=True)), fill=255)
    else:
        x = np.linspace(c - r, c + r, 50)
        points = list(zip(x, c + r * 0.3 * np.sin((x - c) / r * np.pi * rng.uniform(2, 4)), strict=True))
    if points is not None:
        draw.line(points, fill=255, width=width, joint="curve")
    return image.rotate(float(rng.uniform(0, 360)), resample=Image.BILINEAR)


def _stroke_character(rng: np.random.Generator, size: int = 112, straight: bool = False) -> Image.Image:
    """An Omniglot-like character: two or three pen strokes through random points, white on black.

    Smooth strokes through 3–5 points, or (`straight`) angular ones: polylines of 2–3 points, as in the many
    Omniglot alphabets drawn with straight strokes.
    """
    from PIL import ImageDraw

    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(4, 9))
    for _ in range(int(rng.integers(2, 4))):
        if straight:
            points = rng.uniform(size * 0.15, size * 0.85, (int(rng.integers(2, 4)), 2))
        else:
            points = _smooth(rng.uniform(size * 0.2, size * 0.8, (int(rng.integers(3, 6)), 2)), 8)
        draw.line([tuple(p) for p in points], fill=255, width=width, joint="curve")
    return image


def outlier_pool(count: int, seed: int = 0) -> np.ndarray:
    """Generated non-digits as a model sees them, for Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019).

    Half are of the fitting families (`FIT_NON_DIGIT_FAMILIES`, never the benchmark's `NON_DIGIT_FAMILIES`), a
    quarter Omniglot-like characters of random smooth strokes and a quarter of random straight ones (two or three
    polylines, which may cross: the benchmark's crosses and lines are not generated, but such characters
    include shapes like them; see docs/guide/reading-numbers.md); each preprocessed by
    `to_mnist_28x28`, as the page would send it. Partial digits are left out: after size normalisation they are too
    often whole digits (half an 8 is a 0, the stem of a 4 a 1).

    Args:
        count: how many to make (blank ones are dropped, so a few fewer may come back).
        seed: the generator's seed.

    Returns:
        (M, 28, 28) uint8 non-digits, M ≤ count.
    """
    from digitlab.data.preprocess import to_mnist_28x28

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        if i % 4 >= 2:
            image = _stroke_character(rng, straight=i % 4 == 2)
        else:
            image = _fit_non_digit(FIT_NON_DIGIT_FAMILIES[(i // 4 + i % 4) % len(FIT_NON_DIGIT_FAMILIES)], rng)
        processed = to_mnist_28x28(np.asarray(image))
        if not processed.blank:
            out.append(np.uint8(np.round(processed.pixels * 255)))
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8)

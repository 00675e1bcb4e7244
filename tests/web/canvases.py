"""Varied test canvases for the JavaScript preprocessing's parity with Python's: uint8 arrays as a browser or a
user would send them (a drawing canvas, scans, photos, numbers, blanks, noise, non-digits)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.data.mnist import load_mnist
from digitlab.data.synthetic import STYLES, non_digit, number_image, render

# the styles the cases below were first drawn in (tests/data/reference holds their 28×28s); the round pen's
# ("brush", added later) are drawn after them, on a seed of their own, so the others stay what they were
FIRST_STYLES = tuple(s for s in STYLES if s != "brush")


def browser_canvas(digit: np.ndarray, rng: np.random.Generator, size: int = 280) -> np.ndarray:
    """A page's drawing: black ink on an opaque white RGBA canvas, the digit scaled, placed and thickened."""
    side = int(rng.integers(90, 250))
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), np.float32) / 255.0
    radius = int(rng.integers(0, 6))
    if radius:
        y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
        big = ndimage.grey_dilation(big, footprint=x * x + y * y <= radius * radius)
    ink = np.zeros((size, size), np.float32)
    y0, x0 = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    ink[y0 : y0 + side, x0 : x0 + side] = big
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[..., :3] = np.round((1 - ink[..., None]) * 255).astype(np.uint8)
    return rgba


def canvases(count: int = 240, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """`count` named canvases (about): most of them digits in every style, the rest the other cases.

    Returns:
      (name, uint8 array) pairs: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.
    """
    rng = np.random.default_rng(seed)
    digits = load_mnist().x_test
    out: list[tuple[str, np.ndarray]] = []
    n_digits = int(count * 0.7)
    for i in range(n_digits):
        d = digits[i]
        if i % 3 == 0:
            out.append((f"browser-{i}", browser_canvas(d, rng)))
        else:
            style = FIRST_STYLES[i % len(FIRST_STYLES)]
            out.append((f"{style}-{i}", np.asarray(render(d, style, rng))))
    blank = np.full((280, 280, 4), 255, np.uint8)
    out += [("blank-canvas", blank), ("blank-black", np.zeros((280, 280), np.uint8))]
    dot = blank.copy()
    dot[138:143, 138:143, :3] = 0
    out.append(("dot", dot))
    for i in range(4):
        out.append((f"noise-{i}", rng.integers(0, 256, (200, 200), dtype=np.uint8)))
    for i in range(3):  # paper with a lighting gradient and grain, nothing written on it
        yy, xx = np.mgrid[0:240, 0:320] / 320
        paper = 0.6 + 0.3 * xx + rng.normal(0, 0.02, (240, 320)) + 0.1 * yy
        out.append((f"paper-{i}", np.clip(paper * 255, 0, 255).astype(np.uint8)))
    families = ("line", "cross", "shape", "scribble", "letter")
    for i in range(max(0, (count - len(out)) // 2)):
        out.append((f"non-digit-{families[i % 5]}-{i}", np.asarray(non_digit(families[i % 5], rng))))
    k = n_digits
    while len(out) < count:
        length = int(rng.integers(2, 5))
        style = ("canvas", "black-on-white", "photo")[len(out) % 3]
        gap = ("touching", "close", "apart", "wide")[len(out) % 4]
        image, _ = number_image(list(digits[k : k + length]), rng, gap=gap, style=style)
        out.append((f"number-{style}-{gap}-{len(out)}", np.asarray(image)))
        k += length
    brushed = np.random.default_rng([seed, 2])
    out += [(f"brush-{i}", np.asarray(render(d, "brush", brushed))) for i, d in enumerate(digits[250:262])]
    return out + paper_and_colour(digits[200:230], np.random.default_rng([seed, 1])) + small_images(digits[230:250])


# ink on paper of about the same luminance, and a blue pen on ruled and squared paper (issue 39): a separate
# seed, after the cases above, so those stay what they were
INK_ON_PAPER = [
    ((250, 222, 0), (150, 220, 255)),  # yellow on light blue
    ((230, 40, 40), (40, 150, 40)),  # red on green
    ((40, 40, 255), (70, 70, 70)),  # blue on grey
    ((255, 150, 0), (240, 140, 170)),  # orange on pink
    ((230, 0, 230), (0, 150, 150)),  # magenta on teal
]


def paper_and_colour(digits: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """Coloured digits on coloured paper and blue-pen digits on ruled or squared paper, RGB, 200-420 px."""
    out = []
    for i, digit in enumerate(digits):
        size = int(rng.integers(200, 420))
        side = int(size * rng.uniform(0.5, 0.8))
        alpha = np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), np.float32)[..., None] / 255
        ink, paper = INK_ON_PAPER[i % len(INK_ON_PAPER)] if i % 2 == 0 else ((20, 40, 140), (250, 250, 245))
        canvas = np.empty((size, size, 3), np.float32)
        canvas[:] = paper
        if i % 2:  # ruled, every third one squared
            spacing, weight = int(rng.integers(18, 60)), int(rng.integers(1, 4))
            for y in range(spacing // 2, size, spacing):
                canvas[y : y + weight] = (150, 190, 235)
            if i % 3 == 0:
                for x in range(spacing // 2, size, spacing):
                    canvas[:, x : x + weight] = (150, 190, 235)
        y0, x0 = (int(rng.integers(0, size - side + 1)) for _ in range(2))
        region = canvas[y0 : y0 + side, x0 : x0 + side]
        canvas[y0 : y0 + side, x0 : x0 + side] = region * (1 - alpha) + np.asarray(ink, np.float32) * alpha
        kind = "ruled" if i % 2 else "colour"
        out.append((f"{kind}-{i}", np.round(canvas).astype(np.uint8)))
    return out


def small_images(digits: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Images small enough to be enlarged to the working size: MNIST's own 28×28s (grey, inverted, opaque RGBA)
    and 56 px and 40×70 px thumbnails."""
    out = []
    for i, digit in enumerate(digits):
        kind = i % 5
        if kind == 0:
            image = digit
        elif kind == 1:
            image = 255 - digit
        elif kind == 2:
            image = np.dstack([digit, digit, digit, np.full_like(digit, 255)])
        else:
            image = np.asarray(Image.fromarray(digit).resize((56, 56) if kind == 3 else (40, 70), Image.BILINEAR))
        out.append((f"small-{i}", np.ascontiguousarray(image)))
    return out

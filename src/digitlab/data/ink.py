"""Steps 2-3 of `to_mnist_28x28`: a decoded image → a working-size map of ink ≈ 1 on a flat background ≈ 0.

Whatever the image holds (alpha, dark ink on light paper or light on dark, a colour pen whose luminance is the
paper's, uneven light), the rest of the pipeline (`digitlab.data.preprocess`) sees one thing: ink as high values
on a zero background. `ink_map` makes the map and tells the polarity; `flatten_background` removes slow
background variation and stretches the ink to ~1. The page's JavaScript ports both (`web/static/preprocess.js`).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

COLOUR_MIN = 12.0  # CIELAB chroma (√(a*² + b*²)) below which an image counts as grey: JPEG noise on white paper
CHROMA_SCALE = 100.0  # a chroma difference from the paper of this many CIELAB units counts as full ink


def ink_map(pixels: np.ndarray, work_size: int) -> tuple[np.ndarray, str, float, float | None]:
    """Working-size float map with ink ≈ 1, background ≈ 0, from `load_pixels` output.

    A large image is shrunk by an integer factor (`_shrunk_ink_map`); a small one (an MNIST 28×28 itself, a
    thumbnail: its longer side at most 2/3 of `work_size`) has its ink map enlarged by an integer factor k,
    bilinear (`scipy.ndimage.zoom`, order 1), so that steps 3-5 estimate its background and measure and normalise
    its strokes at the resolution their thresholds were set for: worked on at 28 px (one pixel of dilation doubles
    an MNIST stroke), 3.2% of MNIST's own test digits were refused as "not a digit" on `make run`'s model, 0.4%
    enlarged (`bench/refusal.py`).

    Args:
        pixels: the decoded image (grey, RGB or RGBA, uint8 or uint16).
        work_size: the working copy's longer side in pixels.

    Returns:
        (ink, polarity, scale, background level): `ink` (h, w) float32; `scale` the input pixels per working
        pixel (the integer shrink factor, or 1/k when enlarged); the level is the border's ink value when the
        border is uniform (a canvas or a clean scan: no flattening needed), else None.
    """
    ink, polarity, factor, level = _shrunk_ink_map(pixels, work_size)
    enlarge = round(work_size / max(ink.shape)) if factor == 1 else 1
    if enlarge < 2:
        return ink, polarity, factor, level
    return ndimage.zoom(ink, enlarge, order=1, mode="nearest", grid_mode=True), polarity, 1 / enlarge, level


def _shrunk_ink_map(pixels: np.ndarray, work_size: int) -> tuple[np.ndarray, str, int, float | None]:
    """`ink_map` before enlarging: (ink, polarity, integer shrink factor ≥ 1, background level)."""
    # Area downsampling by an integer factor (an exact box filter: OpenCV's INTER_AREA at an integer ratio)
    # keeps the ink mass of thin strokes; the working size lands within ±1/3 of WORK_SIZE, and every
    # threshold below is relative to it.
    h, w = pixels.shape[:2]
    factor = max(1, round(max(h, w) / work_size))
    small_h, small_w = max(1, h // factor), max(1, w // factor)

    def shrink(band: np.ndarray) -> np.ndarray:
        if factor == 1:
            return band
        band = band[: small_h * factor or h, : small_w * factor or w]
        return cv2.resize(band, (small_w, small_h), interpolation=cv2.INTER_AREA)

    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    # OpenCV's 2× area path is SIMD for all channels at once: shrink first. At other factors it is ~4× slower
    # on interleaved channels: take the bands apart first, then shrink only those needed.
    shrink_first = channels > 1 and factor <= 2
    if shrink_first:
        pixels = shrink(pixels)
    if channels in (2, 4):
        alpha = pixels[..., -1] if shrink_first else cv2.extractChannel(pixels, channels - 1)
        if cv2.minMaxLoc(alpha)[0] < 230:  # some transparency: is the background transparent?
            alpha = (alpha if shrink_first else shrink(alpha)).astype(np.float32) * np.float32(1 / 255)
            if alpha.min() < 0.9:  # a real transparent background: what is opaque is ink, whatever its colour
                return alpha, "alpha", factor, 0.0
    colour = None
    if channels >= 3:
        colour = pixels if shrink_first else None
        if colour is None and _colourful(pixels[::factor, ::factor]):  # at working size only when needed
            colour = shrink(pixels)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2GRAY if channels == 4 else cv2.COLOR_RGB2GRAY)
    elif channels == 2:
        pixels = cv2.extractChannel(pixels, 0)
    if not shrink_first:
        pixels = shrink(pixels)
    gray = pixels.astype(np.float32) * np.float32(1 / 255)
    ink, polarity, level = _polarity(gray)
    if colour is not None and _colourful(colour):
        ink = ink + chroma_departure(colour)  # the paper's own chroma departs by ~0: its level stays
    return ink, polarity, factor, level


def _colourful(rgb: np.ndarray) -> bool:
    """Whether an RGB(A) image holds any colour: some pixel's channels spread by more than grey's JPEG noise."""
    rgb = np.ascontiguousarray(rgb)  # (a strided sample of a large image)
    if rgb.shape[-1] == 4:  # a browser canvas: exactly grey, in one pass over 32-bit words (little-endian RGBA;
        # on a big-endian machine the test fails and the per-channel one below decides)
        words = rgb.view(np.uint32)
        if np.array_equal((words & 0xFF) * np.uint32(0x010101), words & np.uint32(0xFFFFFF)):
            return False
    r, g, b = (cv2.extractChannel(rgb, i) for i in range(3))  # OpenCV: 20× NumPy's reductions over 3 channels
    spread = max(cv2.minMaxLoc(cv2.absdiff(x, y))[1] for x, y in ((r, g), (g, b), (r, b)))  # max − min channel
    return spread > COLOUR_MIN


def chroma_departure(rgb: np.ndarray) -> np.ndarray:
    """How far each pixel's colour departs from the paper's, as ink: CIELAB chroma distance / `CHROMA_SCALE`.

    The paper's colour is the median a*, b* of the border (paper is what surrounds a digit). Only the chroma
    counts (not L*): the luminance ink map already holds the lightness difference, with its polarity.

    Args:
        rgb: (h, w, 3 or 4) uint8 sRGB (alpha ignored), at working size.

    Returns:
        (h, w) float32 in [0, 1]: 0 where the colour is the paper's, 1 at `CHROMA_SCALE` CIELAB units or more
        (red and green of equal luminance are ~120 apart; a blue pen on white paper ~40-60).

    Source:
        CIE 1976 L*a*b* (CIELAB) from sRGB under D65, computed by OpenCV's `cvtColor(..., COLOR_RGB2Lab)` on
        float32 input; the JavaScript port uses the same formulas.
    """
    lab = cv2.cvtColor(rgb[..., :3].astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    a, b = lab[..., 1], lab[..., 2]
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]), np.concatenate([b[0], b[-1], b[:, 0], b[:, -1]])
    da, db = a - np.float32(np.median(border[0])), b - np.float32(np.median(border[1]))
    return np.minimum(np.sqrt(da * da + db * db) * np.float32(1 / CHROMA_SCALE), 1.0).astype(np.float32)


def _polarity(gray: np.ndarray) -> tuple[np.ndarray, str, float | None]:
    """(ink map, polarity, the uniform border's ink level or None) of a [0, 1] grey working image."""
    # Polarity. A clean canvas or scan has a uniform border: the background is its colour. Otherwise (a photo
    # with a lighting gradient) ink is the minority that departs from its surroundings: against a local mean,
    # dark ink leaves a long negative tail and light ink a long positive one.
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    level = float(border.mean())
    uniform = float(np.sqrt(np.mean(np.square(border - level)))) < 0.05
    if uniform:
        # ink is what departs furthest from the paper, either way: a light digit on mid-grey paper is light ink
        # although the paper is lighter than 0.5 (a fixed "paper above half-grey is white paper" rule inverted it)
        below, above = level - float(gray.min()), float(gray.max()) - level
        dark_ink = below > above or (below == above and level > 0.5)
    else:
        residual = gray - ndimage.uniform_filter(gray, size=max(3, max(gray.shape) // 2))
        low, high = np.percentile(residual, [0.5, 99.5])
        dark_ink = -low > high
    if dark_ink:
        return 1.0 - gray, "dark-on-light", (1.0 - level) if uniform else None
    return gray, "light-on-dark", level if uniform else None


def flatten_background(ink: np.ndarray, level: float | None = None) -> np.ndarray:
    """Remove slow background variation (lighting gradients, grey paper) and stretch ink to ~1.

    A uniform background (a clean canvas or scan, `level` known) only needs its level subtracted.

    Args:
        ink: (h, w) float32 ink map.
        level: the uniform background's ink value, or None to estimate the background.

    Returns:
        (h, w) float32 in [0, 1], ink ≈ 1 on a background ≈ 0.
    """
    h, w = ink.shape
    if level is not None:
        background = np.float32(level)
    else:
        # grey opening = the background where strokes (narrower than 35% of the image) are cut away; computed
        # on a 4× smaller copy since the background is smooth, then upsampled bilinearly (blocky upsampling
        # leaves steps along a lighting gradient that look like ink, worst at the image edges)
        small = ink[::4, ::4]
        background = ndimage.grey_opening(small, size=(max(2, int(max(small.shape) * 0.35)),) * 2)
        background = ndimage.uniform_filter(background, size=3)
        zoom = (h / small.shape[0], w / small.shape[1])
        background = ndimage.zoom(background, zoom, order=1, mode="nearest", grid_mode=True)[:h, :w]
    flat = np.maximum(ink - background, 0.0)
    sample = flat[::2, ::2].ravel()  # a quarter of the pixels is plenty for a percentile
    k = int(sample.size * 0.997)
    peak = float(np.partition(sample, k)[k]) if sample.size else 0.0  # robust max: ignores hot pixels
    # ...unless the ink itself is under 0.3% of the image (a thin digit drawn small on a large canvas, whose
    # strokes the shrink also dimmed): then the percentile is background, and half the true maximum is the
    # contrast to stretch. A lone hot pixel or speck survives this only to be dropped as a speck below.
    peak = max(peak, 0.5 * float(flat.max(initial=0.0)))
    if peak < 0.08:  # no contrast at all
        return np.zeros_like(flat)
    flat *= np.float32(1 / peak)
    return np.minimum(flat, 1.0, out=flat)

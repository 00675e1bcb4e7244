"""MNIST-C: the 15 corruptions of Mu & Gilmer (2019) that a person still reads as the same digit.

Source: N. Mu and J. Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", arXiv:1906.02337, and the
parameters of its reference implementation (github.com/google-research/mnist-c, `corruptions.py`), at the
severities that build the published dataset. Written here from those definitions with NumPy, SciPy and
OpenCV (no ImageMagick, Wand or scikit-image), so some operations differ from the reference in detail:

- motion blur: ImageMagick's `-motion-blur radius 10, sigma 3` at an angle in ±45° becomes a one-sided line
  kernel of Gaussian weights (sigma 3 px, 10 px long) applied with `cv2.filter2D`;
- glass blur, shear, rotate, scale, translate: scikit-image's `gaussian` and `warp` become SciPy's
  `gaussian_filter` and OpenCV's bilinear `warpAffine` (the same maps about the centre (13.5, 13.5));
- Canny edges: scikit-image's `feature.canny` (sigma 1, thresholds 0.1 / 0.2 of the Sobel magnitude) becomes
  OpenCV's `Canny` on the same Gaussian-smoothed Sobel gradients with the same thresholds;
- brightness: the reference goes through HSV, which for a grey image is adding 0.5 to every pixel; done so.

Each corruption takes (N, 28, 28) uint8 digits (white on black) and a NumPy `Generator` and returns (N, 28, 28)
uint8: the same shape, dtype and range, deterministic for a seed (`corrupt`). They are for measuring only: the
training augmentation (`digitlab.data.augment`) uses none of them.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from scipy import ndimage

SIZE = 28
CENTRE = (SIZE - 1) / 2


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def shot_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise at 3 photons per full-intensity pixel (severity 5)."""
    return _to_uint8(rng.poisson(_unit(images) * 3.0) / 3.0)


def impulse_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on 17% of the pixels, half each (severity 4)."""
    x = _unit(images)
    hit = rng.random(x.shape) < 0.17
    salt = rng.random(x.shape) < 0.5
    return _to_uint8(np.where(hit, salt.astype(np.float32), x))


def glass_blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma 0.7), pixels swapped with neighbours up to 1 px away (2 passes), blur again."""
    sigma, delta, passes = 0.7, 1, 2
    out = []
    for image in images:
        x = _to_uint8(ndimage.gaussian_filter(_unit(image), sigma))
        for _ in range(passes):
            for h in range(SIZE - delta, delta, -1):
                for w in range(SIZE - delta, delta, -1):
                    if rng.random() < 0.5:
                        dx, dy = rng.integers(-delta, delta, size=2)
                        x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
        out.append(_to_uint8(ndimage.gaussian_filter(x / 255.0, sigma)))
    return np.stack(out)


def _motion_kernel(angle_deg: float, length: int = 10, sigma: float = 3.0) -> np.ndarray:
    kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
    t = np.radians(angle_deg)
    for i in range(length + 1):  # one-sided, as ImageMagick's motion blur: the trail lies behind the ink
        x, y = length + i * np.cos(t), length - i * np.sin(t)
        kernel[round(y), round(x)] += np.exp(-0.5 * (i / sigma) ** 2)
    return kernel / kernel.sum()


def motion_blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A motion blur 10 px long (Gaussian weights, sigma 3) at a random angle in ±45° (severity 1)."""
    out = [
        cv2.filter2D(image, -1, _motion_kernel(rng.uniform(-45, 45)), borderType=cv2.BORDER_CONSTANT)
        for image in images
    ]
    return np.stack(out)


def _warp(images: np.ndarray, matrices: list[np.ndarray]) -> np.ndarray:
    """Warp each image by its 2×2 output→input matrix about the centre (bilinear, zero outside)."""
    out = []
    for image, a in zip(images, matrices, strict=True):
        offset = CENTRE - a @ np.array([CENTRE, CENTRE])
        inverse_map = np.hstack([a, offset[:, None]]).astype(np.float32)
        out.append(cv2.warpAffine(image, inverse_map, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    return np.stack(out)


def shear(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shear of ±0.4 rad about the centre, the sign drawn per image (severity 2)."""
    # scikit-image's AffineTransform(shear=s): [[1, -sin s], [0, cos s]]
    matrices = []
    for sign in rng.choice([-1.0, 1.0], len(images)):
        s = 0.4 * sign
        matrices.append(np.array([[1.0, -np.sin(s)], [0.0, np.cos(s)]]))
    return _warp(images, matrices)


def rotate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation by ±0.4 rad (23°) about the centre, the sign drawn per image (severity 2)."""
    matrices = []
    for sign in rng.choice([-1.0, 1.0], len(images)):
        t = 0.4 * sign
        matrices.append(np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]))
    return _warp(images, matrices)


def scale(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit shrunk to 70% about the centre (severity 3)."""
    return _warp(images, [np.eye(2) / 0.7] * len(images))


def translate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A shift of 3 px along each axis, each sign drawn per image (severity 3)."""
    out = []
    for dx, dy in rng.choice([-3, 3], (len(images), 2)):
        out.append(cv2.warpAffine(images[len(out)], np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE)))
    return np.stack(out)


def brightness(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """+0.5 on HSV's value (severity 5): for a grey image, 0.5 added to every pixel."""
    return _to_uint8(_unit(images) + 0.5)


def stripe(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 7 leftmost and the 7 rightmost columns inverted."""
    out = images.copy()
    out[:, :, :7] = 255 - out[:, :, :7]
    out[:, :, 21:] = 255 - out[:, :, 21:]
    return out


def plasma_fractal(rng: np.random.Generator, mapsize: int = 32, decay: float = 1.4) -> np.ndarray:
    """A diamond-square height map in [0, 1], (mapsize, mapsize); `decay` damps each finer octave."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, -1, axis=0)
        square = square + np.roll(square, -1, axis=1)
        grid[half:mapsize:step, half:mapsize:step] = square / 4 + wibble * rng.uniform(-wibble, wibble, square.shape)
        centres = grid[half:mapsize:step, half:mapsize:step]
        corners = grid[0:mapsize:step, 0:mapsize:step]
        across = centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        grid[0:mapsize:step, half:mapsize:step] = across / 4 + wibble * rng.uniform(-wibble, wibble, across.shape)
        down = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        grid[half:mapsize:step, 0:mapsize:step] = down / 4 + wibble * rng.uniform(-wibble, wibble, down.shape)
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def fog(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plasma-fractal fog of strength 3 (decay 1.4), rescaled to the image's range (severity 5)."""
    out = []
    for image in _unit(images):
        peak = image.max()
        fogged = image + 3.0 * plasma_fractal(rng)[:SIZE, :SIZE]
        out.append(_to_uint8(fogged * peak / (peak + 3.0)))
    return np.stack(out)


def spatter(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mud spatter (severity 4): blobs of a thresholded smoothed noise field, painted grey 63/255."""
    out = []
    for image in _unit(images):
        liquid = ndimage.gaussian_filter(rng.normal(0.65, 0.3, image.shape), 1.0)
        mask = ndimage.gaussian_filter((liquid > 0.65).astype(np.float32), 1.5)
        mask[mask < 0.8] = 0
        out.append(_to_uint8(image * (1 - mask) + mask * 63 / 255))
    return np.stack(out)


def _line(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """The reference's anti-aliased line from column c0 to c1: intensity log(1 − d/2.3) + 1 at vertical distance d."""
    if c1 == c0:
        return np.zeros((SIZE, SIZE))
    cc, rr = np.meshgrid(np.arange(SIZE, dtype=float), np.arange(SIZE, dtype=float), sparse=True)
    dist = np.clip(np.abs(rr - ((r1 - r0) / (c1 - c0) * (cc - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - dist / 2.3) + 1, 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


def dotted_line(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dashed line across the whole width (2-px dashes), from a random row to a random row."""
    out = []
    for image in _unit(images):
        r0, r1 = rng.integers(0, 27, size=2)
        line = _line(0, r0, 27, r1)
        for start in range(0, 28, 4):
            line[:, start : start + 2] = 0
        out.append(_to_uint8(image + line))
    return np.stack(out)


def zigzag(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zigzag (2-px legs, 2-px amplitude) from column 2 to 25, tilted by up to ±5 rows."""
    out = []
    for image in _unit(images):
        r0 = int(rng.integers(0, 27))
        r1 = r0 + int(rng.integers(-5, 5))
        theta = np.arctan((r1 - r0) / 23)
        length = 23 / np.cos(theta)
        points = [(0.0, 0.0)]
        r_i = 0.0
        for i in range(int((length - 2) // 4) + 1):
            r_i = (-1) ** i * 2.0
            points.append(((2 * i + 1) * 2.0, r_i))
        last = 4 * (length // 4)
        if length != last:
            points.append((length, r_i / (2 * (length - last))))
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        cs, rs = rotation @ np.array(points).T
        cs, rs = cs + 2, rs + r0
        x = image.copy()
        for i in range(1, len(cs)):
            x = np.clip(x + _line(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
        out.append(_to_uint8(x))
    return np.stack(out)


def canny_edges(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit's Canny edges only (Gaussian sigma 1, hysteresis thresholds 0.1 and 0.2 of the gradient)."""
    scale_up = 1000.0  # OpenCV's Canny takes integer gradients: scale the float ones, and the thresholds
    out = []
    for image in _unit(images):
        smooth = ndimage.gaussian_filter(image, 1.0, mode="constant")
        dx = np.round(cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3) * scale_up).astype(np.int16)
        dy = np.round(cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3) * scale_up).astype(np.int16)
        out.append(cv2.Canny(dx, dy, 0.1 * scale_up, 0.2 * scale_up, L2gradient=True))
    return np.stack(out)


CORRUPTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}  # in the paper's order


def corrupt(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """One MNIST-C corruption of a batch of digits, deterministic for a seed.

    Args:
      images: (N, 28, 28) uint8, white ink on black (MNIST's format).
      name: a key of `CORRUPTIONS`.
      seed: seeds this call's own generator (never NumPy's global state).

    Returns:
      (N, 28, 28) uint8.

    Raises:
      KeyError: for an unknown corruption name.
      ValueError: for images that are not (N, 28, 28) uint8.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"corrupt takes (N, 28, 28) uint8 digits, got {images.shape} {images.dtype}")
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption {name!r}; choose one of: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name](images, np.random.default_rng([seed, list(CORRUPTIONS).index(name)]))

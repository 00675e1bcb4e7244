"""Any image of a digit → the 28×28 input an MNIST model expects, made the way MNIST itself was made.

MNIST digits are white ink on black, size-normalised so the longer side of the ink's bounding box is 20 px
(aspect ratio kept, anti-aliased), then placed in 28×28 so the ink's centre of mass is at the centre.
A canvas drawing, a scan or a phone photo is none of that: black ink on white or on a transparent
background, off-centre, thick or thin strokes, uneven light and paper texture. `to_mnist_28x28` undoes
each difference in turn, and says "no digit" rather than guess on a blank canvas, a dot, or noise:

1. decode safely (`digitlab.data.decode`: pixel limit against decompression bombs), shrink (or enlarge a small
   image) to a working size;
2. ink map (`digitlab.data.ink`): alpha for transparent images, else luminance with the polarity taken from the
   border, plus, in a colour image, how far each pixel's colour departs from the paper's (CIELAB chroma): yellow
   ink on light-blue paper has almost the paper's luminance;
3. flatten uneven background (`digitlab.data.ink`: a grey opening larger than any stroke estimates it), stretch
   contrast, and remove the rules of ruled or squared paper (`digitlab.data.paper_rules`: thin straight lines
   across the image, at least two of them);
4. keep the connected ink blobs that matter (drops specks), or report "no digit";
5. normalise stroke width toward MNIST's (about 15% of the digit's longer side), crop to the bounding box;
6. scale the longer side to 20 px with anti-aliasing, paste into 28×28, shift the centre of mass to centre.

Speed matters (the server does this per request): PNGs decode with libspng, pixel work is OpenCV and NumPy on
a ~112 px working copy, and steps 5-6 touch only the digit's neighbourhood. About 1-2 ms per canvas image.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from digitlab.data.decode import MAX_PIXELS, ImageInput, load_pixels
from digitlab.data.images import to_input_batch
from digitlab.data.ink import flatten_background, ink_map
from digitlab.data.paper_rules import remove_rules
from digitlab.data.segment import INK_THRESHOLD, Box, bounding_box, marks
from digitlab.errors import DigitlabError

OPENCV_THREADS_ENV = "OPENCV_FOR_THREADS_NUM"  # read by OpenCV when it is imported: the default for new processes


def single_threaded_opencv() -> None:
    """Run OpenCV's calls on the calling thread only, in this process and in processes started after this.

    The images preprocessed here are small (a few hundred microseconds of OpenCV each), and the processes that
    preprocess many of them (`predict`'s worker processes, the server) already run one per core: OpenCV's own
    thread pool would only contend with them. Process-wide, so it is called where such a process starts, never
    at import: a notebook or library user who only calls `to_mnist_28x28` keeps OpenCV as they set it.
    """
    os.environ.setdefault(OPENCV_THREADS_ENV, "1")
    cv2.setNumThreads(1)


def usable_cpus() -> int:
    """The CPUs this process may run on (cgroup/affinity aware where the OS says): the default worker count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_processes(
    fn: Callable[[Any], Any], items: Iterable[Any], workers: int, died: str, chunksize: int = 1
) -> Iterator[Any]:
    """`map(fn, items)`, in order, on `workers` spawned processes whose OpenCV runs single-threaded.

    Spawned, not forked: forking a process that already runs TensorFlow's threads can deadlock. `fn` must be a
    module-level function the workers can import. Shared by `predict`'s files and training's served copies.

    Args:
        fn: what each item goes through.
        items: the inputs.
        workers: processes to start.
        died: the one-line message when a worker dies (out of memory, a script without a `__main__` guard).
        chunksize: items sent to a worker at a time.

    Yields:
        fn(item) for each item, in order.

    Raises:
        DigitlabError: a worker process died (`died`).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=single_threaded_opencv) as pool:
        try:
            yield from pool.map(fn, items, chunksize=chunksize)
        except BrokenProcessPool as e:
            raise DigitlabError(died) from e


WORK_SIZE = 112  # working resolution (longer side): strokes stay several pixels wide, work stays ~1 ms
BOX = 20  # MNIST: the longer side of the digit's bounding box
CANVAS = 28
NOISE_FLOOR = 0.12  # below this (after stretching) a pixel is background noise, set to 0 as in MNIST
# Ink over more than this share of the working image is noise, not a digit: noise images cover 58% and more at any
# size, digits at most ~53% (a thick digit filling its box; one under MNIST-C's fog). It was 0.45 until small
# images were enlarged, where fogged 28×28s (training digits, checked before test) reach 45-53%.
NOISE_COVERAGE = 0.55
STROKE_RANGE = (0.11, 0.20)  # MNIST stroke width / longer side: median 0.158, 10-90% ≈ 0.12-0.21 (measured)


@dataclass
class Processed:
    """The model input and what was found on the way, so callers can show it."""

    pixels: np.ndarray  # (28, 28) float32 in [0, 1], white ink on black
    blank: bool  # True: no digit found (blank canvas, a dot, or noise); `pixels` is all zeros then
    reason: str = ""  # why it is blank
    polarity: str = "light-on-dark"  # or "dark-on-light" (inverted) or "alpha" (ink from transparency)
    bbox: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) of the ink in the input image
    source_size: tuple[int, int] = (0, 0)  # (width, height) of the input image
    stroke_scale: float = 1.0  # >1: strokes were thickened, <1: thinned
    details: dict[str, Any] = field(default_factory=dict)
    ink: Any = field(default=None, repr=False)  # the working-size `Ink` it was cut from, when it came from an image

    def as_model_input(self) -> np.ndarray:
        """The 28×28 as a batch of one, as a model reads it.

        Returns:
            (1, 28, 28, 1) float32 in [0, 1].
        """
        return to_input_batch(self.pixels)

    def to_png(self, scale: int = 1) -> bytes:
        """The 28×28 as PNG bytes (8-bit grey, white ink on black).

        Args:
            scale: nearest-neighbour enlargement (1: 28×28 pixels).

        Returns:
            The PNG file's bytes.
        """
        image = np.round(self.pixels * 255).astype(np.uint8)
        if scale > 1:
            image = cv2.resize(image, (28 * scale, 28 * scale), interpolation=cv2.INTER_NEAREST)
        return cv2.imencode(".png", image)[1].tobytes()

    def to_data_url(self) -> str:
        """The 28×28 as a PNG data URL: what the server, the page and the notebook widget show.

        Returns:
            `data:image/png;base64,...`.
        """
        return "data:image/png;base64," + base64.b64encode(self.to_png()).decode()


NO_INK = 1.5 / 255  # on a [0, 1] scale: below this a pixel is 8-bit grey level 0 or 1, no ink (1/255 as JSON
# numbers rounded to 6 places, 0.003922, must count too)


def from_mnist_pixels(pixels: np.ndarray) -> Processed:
    """A 28×28 already in MNIST's format as a `Processed`.

    It is "blank: no ink" when its brightest pixel is at most 1/255 (as 8-bit grey, level 1): nothing an 8-bit
    image would show (pixels divided by 255 twice, say), so not a digit to guess at.

    Args:
        pixels: (28, 28) float32 in [0, 1], white on black.

    Returns:
        The `Processed` (blank, with zeros, when there is no ink).
    """
    if float(pixels.max(initial=0.0)) < NO_INK:
        return Processed(np.zeros((28, 28), np.float32), blank=True, reason="blank: no ink")
    return Processed(np.asarray(pixels, np.float32), blank=False)


# --- the pipeline -------------------------------------------------------------------------------------------


def find_digit(flat: np.ndarray) -> tuple[np.ndarray | None, Box | None, str]:
    """The ink blobs that make the digit, and their bounding box.

    Args:
        flat: (h, w) float32 flattened ink map.

    Returns:
        (mask, box, "") with a bool mask of the digit's ink, or (None, None, reason) when there is no digit.
    """
    mask = flat > INK_THRESHOLD
    total = np.count_nonzero(mask)
    if total == 0:
        return None, None, "blank: no ink"
    coverage = total / mask.size
    if coverage > NOISE_COVERAGE:
        return None, None, f"noise: ink covers {coverage:.0%} of the image"
    # 8-connected: a 1-px stroke drawn without anti-aliasing steps diagonally, and 4-connectivity would cut
    # it into dozens of "scattered blobs"
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    count -= 1  # label 0 is the background
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    largest = sizes.max()
    keep = sizes >= max(largest * 0.08, 4)  # parts of the digit, not specks
    # small blobs cut by the image edge are shadows and paper edges in photos, not parts of the digit
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep[edge] &= sizes[edge] >= largest * 0.5
    keep[0] = False
    digit = mask if keep[1:].all() else keep[labels]  # a lookup table: one pass, unlike np.isin
    if not keep[1:].any():  # nothing but specks (every blob under 4 px): found by fuzzing, was an IndexError
        return None, None, "blank: only specks"
    box = bounding_box(digit)
    longest = max(box[1] - box[0], box[3] - box[2])
    extent = longest / max(mask.shape)
    # a dot is small *and* about as long as it is wide: a thin "1" drawn small on a large canvas is a stroke
    if extent < 0.08 and longest < 3 * stroke_width(digit):  # a round blob: longest ≈ 2 × width
        return None, None, f"blank: only a dot ({extent:.0%} of the image)"
    if count > 40 and largest < 0.25 * total:
        return None, None, f"noise: {count} scattered blobs, none dominant"
    return digit, box, ""


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width ≈ 2 · area / perimeter (a long stroke of width w: area L·w, perimeter ≈ 2L).

    Args:
        mask: bool ink mask.

    Returns:
        The width in pixels of the mask (0 for an empty mask).
    """
    area = cv2.countNonZero(mask.view(np.uint8))
    # perimeter: pixels removed by a 4-neighbour erosion (pixels outside the array count as ink, so the
    # array's own border is not a perimeter: callers pass a crop with a 1-pixel margin)
    inner = cv2.erode(mask.view(np.uint8), _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    return 2.0 * area / max(area - cv2.countNonZero(inner), 1)


@dataclass
class Ink:
    """An image's ink at working size (steps 1-3): what single digits and numbers are both cut from.

    Attributes:
      flat: (h, w) float32 in [0, 1], ink ≈ 1 on a flattened background ≈ 0.
      polarity: light-on-dark, dark-on-light or alpha.
      scale: input pixels per working pixel (an integer shrink factor ≥ 1, or 1/k for a small image enlarged k×).
      size: (width, height) of the input image in pixels.
    """

    flat: np.ndarray
    polarity: str
    scale: float
    size: tuple[int, int]


def image_ink(source: ImageInput, max_pixels: int = MAX_PIXELS, work_size: int = WORK_SIZE) -> Ink:
    """Steps 1-3 of the pipeline: decode, ink map with its polarity, flattened background.

    Args:
      source: any image input `load_pixels` takes (path, bytes, PIL image, array).
      max_pixels: the decoded-pixel limit.
      work_size: the working copy's longer side in pixels (a wide number gets a larger one, so each of its
        digits keeps about the resolution a single digit has).

    Returns:
      The image's `Ink`: the flattened ink map, its polarity, scale and the input's size.

    Raises:
      ImageError: the image cannot be decoded or is over the limit.
    """
    pixels = load_pixels(source, max_pixels, draft_size=work_size * 2)
    ink, polarity, scale, level = ink_map(pixels, work_size)
    flat = remove_rules(flatten_background(ink, level))
    return Ink(flat, polarity, scale, (pixels.shape[1], pixels.shape[0]))


def to_mnist_28x28(source: ImageInput, max_pixels: int = MAX_PIXELS) -> Processed:
    """Turn any digit image into MNIST's 28×28 format (see the module docstring for the steps).

    Args:
        source: any image input `load_pixels` takes (path, bytes, PIL image, array).
        max_pixels: the decoded-pixel limit.

    Returns:
        The `Processed` 28×28 (float32 in [0, 1], white on black, centred by mass in a 20×20 box), or a blank
        one with the reason when no digit is found.

    Raises:
        ImageError: when the input cannot be read or is over the pixel limit.
    """
    ink = image_ink(source, max_pixels)
    digit, box, reason = find_digit(ink.flat)
    if digit is None or box is None:
        return Processed(
            np.zeros((28, 28), np.float32), blank=True, reason=reason, polarity=ink.polarity, source_size=ink.size
        )
    result = normalise_digit(ink, digit, box)
    found = marks(ink.flat)  # separate marks: a number, or a digit and something else (no cut candidates needed)
    result.details["marks"] = len(found)
    if len(found) == 1:
        top, bottom, left, right = found[0][1]
        result.details["mark_aspect"] = round((right - left) / max(bottom - top, 1), 4)
    result.ink = ink  # kept for reading a wide mark as touching digits (not serialised)
    return result


def normalise_digit(ink: Ink, digit: np.ndarray, box: Box) -> Processed:
    """Steps 5-6 for one digit's ink: size-normalise into a 20×20 box and centre by mass on 28×28.

    Args:
        ink: the image's ink at working size.
        digit: bool mask of the digit in `ink.flat`.
        box: the mask's bounding box.

    Returns:
        The `Processed` 28×28, with the digit's box in the input image's pixels.
    """
    flat, polarity, scale, size = ink.flat, ink.polarity, ink.scale, ink.size
    result = Processed(np.zeros((28, 28), np.float32), blank=False, polarity=polarity, source_size=size)
    top, bottom, left, right = box
    longest = max(bottom - top, right - left)
    # the stroke width, brought toward MNIST's (`_stroke_radius`)
    width = stroke_width(digit[max(0, top - 1) : bottom + 1, max(0, left - 1) : right + 1])
    radius = _stroke_radius(width, longest)
    # From here on only the digit's surroundings matter: the anti-aliased edge (1 px) and the reach of the
    # stroke dilation. Working on that crop is identical to working on the whole image, and cheaper.
    margin = abs(radius) + 2
    y_off, x_off = max(0, top - margin), max(0, left - margin)
    flat, digit = (
        flat[y_off : bottom + margin, x_off : right + margin],
        digit[y_off : bottom + margin, x_off : right + margin],
    )

    # keep the anti-aliased edges next to the digit; lift the noise floor (paper grain, JPEG) to exact black
    values = np.where(_dilate4(digit), flat, 0.0)
    values = np.clip((values - NOISE_FLOOR) * np.float32(1 / (1 - NOISE_FLOOR)), 0.0, 1.0, dtype=np.float32)
    # MNIST strokes are saturated in their core: scale so the typical stroke pixel (not just the brightest)
    # reaches full intensity; faint photo ink otherwise reaches the model as a grey, thinner-looking digit
    core = values[values > INK_THRESHOLD]
    if core.size:
        k = int(0.75 * (core.size - 1))
        values = np.minimum(values * np.float32(1 / max(float(np.partition(core, k)[k]), 0.3)), 1.0)
    if radius > 0:
        values = cv2.dilate(values, _disk(radius))  # grey dilation: the max over a disk
    elif radius < 0:
        eroded = cv2.erode(values, _disk(-radius))
        if np.count_nonzero(eroded > INK_THRESHOLD) > 0.3 * np.count_nonzero(values > INK_THRESHOLD):
            values = eroded  # (never erase the digit)
        else:
            radius = 0
    result.stroke_scale = float((width + 2 * radius) / width) if width else 1.0

    top, bottom, left, right = bounding_box(values > INK_THRESHOLD * 0.5)
    crop = values[top:bottom, left:right]
    h, w = crop.shape
    factor = BOX / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.LANCZOS))
    small = np.maximum(small, 0.0)
    peak = small.max()
    if peak > 0:
        small = np.minimum(small * np.float32(1 / peak), 1.0)  # MNIST digits reach full intensity
    y0, x0 = _centred_by_mass(small)
    result.pixels[y0 : y0 + new_h, x0 : x0 + new_w] = small
    top, bottom, left, right = top + y_off, bottom + y_off, left + x_off, right + x_off  # in the working image
    result.bbox = (
        int(left * scale),
        int(top * scale),
        min(size[0], int(np.ceil(right * scale))),
        min(size[1], int(np.ceil(bottom * scale))),
    )
    result.details = {
        "stroke_width_px": round(float(width) * scale, 2),
        "work_scale": scale,
        "aspect": round((right - left) / max(bottom - top, 1), 4),  # the ink box's width / height
    }
    return result


def _stroke_radius(width: float, longest: int) -> int:
    """The disk radius that brings a stroke toward MNIST's width (> 0 dilates, < 0 erodes, 0 leaves it).

    MNIST's stroke is ~16% of the digit's longer side (median; 13-22% covers most digits): only a clearly thinner or
    thicker stroke is changed, toward the edge of that range, not to one fixed width.
    """
    ratio = width / longest
    if ratio < STROKE_RANGE[0]:
        return max(1, round((STROKE_RANGE[0] * longest - width) / 2))
    if ratio > STROKE_RANGE[1] and width > 3:
        return -max(1, round((width - STROKE_RANGE[1] * longest) / 2))
    return 0


def _centred_by_mass(small: np.ndarray) -> tuple[int, int]:
    """Where the size-normalised digit goes so its centre of mass lands at (13.5, 13.5), never off the canvas."""
    new_h, new_w = small.shape
    mass = float(small.sum())
    # (weighted sums, not `@`: a BLAS call here wakes OpenBLAS's thread pool, which then spins on every core)
    cy = float((small.sum(axis=1) * np.arange(new_h)).sum()) / mass if mass else (new_h - 1) / 2
    cx = float((small.sum(axis=0) * np.arange(new_w)).sum()) / mass if mass else (new_w - 1) / 2
    y0 = min(max(round(CANVAS / 2 - 0.5 - cy), 0), CANVAS - new_h)
    x0 = min(max(round(CANVAS / 2 - 0.5 - cx), 0), CANVAS - new_w)
    return y0, x0


def _dilate4(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by the 4-neighbour cross (scipy's default structure)."""
    return cv2.dilate(mask.view(np.uint8), _CROSS).view(bool)


_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
_DISKS: dict[int, np.ndarray] = {}


def _disk(radius: int) -> np.ndarray:
    if radius not in _DISKS:
        y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
        _DISKS[radius] = (x * x + y * y <= radius * radius + radius * 0.5).astype(np.uint8)
    return _DISKS[radius]

"""Safe image decoding: any path, bytes, data URL, PIL image or array → upright uint8 pixels.

Untrusted input starts here. The pixel limit is checked from the header before any pixel is decoded (no
decompression bombs), truncated or non-image files become one-line `ImageError`s, and 8-bit grey/RGB/RGBA
PNGs (every browser canvas) take a fast path: libspng decodes them straight to an array, about 5× faster
than Pillow. Everything else goes through Pillow, EXIF orientation included; every mode Pillow decodes becomes
8-bit grey, grey + alpha, RGB or RGBA (`to_8bit`), wide ones (16-bit, 32-bit, float) by their value range.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyspng
from PIL import Image, ImageOps, UnidentifiedImageError

from digitlab.errors import ImageError, ImageTooLarge, one_line

MAX_PIXELS = 40_000_000  # refuse larger images (a 40 MP photo is fine; a decompression bomb is not)

ImageInput = str | Path | bytes | bytearray | Image.Image | np.ndarray


def decode_data_url(url: str) -> bytes:
    """Bytes of a `data:image/...;base64,...` URL.

    Args:
        url: The data URL, as a browser canvas's `toDataURL()` gives it.

    Returns:
        The decoded payload (the image file's bytes).

    Raises:
        ImageError: Not a base64 data URL, or its payload is not valid base64.
    """
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header or not payload:
        raise ImageError("not a base64 data URL (expected data:image/png;base64,...)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageError("the data URL's base64 payload is invalid") from e


def load_image(source: ImageInput, max_pixels: int = MAX_PIXELS, draft_size: int | None = None) -> Image.Image:
    """Open a path, bytes, data URL, PIL image or array as a PIL image, safely.

    The pixel limit is checked from the header before any pixel is decoded. `draft_size` lets a JPEG decode
    at 1/2, 1/4 or 1/8 scale (no smaller than that size), which is most of the cost of a large photo.

    Args:
        source: A file path, the file's bytes, a data URL, a PIL image or an array (see `load_pixels`).
        max_pixels: The most pixels (width × height) accepted, checked before decoding.
        draft_size: For a JPEG, the smallest side (pixels) worth decoding, or None for full size.

    Returns:
        The decoded PIL image (pixels loaded).

    Raises:
        ImageError: The input cannot be read, is over the pixel limit, or is truncated or corrupt.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        return Image.fromarray(_from_array(source, max_pixels))
    else:
        image = _open(_source_bytes(source), max_pixels)
    _check_size(*image.size, max_pixels)
    with _refusals("the image data is truncated or corrupt"):
        if getattr(image, "format", None) == "JPEG" and draft_size:
            image.draft("RGB" if image.mode != "L" else "L", (draft_size, draft_size))  # DCT-domain downscale
        image.load()  # decode now so truncated files fail here, with a clear message
    return image


def load_pixels(source: ImageInput, max_pixels: int = MAX_PIXELS, draft_size: int | None = None) -> np.ndarray:
    """Upright uint8 pixels of any input: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA.

    8-bit grey/RGB/RGBA PNGs (every browser canvas) skip Pillow: the size comes from the IHDR chunk and
    libspng decodes straight to an array, 5× faster than Pillow's decoder. Everything else goes through
    `load_image`, EXIF orientation and palette/CMYK/16-bit conversions included.

    Args:
        source: A file path, the file's bytes, a data URL, a PIL image, or an array of any dtype and one of
            the shapes above (wide values are scaled by their range, see `scale_to_uint8`).
        max_pixels: The most pixels (width × height) accepted, checked before decoding.
        draft_size: For a JPEG, the smallest side (pixels) worth decoding, or None for full size.

    Returns:
        uint8 pixels, (H, W), (H, W, 2), (H, W, 3) or (H, W, 4), EXIF orientation applied.

    Raises:
        ImageError: The input cannot be read, is over the pixel limit, or is truncated or corrupt.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if not isinstance(source, Image.Image):
        data = _source_bytes(source)
        fast = _spng_format(data)
        if fast is not None:
            _check_size(*image_size(data), max_pixels)  # from the IHDR chunk: nothing decoded yet
            try:
                return pyspng.load(bytes(data), fast)
            except RuntimeError:
                pass  # corrupt or unusual: Pillow decodes it below, or names what is wrong
        source = data
    image = load_image(source, max_pixels, draft_size)
    with _refusals("cannot convert the image"):
        if "exif" in image.info or image.format in ("TIFF", "MPO"):  # only these can carry an orientation tag
            image = ImageOps.exif_transpose(image)
        if image.mode in ("L", "LA", "RGB", "RGBA"):
            return np.asarray(image)
        return to_8bit(image)


# Modes Pillow converts itself, each to the 8-bit mode that keeps what matters: grey, colour, transparency.
_CONVERT = {
    "1": "L",
    "P": "L",
    "PA": "LA",
    "La": "LA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "HSV": "RGB",
}
_WIDE = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # one band of 16-bit, 32-bit or float values


def to_8bit(image: Image.Image) -> np.ndarray:
    """8-bit pixels of an image in any other mode Pillow decodes (the first frame of a multi-frame file).

    Wide modes (16-bit, 32-bit, float) are scaled by their actual value range, not clipped: a 12-bit scan in a
    16-bit PNG or a float image in [0, 1] is not "almost black" (see `scale_to_uint8`).

    Args:
        image: A PIL image of any mode.

    Returns:
        uint8 pixels: (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or (H, W, 4) RGBA.

    Raises:
        ImageError: for a mode with no grey reading, naming it.
    """
    mode = image.mode
    if mode in _WIDE:
        return scale_to_uint8(np.asarray(image))
    if mode == "LAB":  # CIELAB (TIFF, PSD): Pillow's plain convert has no LAB → RGB, littleCMS has
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        return np.asarray(ImageCms.applyTransform(image, ImageCms.buildTransform(lab, srgb, "LAB", "RGB")))
    if mode == "P" and "transparency" in image.info:
        return np.asarray(image.convert("LA"))
    if mode not in _CONVERT:
        raise ImageError(f"cannot read images of mode {mode}: convert it to greyscale or RGB first")
    return np.asarray(image.convert(_CONVERT[mode]))


# Bit depths a wide image is read as: the smallest that holds its largest value (12-bit scanners, 10- and
# 14-bit cameras, 16-bit PNG/TIFF, 32-bit integers).
_DEPTHS = (8, 10, 12, 14, 16, 24, 31, 32)


def scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Any real-valued pixels → uint8, by their value range.

    Values in [0, 1] are a [0, 1] scale (×255); values in [0, 255] are already 8-bit; larger non-negative
    values are read as the smallest bit depth that holds them (10, 12, 14, 16, 24, 31 or 32 bits: a 12-bit
    image with values 300-4,000 in a 16-bit file becomes 19-249); negative values stretch [min, max] to
    [0, 255].

    Args:
        values: Pixels of any real or bool dtype and any shape.

    Returns:
        uint8 pixels of the same shape.

    Raises:
        ImageError: NaN or infinite values.
    """
    values = np.asarray(values)
    if values.dtype == np.uint8:
        return values
    if values.dtype == bool:
        return values.astype(np.uint8) * np.uint8(255)
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ImageError("the image contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if low < 0:
        values, scale = values - low, 255.0 / (high - low) if high > low else 0.0
    elif high <= 1.0:
        scale = 255.0
    else:
        depth = next((d for d in _DEPTHS if high < 2**d), None)
        scale = 1.0 if depth == 8 else 255.0 / (2**depth - 1) if depth else 255.0 / high
    return np.clip(values * scale, 0, 255).round().astype(np.uint8)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SPNG_FORMATS = {0: "L", 2: "RGB", 6: "RGBA"}  # PNG colour type → output format, for 8-bit images


def _png_ihdr(data: bytes | bytearray) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBB", data[16:26])


def _spng_format(data: bytes | bytearray) -> str | None:
    """The format libspng decodes `data` to, for an 8-bit grey/RGB/RGBA PNG without EXIF orientation; else None."""
    header = _png_ihdr(data)
    if header is None or header[2] != 8 or b"eXIf" in data:
        return None
    return _SPNG_FORMATS.get(header[3])


def image_size(data: bytes | bytearray) -> tuple[int, int] | None:
    """(width, height) read from the header alone, or None when the header cannot be read.

    Args:
        data: An image file's bytes (only the header is read).

    Returns:
        (width, height) in pixels, or None.
    """
    header = _png_ihdr(data)
    if header is not None:
        return header[0], header[1]
    try:
        return Image.open(io.BytesIO(data)).size
    except Exception:  # any unreadable input: decoding it properly will name the problem
        return None


def _source_bytes(source: str | Path | bytes | bytearray) -> bytes | bytearray:
    if isinstance(source, bytes | bytearray):
        return source
    if isinstance(source, str) and source.startswith("data:"):
        return decode_data_url(source)
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise ImageError(f"{path}: is a directory") from e
    except OSError as e:
        raise ImageError(f"{path}: cannot read the file ({e.strerror or e})") from e


def _open(data: bytes | bytearray, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read the header (no pixels yet). Pillow's own bomb check may refuse here, before our size check."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageError("not a recognised image format") from e
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"the image is over the limit of {max_pixels:,} pixels ({one_line(e)})") from e
    except Exception as e:  # any other refusal of a header parser: see _refusals
        raise ImageError(f"cannot read the image ({one_line(e)})") from e


@contextlib.contextmanager
def _refusals(what: str) -> Iterator[None]:
    """Turn every exception a decoder raises on untrusted bytes into one `ImageError`.

    Pillow's plugins refuse malformed files with whatever their parsing code hits (OSError, ValueError,
    SyntaxError, EOFError, struct.error, IndexError, a bomb check, MemoryError, ...): all of them mean the
    same to a caller, "this image cannot be decoded", and none may escape as a server error.
    """
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"the image is over the pixel limit ({e})") from e
    except Exception as e:
        raise ImageError(f"{what} ({one_line(e)})") from e


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width == 0 or height == 0:
        raise ImageError("the image has zero size")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )


def _from_array(array: np.ndarray, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    _check_size(array.shape[1], array.shape[0], max_pixels)
    if array.dtype != bool and (not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array)):
        raise ImageError(f"an image array must hold real numbers, got {array.dtype}")
    return np.ascontiguousarray(scale_to_uint8(array))

"""The IDX format of the MNIST files: encode, decode, and name what a file that is not IDX really is.

Files reach the data directory by hand, from mirrors and from browsers, and arrive as something else under an
IDX name: gzip under the raw name (read it: the magic bytes say what it is, not the name), gzip twice, an
HTML error or login page, a header written little-endian, or a download cut short. Each becomes one
`DataError` that says which, for `read_idx` and `digitlab fetch --from` alike.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from digitlab.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
# IDX type codes (third byte of the magic number) -> NumPy dtype; MNIST uses only 0x08.
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (the format of the original MNIST files).

    Args:
        array: Any shape of 1 to 255 dimensions, values in [0, 255] (cast to uint8).

    Returns:
        The file's bytes: the magic number (type 0x08), the big-endian dimensions, the values.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def gunzip(raw: bytes) -> bytes:
    """`raw` itself, or its content when it is gzip (whatever the file is called).

    Args:
        raw: A file's bytes.

    Returns:
        The decompressed bytes, or `raw` unchanged when it does not start with gzip's magic number.

    Raises:
        DataError: damaged gzip, or gzip inside gzip ("still gzip": compressed twice).
    """
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        inner = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"gzip data, but damaged ({e})") from e
    if inner[:2] == GZIP_MAGIC:
        raise DataError("still gzip after decompressing once: compressed twice (gunzip it again)")
    return inner


def _looks_html(raw: bytes) -> bool:
    head = raw[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or b"<html" in head


def _little_endian(raw: bytes) -> bool:
    """True when the header is IDX's with its bytes reversed (a writer that ignored IDX's big-endian order)."""
    if len(raw) >= 4 and raw[2:4] == b"\0\0" and raw[1] in DTYPES and 1 <= raw[0] <= 4:
        return True
    if len(raw) < 8 or raw[:2] != b"\0\0" or raw[2] not in DTYPES or not 1 <= raw[3] <= 4:
        return False
    dims = raw[3]
    header = 4 + 4 * dims
    if len(raw) < header:
        return False
    big = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    little = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "little") for i in range(dims)]
    size = np.dtype(DTYPES[raw[2]]).itemsize
    return header + int(np.prod(big)) * size != len(raw) and header + int(np.prod(little)) * size == len(raw)


def decode_idx(raw: bytes, ndim: int | None = None) -> np.ndarray:
    """The array in an IDX file's bytes (gzip is decompressed first, whatever the name said).

    Args:
        raw: The file's bytes, raw or gzip.
        ndim: The number of dimensions expected (3 for MNIST images, 1 for labels), or None for any.

    Returns:
        The array in native byte order, of the file's dtype (uint8 for MNIST) and shape.

    Raises:
        DataError: with what the bytes are instead: "still gzip", "an HTML page, not IDX", "byte order",
            "truncated: N of M bytes", trailing bytes, a bad magic number or the wrong number of dimensions.
    """
    raw = gunzip(raw)
    if _looks_html(raw):
        raise DataError("an HTML page, not IDX (an error or login page saved under the file's name)")
    if _little_endian(raw):
        raise DataError("byte order: the header only makes sense little-endian; IDX is big-endian")
    if len(raw) < 4:
        raise DataError(f"truncated: {len(raw)} bytes is shorter than an IDX header")
    zero, dtype_code, dims = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code not in DTYPES:
        raise DataError(f"bad magic number 0x{raw[:4].hex()}, not an IDX file")
    if ndim is not None and dims != ndim:
        raise DataError(f"has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise DataError("truncated inside the header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(DTYPES[dtype_code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) < expected:
        raise DataError(f"truncated: {len(raw):,} of {expected:,} bytes (the header says {shape})")
    if len(raw) > expected:
        raise DataError(f"has trailing bytes: {len(raw):,} bytes, the header {shape} implies {expected:,}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))

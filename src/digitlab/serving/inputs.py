"""Request bodies → model inputs, and every way they can be wrong: each becomes a `BadRequest` (a JSON 4xx).

Bodies are read with a size limit that a lying `Content-Length` cannot get around; pixels must be finite and
in range; base64 and data URLs must decode.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
from fastapi import Request

from digitlab.data.decode import decode_data_url
from digitlab.errors import ImageError

BODY_SECONDS = 15.0  # a whole request body must arrive within this (slow-body clients get 408)


class BadRequest(Exception):
    """A client error: becomes `{"error": message}` with this status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int, seconds: float = BODY_SECONDS) -> bytes:
    """The whole body, refusing (413) as soon as it is known to be over `limit` bytes, and (408) a body that
    has not fully arrived within `seconds`: a client trickling bytes must not hold a connection forever."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise BadRequest(f"request body over the limit of {limit:,} bytes", 413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BadRequest(f"request body over the limit of {limit:,} bytes", 413)
                chunks.append(chunk)
    except TimeoutError:
        raise BadRequest(f"the request body did not arrive within {seconds:g} s", 408) from None
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The body as JSON; nesting deeper than Python's recursion limit (`[[[[…`) is a 400, not a crash."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply") from None


def pixels_from_json(value: Any, what: str) -> np.ndarray:
    """A 28×28 (or 28×28×1) array of finite numbers in [0, 1] or [0, 255]."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(f"{what} must be a 28×28 array of numbers") from None
    if array.shape == (28, 28, 1):
        array = array[..., 0]
    if array.shape != (28, 28):
        raise BadRequest(f"{what} must have shape 28×28, got {'×'.join(map(str, array.shape)) or 'a scalar'}")
    if not np.all(np.isfinite(array)):
        raise BadRequest(f"{what} contains NaN or infinite values")
    if array.min() < 0 or array.max() > 255:
        raise BadRequest(f"{what} values must be in [0, 1] or [0, 255]")
    if array.max() > 1:
        array = array / 255.0
    return array.astype(np.float32)


def b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise BadRequest(f"{what} is not valid base64") from None


def image_bytes(image: str) -> bytes:
    try:
        return decode_data_url(image) if image.startswith("data:") else b64(image, "image")
    except ImageError as e:
        raise BadRequest(f"image: {e}") from None


# --- the request bodies, as OpenAPI documents them (the routes parse raw bodies themselves) ------------------

_PIXELS = {
    "type": "array",
    "minItems": 28,
    "maxItems": 28,
    "items": {
        "type": "array",
        "minItems": 28,
        "maxItems": 28,
        "items": {"type": "number", "minimum": 0, "maximum": 255},
    },
    "description": "28×28 numbers in [0, 1] or [0, 255], white digit on black (MNIST convention)",
}
_IMAGE = {"type": "string", "description": "a data:image/png;base64,... URL, or plain base64 of image bytes"}
_IMAGE_BODIES = {
    "multipart/form-data": {
        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
    },
    "image/png": {"schema": {"type": "string", "format": "binary"}},
}


def _json_request(schema: dict, **other_bodies: dict) -> dict:
    """`openapi_extra` for a route whose (required) body is JSON with `schema`, or one of `other_bodies`."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}, **other_bodies}}}


def image_request(extra: dict | None = None) -> dict:
    """`openapi_extra` for a route that takes one image as JSON (`image` or `pixels`), multipart or raw bytes."""
    properties = {"image": _IMAGE, "pixels": _PIXELS, **(extra or {})}
    return _json_request({"type": "object", "properties": properties, "minProperties": 1}, **_IMAGE_BODIES)


_B64_INSTANCE = {"type": "object", "required": ["b64"], "properties": {"b64": {"type": "string"}}}
_TF_IMAGE = {"oneOf": [_PIXELS, _B64_INSTANCE]}
_TF_BATCH = {"type": "array", "minItems": 1, "maxItems": 256, "items": _TF_IMAGE}
TF_SERVING_REQUEST = _json_request(
    {
        "type": "object",
        "description": "TF Serving's row ('instances') or columnar ('inputs') form, with or without the input name",
        "properties": {
            "signature_name": {"type": "string", "enum": ["serving_default", "logits"]},
            "instances": {
                "type": "array",
                "minItems": 1,
                "maxItems": 256,
                "items": {"oneOf": [*_TF_IMAGE["oneOf"], {"type": "object", "required": ["image"]}]},
            },
            "inputs": {"oneOf": [_TF_BATCH, _B64_INSTANCE, {"type": "object", "properties": {"image": _TF_BATCH}}]},
        },
    }
)
FEEDBACK_REQUEST = _json_request(
    {
        "type": "object",
        "required": ["image", "label"],
        "properties": {
            "image": _IMAGE,
            "label": {"type": "integer", "minimum": 0, "maximum": 9},
            "predicted": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
        },
    }
)
EXPLAIN_OPTIONS = {
    "method": {"type": "string", "enum": ["ig", "smoothgrad", "layercam", "gradcam", "occlusion", "none"]},
    "target": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
    "contrast": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
    "steps": {"type": "integer", "minimum": 4, "maximum": 256},
    "baseline": {"type": "string", "enum": ["black", "blur", "grey"]},
}

"""What requests bring, as `answers.py` is what they get: bodies, their parsing into images, `BadRequest`.

The JSON bodies are Pydantic models; `BadRequest` is the error for a body that cannot be used.

The OpenAPI document is generated from the models. An image comes as JSON, a multipart upload or the raw body.

The image routes take three content types, so they read the body themselves and validate its JSON with these
models (FastAPI's idiom for a body it does not parse: "Path Operation Advanced Configuration", custom OpenAPI
content). A failed validation is a `BadRequest` naming the field and what it must be; the size and time limits
of every body are middleware (`limits.py`).
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import Request
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from digitlab.data.decode import decode_data_url
from digitlab.errors import DigitlabError
from digitlab.explain.options import BASELINES, METHODS


class BadRequest(DigitlabError):
    """A client error only the server has (a malformed body, a busy explainer): `{"error": message}`, its status.

    Args:
      message: what was wrong, in one line.
      status: the HTTP status (400 unless given: 408, 413, 429, 404, 422, 507 where they apply).
    """

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.http_status = status


def _pixels(value: Any, info: ValidationInfo) -> np.ndarray:
    """28×28 (or 28×28×1) finite numbers in [0, 1] or [0, 255] → float32 (28, 28) in [0, 1]."""
    try:
        return pixels_from_json(value, info.field_name or "pixels")
    except BadRequest as e:
        raise ValueError(str(e)) from e


_PIXEL_ROWS = TypeAdapter(
    Annotated[
        list[Annotated[list[Annotated[float, Field(ge=0, le=255)]], Field(min_length=28, max_length=28)]],
        Field(min_length=28, max_length=28),
    ]
).json_schema()
Pixels = Annotated[
    np.ndarray,
    PlainValidator(_pixels),
    WithJsonSchema(
        {**_PIXEL_ROWS, "description": "28×28 numbers in [0, 1] or [0, 255], white digit on black (MNIST convention)"}
    ),
]
"""A 28×28 image as JSON numbers; validated into a float32 (28, 28) array in [0, 1]."""


def _not_bool(value: Any) -> Any:
    """JSON's true and false are not numbers here, although Python's bool is an int."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "not an integer")
    return value


Digit = Annotated[int, Field(ge=0, le=9), BeforeValidator(_not_bool)]
"""A label: an integer 0-9."""


class ImageBody(BaseModel, arbitrary_types_allowed=True):
    """The JSON body of `/api/predict` and `/api/read`: one image, as `image` or as `pixels` (which wins)."""

    image: str | None = Field(
        None, description="a string: a data:image/png;base64,... URL, or plain base64 of image bytes"
    )
    pixels: Pixels | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_image(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not ({"image", "pixels"} & data.keys()):
            raise ValueError("JSON body must be an object with 'image' (a data URL) or 'pixels' (28×28)")
        return data


class ExplainOptions(BaseModel):
    """What `/api/explain` explains and how, from its JSON body or its query string."""

    method: Literal[(*METHODS, "none")] = Field("ig", description=f"one of {', '.join(METHODS)} or none")  # type: ignore[valid-type]
    target: Digit | None = Field(None, description="a digit 0-9 or null (default: the prediction)")
    contrast: Digit | None = Field(None, description="a digit 0-9 or null (default: no contrast)")
    steps: Annotated[int, BeforeValidator(_not_bool)] = Field(
        32, ge=4, le=256, description="an integer between 4 and 256 (integrated-gradients steps)"
    )
    baseline: Literal[BASELINES] = Field("blur", description=f"one of {', '.join(BASELINES)}")  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_empty(cls, data: Any) -> Any:
        """An empty or "null" value (a query string's way of saying nothing) means the default."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v not in (None, "", "null")}
        return data


class ExplainRequest(ImageBody, ExplainOptions):
    """The JSON body of `/api/explain`: one image and the explanation's options."""


class FeedbackRequest(BaseModel):
    """The JSON body of `/api/feedback`: a correction of what the page predicted."""

    image: str = Field(description="a data:image/png;base64,... URL")
    label: Digit = Field(description="an integer 0-9")
    predicted: Digit | None = Field(None, description="an integer 0-9 or null")


class B64Image(BaseModel):
    """TF Serving's way of sending bytes; here any PNG/JPEG/... image, preprocessed like MNIST (an extension)."""

    b64: str


TFImage = Pixels | B64Image
TFBatch = Annotated[list[TFImage], Field(min_length=1, max_length=256)]


class NamedTFImage(BaseModel):
    """One image (a row) under the signature's one input name."""

    image: TFImage


class NamedTFBatch(BaseModel):
    """A columnar batch under the signature's one input name."""

    image: TFBatch


class TFServingRequest(BaseModel, arbitrary_types_allowed=True):
    """TF Serving's row (`instances`) or columnar (`inputs`) form, with or without the input name `image`.

    Documents the body only: `tf_serving.parse_predict` reads it, with TF Serving's own error messages.
    """

    signature_name: Literal["serving_default", "logits"] = "serving_default"
    instances: Annotated[list[TFImage | NamedTFImage], Field(min_length=1, max_length=256)] | None = None
    inputs: TFBatch | B64Image | NamedTFBatch | None = None


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], payload: Any) -> M:
    """`payload` validated by `model`.

    Args:
      model: the request body's model.
      payload: the parsed JSON.

    Returns:
      The model instance.

    Raises:
      BadRequest: the first failure, in words: a validator's own message, or "'field' must be <its description>".
    """
    try:
        return model.model_validate(payload)
    except ValidationError as e:
        error = e.errors()[0]
        if error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        elif not error["loc"]:
            required = [f"'{name}'" for name, field in model.model_fields.items() if field.is_required()]
            message = f"body must be a JSON object with {' and '.join(required) or 'its fields'}"
        else:
            name = str(error["loc"][0]) if error["loc"] else ""
            field = model.model_fields.get(name)
            message = f"'{name}' must be {field.description}" if field and field.description else error["msg"]
        raise BadRequest(message) from e


def json_body(model: type[BaseModel], **other_bodies: dict) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself.

    The body is required: JSON described by `model`, or one of `other_bodies` (content type → OpenAPI media type).

    Args:
      model: the JSON body's model; its nested models are written inline (the route has no components of its own).
      **other_bodies: further content types the route accepts.

    Returns:
      The `requestBody` part of the route's OpenAPI operation.
    """
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        return [inline(value) for value in node] if isinstance(node, list) else node

    content = {"application/json": {"schema": inline(schema)}, **other_bodies}
    return {"requestBody": {"required": True, "content": content}}


IMAGE_BODIES = {
    "multipart/form-data": {
        "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
    },
    "image/png": {"schema": {"type": "string", "format": "binary"}},
}
"""The non-JSON ways to send an image: a multipart upload, or the image itself as the body."""


def parse_json(body: bytes) -> Any:
    """The body as JSON.

    Args:
      body: the raw request body.

    Returns:
      The parsed value (any JSON type).

    Raises:
      BadRequest: not JSON, or nested deeper than Python's recursion limit (`[[[[…`: a 400, not a crash).
    """
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest("the body is not valid JSON") from e
    except RecursionError as e:
        raise BadRequest("the JSON body is nested too deeply") from e


def pixels_from_json(value: Any, what: str) -> np.ndarray:
    """A JSON image as the model's pixels.

    Args:
      value: 28×28 (or 28×28×1) nested lists of finite numbers in [0, 1] or [0, 255].
      what: where the value was in the request, for the message.

    Returns:
      float32 (28, 28) in [0, 1] (values over 1 are divided by 255).

    Raises:
      BadRequest: not numbers, another shape, NaN or infinite values, or values outside [0, 255].
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise BadRequest(f"{what} must be a 28×28 array of numbers") from e
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
    """Strict base64 → bytes.

    Args:
      text: base64 text (no whitespace, no URL-safe alphabet).
      what: where it was in the request, for the message.

    Returns:
      The decoded bytes.

    Raises:
      BadRequest: not valid base64.
    """
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as e:
        raise BadRequest(f"{what} is not valid base64") from e


def image_bytes(image: str) -> bytes:
    """The bytes of a JSON `image`: a data URL or plain base64.

    Args:
      image: A `data:` URL or a plain base64 string.

    Returns:
      The decoded bytes (not yet checked to be an image).

    Raises:
      BadRequest: not valid base64.
      ImageError: a malformed data URL.
    """
    return decode_data_url(image) if image.startswith("data:") else b64(image, "image")


async def image_from_request(request: Request) -> tuple[bytes | np.ndarray, dict[str, Any]]:
    """The image of an `/api/predict`, `/api/read` or `/api/explain` request, and its JSON object (or {}).

    Args:
      request: a multipart upload (the first file), JSON (`ImageBody`), or the image's bytes as the body.

    Returns:
      (encoded image bytes, or float32 (28, 28) pixels in [0, 1]; the JSON body, for options such as explain's).

    Raises:
      BadRequest: an empty, malformed or incomplete body.
      ImageError: a malformed data URL.
    """
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body:
        raise BadRequest("empty request body: send an image, or JSON with 'image' or 'pixels'")
    if content_type == "multipart/form-data":
        return await _uploaded_file(request, body), {}
    if content_type == "application/json":
        payload = parse_json(body)
        sent = validated(ImageBody, payload)
        if sent.pixels is not None:
            return sent.pixels, payload
        if sent.image is None:
            raise BadRequest(f"'image' must be {ImageBody.model_fields['image'].description}")
        return image_bytes(sent.image), payload
    return body, {}  # raw image bytes, any content type


async def _uploaded_file(request: Request, body: bytes) -> bytes:
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def once():
        yield body

    try:
        form = await MultiPartParser(request.headers, once()).parse()
    except MultiPartException as e:
        raise BadRequest(f"malformed multipart body ({e.message})") from e
    files = [v for v in form.values() if isinstance(v, UploadFile)]
    if not files:
        raise BadRequest("multipart body has no file field")
    return await files[0].read()

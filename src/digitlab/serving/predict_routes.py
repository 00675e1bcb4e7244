"""`POST /api/predict` (one digit) and `POST /api/read` (a whole number): the page's answers."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from digitlab.data.preprocess import Processed, from_mnist_pixels
from digitlab.inference.read import read_number
from digitlab.inference.verdict import Answer, answer_all, needs_reading
from digitlab.serving.answers import DigitAnswer, ReadingAnswer
from digitlab.serving.requests import IMAGE_BODIES, ImageBody, image_from_request, json_body
from digitlab.serving.state import Served, ServedModel

router = APIRouter(tags=["predict"])
IMAGE_REQUEST = json_body(ImageBody, **IMAGE_BODIES)  # both routes take the same image bodies


async def processed_image(request: Request, served: ServedModel) -> tuple[Processed, dict[str, Any]]:
    """The request's image as MNIST's 28×28, and its JSON object (or {}).

    Args:
      request: an image request (see `inputs.image_from_request`).
      served: the served model, for its preprocessing.

    Returns:
      (the processed image, the JSON body).

    Raises:
      BadRequest: a malformed body.
      ImageError: an image that cannot be decoded (`ImageTooLarge` over the pixel limit).
    """
    image, payload = await image_from_request(request)
    if isinstance(image, bytes):
        return await served.preprocess(image), payload
    return from_mnist_pixels(image), payload


@router.post(
    "/api/predict", summary="Predict the digit in one image", response_model=DigitAnswer, openapi_extra=IMAGE_REQUEST
)
async def predict(request: Request, served: Served) -> JSONResponse:
    """Predict the digit in one image.

    Send an image as a multipart upload, as the raw body, or JSON `{"image": "data:image/png;base64,..."}`
    or `{"pixels": [[...28 numbers...], ...28 rows]}`. Answers the label, 10 calibrated probabilities, the
    top 3, whether no digit was found, and the 28×28 the model saw (PNG data URL).
    """
    start = time.perf_counter()
    processed, _ = await processed_image(request, served)
    answer = Answer.blank_of(processed) if processed.blank else await _answer(processed, served)
    return _timed({"processed": processed.to_data_url(), **answer.to_json()}, start)


async def _answer(processed: Processed, served: ServedModel) -> Answer:
    logits, net = await served.forward(processed.pixels[None])
    if needs_reading(processed):  # several marks or a wide one: read in a thread, the model thread helps
        return (await run_in_threadpool(answer_all, [processed], logits, net, served.reader))[0]
    return answer_all([processed], logits, net, served.reader)[0]


@router.post(
    "/api/read",
    summary="Read a whole number: one line of digits",
    response_model=ReadingAnswer,
    openapi_extra=IMAGE_REQUEST,
)
async def read(request: Request, served: Served) -> JSONResponse:
    """Read a whole number.

    The same image bodies as `/api/predict`. Answers `text` (e.g. "42"), `digits` (each with `label`,
    `confidence`, 10 `probabilities`, `box` [x0, y0, x1, y1] in the image's pixels and its `processed`
    28×28) and an overall `confidence`; `blank` with a `reason` when there is no ink. One line of digits:
    no decimal points, signs or separators.
    """
    start = time.perf_counter()
    image, _ = await image_from_request(request)
    reading = await run_in_threadpool(read_number, image, served.reader, max_pixels=served.config.max_pixels)
    body = reading.to_json()
    for digit, out in zip(reading.digits, body["digits"], strict=True):
        out["processed"] = digit.processed.to_data_url()
    return _timed(body, start)


def _timed(body: dict[str, Any], start: float) -> JSONResponse:
    """The answer with `timing_ms` since `start` (perf_counter seconds), as plain JSON types (no generic encoder)."""
    return JSONResponse({**body, "timing_ms": round((time.perf_counter() - start) * 1000, 2)})

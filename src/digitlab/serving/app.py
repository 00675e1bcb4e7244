"""The draw-a-digit page and its REST API (FastAPI): routes, limits and error handling.

The model runs in a single background thread fed by a queue (`batching.py`): requests that arrive together
are predicted in one batch, so concurrent clients share model calls and the event loop never waits on
TensorFlow. Canvas-sized images are decoded and preprocessed on the event loop (cheaper than handing them to a
thread under the GIL), larger ones in a thread. Every bad request gets a JSON error with a 4xx status that
says what was wrong; file-system paths never appear in responses.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitlab.data.decode import image_size
from digitlab.data.preprocess import Processed, from_mnist_pixels, to_mnist_28x28
from digitlab.errors import ConfigError, ImageError
from digitlab.inference.predictor import Predictor, top_k_of
from digitlab.inference.read import read_number
from digitlab.inference.verdict import judge, needs_reading
from digitlab.models.calibration import probabilities
from digitlab.serving.batching import BatchPredictor
from digitlab.serving.explain_routes import register as register_explain
from digitlab.serving.feedback import store_feedback
from digitlab.serving.inputs import (
    BODY_SECONDS,
    FEEDBACK_REQUEST,
    BadRequest,
    image_bytes,
    image_request,
    parse_json,
    pixels_from_json,
    read_body,
)
from digitlab.serving.tf_serving import TFServingBackend
from digitlab.serving.tf_serving import router as tf_serving_router

STATIC = Path(__file__).parent / "static"
WEB_STATIC = Path(__file__).parents[1] / "web" / "static"  # package data of digitlab.web (no code imported)
MAX_BODY_BYTES = 5 * 1024 * 1024  # 5 MiB: a canvas PNG is ~10 KB, a phone photo ~3 MB
SERVE_PIXELS = 16_000_000  # decoded-pixel limit per image for the server (a 16 MP photo)
INLINE_PIXELS = 640 * 640  # images up to this size are preprocessed on the event loop (see create_app)


@dataclass
class ServeConfig:
    model: str  # run directory or .keras file
    max_body_bytes: int = MAX_BODY_BYTES
    body_seconds: float = BODY_SECONDS  # a body still arriving after this is refused with 408
    max_pixels: int = SERVE_PIXELS
    feedback_dir: str | None = None  # default: RUN/feedback, or ./feedback for a bare model file
    cors_origins: tuple[str, ...] = ()  # no CORS unless configured
    max_batch: int = 64
    runtime: str = "auto"  # auto | keras | onnx | litert (see digitlab.inference.runtimes)


@dataclass
class BatchedModel:
    """The model as the reader sees it (`read.read_number`), its logits through the micro-batching model thread;
    for code in a worker thread, which waits for its batch."""

    batcher: BatchPredictor
    temperature: float
    refusal_score: Any

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        return self.batcher.submit(np.asarray(pixels, np.float32)).result()

    def refusal(self):
        return self.refusal_score


def _contract_info(loaded) -> dict[str, Any] | None:
    """What digitlab assumed about an imported model (None for a model digitlab trained)."""
    c = loaded.contract
    if c is None:
        return None
    return {
        "format": c.format,
        "input_layout": c.layout,
        "input_scale": c.scale,
        "inverted": c.invert,
        "input_dtype": c.dtype,
        "fixed_batch": c.batch,
        "outputs": c.outputs,
        "assumed": c.describe(),
        "calibrated": loaded.temperature != 1.0,
    }


def create_app(config: ServeConfig) -> FastAPI:
    """Build the app; the model loads here, so a bad model fails before the server starts."""
    if not config.body_seconds > 0:
        raise ConfigError(f"--body-timeout must be positive, got {config.body_seconds}")
    predictor = Predictor.load(config.model, config.runtime)
    loaded = predictor.loaded
    refusal = predictor.refusal()  # fitted now, on first use, rather than during someone's first request
    refusal.score(np.zeros((1, 28, 28), np.float32), np.zeros((1, 10), np.float32))  # builds the digit space
    batcher = BatchPredictor(predictor, config.max_batch)
    metrics: dict[str, Any] = {}
    if loaded.run_dir is not None:
        for name in ("report/metrics.json", "metrics.json"):
            path = loaded.run_dir / name
            if path.is_file():
                data = json.loads(path.read_text())
                metrics = {"test_accuracy": data.get("accuracy") or (data.get("test") or {}).get("accuracy")}
                break
    feedback_dir = Path(config.feedback_dir or ((loaded.run_dir / "feedback") if loaded.run_dir else Path("feedback")))
    model_info = {
        "name": loaded.name,
        "version": 1,
        "runtime": predictor.runtime.name,
        "temperature": loaded.temperature,
        "metrics": metrics,
        "input": {
            "image": "any PNG/JPEG/GIF/BMP/WebP; preprocessed like MNIST (ink found, cropped, 20 px box, centred)",
            "pixels": "28×28 numbers in [0, 1] or [0, 255], white digit on black (MNIST convention)",
            "max_body_bytes": config.max_body_bytes,
            "max_pixels": config.max_pixels,
        },
        "output": {"label": "0-9", "probabilities": "10 calibrated probabilities"},
        "contract": _contract_info(loaded),
    }

    app = FastAPI(
        title="digitlab",
        description="Handwritten digit recognition: the draw-a-digit page and its API.",
        version="1",
    )
    app.state.runtime = predictor.runtime.name
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"])

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, e: BadRequest):
        headers = {"Retry-After": "1"} if e.status == 429 else None
        if e.status in (408, 413):  # the rest of that body is not read: the connection cannot be reused
            headers = {"Connection": "close"}
        return JSONResponse({"error": str(e)}, status_code=e.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"invalid request: {where or 'body'}: {first.get('msg', 'invalid')}"}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, e: Exception):  # a bug: say so without leaking internals
        return JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)

    def preprocess(data: bytes) -> Processed:
        try:
            return to_mnist_28x28(data, max_pixels=config.max_pixels)
        except ImageError as e:
            status = 413 if "over the limit" in str(e) else 400
            raise BadRequest(f"image: {e}", status) from None

    # Where preprocessing runs. A canvas-sized image takes ~1-2 ms of small NumPy/OpenCV calls, each of which
    # releases and retakes the GIL: done in a thread pool, every one of those becomes a GIL handoff with the
    # event loop (measured: ~25% more CPU per request, much of it in the kernel). So the event loop preprocesses
    # such images itself, and only large ones (a phone photo: tens of ms) go to a thread, where they cannot
    # stall the other requests. The model always runs in its own thread (BatchPredictor).
    preprocess_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-preprocess")

    async def preprocess_async(data: bytes, for_model: bool = True) -> Processed:
        pending = 1 if for_model else 0
        batcher.pending += pending  # lets the model thread wait a moment to batch this request with others
        try:
            size = image_size(data)
            if size is not None and size[0] * size[1] <= INLINE_PIXELS:
                return preprocess(data)
            return await asyncio.get_running_loop().run_in_executor(preprocess_pool, preprocess, data)
        finally:
            batcher.pending -= pending

    async def image_from_request(request: Request) -> bytes | np.ndarray:
        """The image of an /api/predict, /api/read or /api/explain body: encoded bytes, or a 28×28 pixel array."""
        body = await read_body(request, config.max_body_bytes, config.body_seconds)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not body:
            raise BadRequest("empty request body: send an image, or JSON with 'image' or 'pixels'")
        if content_type == "multipart/form-data":
            from starlette.datastructures import UploadFile
            from starlette.formparsers import MultiPartException, MultiPartParser

            async def once():
                yield body

            try:
                form = await MultiPartParser(request.headers, once()).parse()
            except MultiPartException as e:
                raise BadRequest(f"malformed multipart body ({e.message})") from None
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if not files:
                raise BadRequest("multipart body has no file field")
            return await files[0].read()
        if content_type == "application/json":
            payload = parse_json(body)
            request.state.payload = payload if isinstance(payload, dict) else None  # /api/explain's options
            if not isinstance(payload, dict) or not ({"image", "pixels"} & payload.keys()):
                raise BadRequest("JSON body must be an object with 'image' (a data URL) or 'pixels' (28×28)")
            if "pixels" in payload:
                return pixels_from_json(payload["pixels"], "pixels")
            image = payload["image"]
            if not isinstance(image, str):
                raise BadRequest("'image' must be a string: a data:image/...;base64,... URL or base64")
            return image_bytes(image)
        return body  # raw image bytes, any content type

    async def images_from_request(request: Request) -> tuple[list[Processed], bool]:
        """Processed inputs of /api/predict; the flag says whether they came as raw pixels."""
        image = await image_from_request(request)
        if isinstance(image, np.ndarray):
            return [from_mnist_pixels(image)], True
        return [await preprocess_async(image)], False

    batched = BatchedModel(batcher, loaded.temperature, refusal)  # the reader's model, through the model thread

    async def predict(processed: list[Processed]) -> np.ndarray:
        pixels = np.stack([p.pixels for p in processed])
        logits = await asyncio.wrap_future(batcher.submit(pixels))
        return probabilities(logits, loaded.temperature)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/web", StaticFiles(directory=WEB_STATIC), name="web")  # the page code shared with `export --format web`

    @app.post("/api/predict", summary="Predict the digit in one image", openapi_extra=image_request())
    async def api_predict(request: Request):
        """Send an image as a multipart upload, as the raw body, or JSON `{"image": "data:image/png;base64,..."}`
        or `{"pixels": [[...28 numbers...], ...28 rows]}`. Answers the label, 10 calibrated probabilities, the
        top 3, whether no digit was found, and the 28×28 the model saw (PNG data URL)."""
        start = time.perf_counter()
        (processed,), _ = await images_from_request(request)
        body: dict[str, Any] = {"blank": processed.blank, "processed": processed.to_data_url()}
        if processed.blank:
            body.update(label=None, verdict="blank", probabilities=None, top_k=[], reason=processed.reason)
        else:
            logits = await asyncio.wrap_future(batcher.submit(processed.pixels[None]))
            probs = probabilities(logits, loaded.temperature)[0]
            not_digit = bool(refusal.refuses(processed.pixels[None], logits)[0])
            if needs_reading(processed):  # several marks or a wide one: read in a thread, the model thread helps
                verdict, reason = await run_in_threadpool(judge, processed, not_digit, batched)
            else:
                verdict, reason = judge(processed, not_digit)
            body.update(
                label=int(probs.argmax()) if verdict == "digit" else None,
                verdict=verdict,
                reason=reason,
                probabilities=[round(float(p), 6) for p in probs],
                top_k=top_k_of(probs, 3),
            )
        body["timing_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return JSONResponse(body)  # already plain JSON types: skip FastAPI's generic encoder

    @app.post("/api/read", summary="Read a whole number: one line of digits", openapi_extra=image_request())
    async def api_read(request: Request):
        """The same image bodies as `/api/predict`. Answers `text` (e.g. "42"), `digits` (each with `label`,
        `confidence`, 10 `probabilities`, `box` [x0, y0, x1, y1] in the image's pixels and its `processed`
        28×28) and an overall `confidence`; `blank` with a `reason` when there is no ink. One line of digits:
        no decimal points, signs or separators."""
        start = time.perf_counter()
        image = await image_from_request(request)

        def read():
            try:
                return read_number(image, batched, max_pixels=config.max_pixels)
            except ImageError as e:
                raise BadRequest(f"image: {e}", 413 if "over the limit" in str(e) else 400) from None

        reading = await run_in_threadpool(read)
        body = reading.to_json()
        for digit, out in zip(reading.digits, body["digits"], strict=True):
            out["processed"] = digit.processed.to_data_url()
        body["timing_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return JSONResponse(body)

    @app.post("/api/feedback", summary="Store a correction for later fine-tuning", openapi_extra=FEEDBACK_REQUEST)
    async def feedback(request: Request):
        """JSON `{"image": data URL of the drawing, "label": the true digit, "predicted": what the model said}`;
        stored as a PNG plus one line in `index.jsonl` of the feedback folder."""
        payload = parse_json(await read_body(request, config.max_body_bytes, config.body_seconds))
        if not isinstance(payload, dict):
            raise BadRequest("body must be a JSON object with 'image' and 'label'")
        label = payload.get("label")
        if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 9:
            raise BadRequest("'label' must be an integer 0-9")
        predicted = payload.get("predicted")
        if predicted is not None and (
            not isinstance(predicted, int) or isinstance(predicted, bool) or not 0 <= predicted <= 9
        ):
            raise BadRequest("'predicted' must be an integer 0-9 or null")
        image = payload.get("image")
        if not isinstance(image, str):
            raise BadRequest("'image' must be a data:image/png;base64,... URL")
        data = image_bytes(image)  # a base64 decode: cheaper than a thread handoff, as in /api/predict
        processed = await preprocess_async(data, for_model=False)  # validates the image; stored with it
        try:
            record = await run_in_threadpool(store_feedback, feedback_dir, data, processed, label, predicted)
        except OSError as e:  # a full or read-only feedback folder: the client is told, nothing is half-written
            raise BadRequest(f"the correction could not be stored ({e.strerror or 'write failed'})", 507) from None
        return {"stored": True, "id": record["id"]}

    @app.get("/api/model", summary="Model name, metrics and input contract")
    async def model():
        return model_info

    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the model answers")
    async def readyz():
        logits = await asyncio.wrap_future(batcher.submit(np.zeros((1, 28, 28), np.float32)))
        if logits.shape != (1, 10) or not np.all(np.isfinite(logits)):
            return JSONResponse({"status": "not ready"}, status_code=503)
        return {"status": "ready", "model": loaded.name, "runtime": predictor.runtime.name}

    async def model_logits(pixels: np.ndarray) -> np.ndarray:
        return await asyncio.wrap_future(batcher.submit(pixels))

    async def body_of(request: Request) -> bytes:
        return await read_body(request, config.max_body_bytes, config.body_seconds)

    app.state.tf_serving = TFServingBackend(model_logits, preprocess_async, body_of, loaded.temperature)
    app.include_router(tf_serving_router)
    register_explain(app, config.model, images_from_request)
    return app

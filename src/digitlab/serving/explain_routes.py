"""`POST /api/explain` and `GET /api/explain/map`: the page's "Inside the network" panel.

Explanations need the Keras model and TensorFlow (gradients), which the prediction path does not: the
explainer is loaded on the first explain request, in its own thread, so the server starts as fast as ever
and predictions never wait for it. Explanations run one at a time on that thread, with at most
`MAX_WAITING` queued; beyond that the answer is a 429 with a message and `Retry-After`, never a queue that
grows without bound or a prediction starved of CPU.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from digitlab.errors import ConfigError, DigitlabError
from digitlab.explain.options import BASELINES, METHODS
from digitlab.serving.inputs import EXPLAIN_OPTIONS, BadRequest, image_request
from digitlab.tf_logging import import_tensorflow

MAX_WAITING = 4


class ExplainService:
    def __init__(self, model: str):
        self.model = model
        self.waiting = 0  # touched by the event loop thread only
        self._explainer = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-explain")

    def explainer(self):
        with self._lock:
            if self._explainer is None:
                import_tensorflow()  # quietly, before the engine imports it
                from digitlab.explain.explanation import ModelExplainer

                self._explainer = ModelExplainer.load(self.model)
            return self._explainer

    async def run(self, fn, *args) -> Any:
        if self.waiting >= MAX_WAITING:
            raise BadRequest(f"the explainer is busy ({MAX_WAITING} explanations queued); try again shortly", 429)
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except ConfigError as e:
            raise BadRequest(str(e)) from None
        except DigitlabError as e:
            raise BadRequest(f"cannot explain with this model: {e}", 422) from None
        finally:
            self.waiting -= 1


def explain_params(payload: dict[str, Any], query) -> dict[str, Any]:
    """method, target, contrast, steps, baseline from the JSON body (or the query string), validated."""

    def get(name):
        return payload[name] if name in payload else query.get(name)

    method = get("method") or "ig"
    if method not in (*METHODS, "none"):
        raise BadRequest(f"'method' must be one of {', '.join(METHODS)} or none")
    out: dict[str, Any] = {"method": method}
    for name in ("target", "contrast"):
        value = get(name)
        if value in (None, "", "null"):
            out[name] = None
            continue
        try:
            number = int(value) if not isinstance(value, bool) and float(value) == int(value) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not 0 <= number <= 9:
            raise BadRequest(f"'{name}' must be a digit 0-9 or null")
        out[name] = number
    steps = get("steps")
    try:
        out["steps"] = 32 if steps in (None, "") else int(steps)
    except (TypeError, ValueError):
        raise BadRequest("'steps' must be an integer between 4 and 256") from None
    if isinstance(steps, bool) or not 4 <= out["steps"] <= 256:
        raise BadRequest("'steps' must be an integer between 4 and 256")
    baseline = get("baseline") or "blur"
    if baseline not in BASELINES:
        raise BadRequest(f"'baseline' must be one of {', '.join(BASELINES)}")
    out["baseline"] = baseline
    return out


def register(app: FastAPI, model: str, images_from_request) -> ExplainService:
    service = ExplainService(model)

    @app.post(
        "/api/explain",
        summary="How the network reaches its answer for one image",
        openapi_extra=image_request(EXPLAIN_OPTIONS),
    )
    async def api_explain(request: Request):
        """Same inputs and limits as `/api/predict`, plus `method` (ig, smoothgrad, layercam, gradcam, occlusion or
        none), `target` and `contrast` (digits; default: the prediction, no contrast), `steps` (IG, 4-256, default 32)
        and `baseline` (black, blur or grey) in the JSON body or the query string. Answers the label, logits,
        probabilities, every layer's activations as PNG data URLs, the attribution (28×28 values and baseline in
        the model's input space), the processed 28×28, the drawing's place on the training digits' map with its
        5 nearest training digits, and timings."""
        query = request.query_params
        explain_params({}, query)  # a bad query parameter fails before the body is read
        (processed,), _ = await images_from_request(request)
        params = explain_params(getattr(request.state, "payload", None) or {}, query)
        body: dict[str, Any] = {"blank": processed.blank, "processed": processed.to_data_url()}
        if processed.blank:
            body.update(label=None, reason=processed.reason)
            return JSONResponse(body)
        result = await service.run(lambda: service.explainer().explain(processed.pixels, **params))
        body.update(result)
        return JSONResponse(body)

    @app.get("/api/explain/map", summary="The training digits' map (penultimate layer, t-SNE) for the panel")
    async def api_explain_map():
        return JSONResponse(await service.run(lambda: service.explainer().map_points()))

    return service

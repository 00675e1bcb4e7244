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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from digitlab.errors import ConfigError, DigitlabError
from digitlab.serving.answers import ExplanationAnswer
from digitlab.serving.predict_routes import processed_image
from digitlab.serving.requests import IMAGE_BODIES, BadRequest, ExplainOptions, ExplainRequest, json_body, validated
from digitlab.serving.state import Served
from digitlab.tf_logging import import_tensorflow

MAX_WAITING = 4


class ExplainService:
    """The explainer, loaded on first use, and the one thread it runs on (kept in `app.state.explain`).

    Args:
      model: the served model's path (a run directory or a model file).
    """

    def __init__(self, model: str):
        self.model = model
        self.waiting = 0  # touched by the event loop thread only
        self._explainer = None
        self._lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digitlab-explain")

    def explainer(self) -> Any:
        """The `ModelExplainer`, loaded (with TensorFlow) on the first call; call it on the explain thread."""
        with self._lock:
            if self._explainer is None:
                import_tensorflow()  # quietly, before the engine imports it
                from digitlab.explain.explanation import ModelExplainer

                self._explainer = ModelExplainer.load(self.model)
            return self._explainer

    async def run(self, fn: Callable[[], Any]) -> Any:
        """`fn()` on the explain thread, or a refusal when too many are waiting.

        Args:
          fn: the work, which may call `explainer()`.

        Returns:
          What `fn` returns.

        Raises:
          BadRequest: 429 when `MAX_WAITING` explanations are queued; 400 for options the explainer refuses;
            422 when this model cannot be explained.
        """
        if self.waiting >= MAX_WAITING:
            raise BadRequest(f"the explainer is busy ({MAX_WAITING} explanations queued); try again shortly", 429)
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, fn)
        except ConfigError as e:
            raise BadRequest(str(e)) from e
        except DigitlabError as e:
            raise BadRequest(f"cannot explain with this model: {e}", 422) from e
        finally:
            self.waiting -= 1


def explain_service(request: Request) -> ExplainService:
    """FastAPI dependency: the app's explain service (`app.state.explain`)."""
    return request.app.state.explain


Explain = Annotated[ExplainService, Depends(explain_service)]

router = APIRouter(tags=["explain"])


def _query_options(request: Request) -> dict[str, Any]:
    """The query string's options; digits as numbers, as JSON would send them."""
    return {
        k: int(v) if v.isdigit() else v for k, v in request.query_params.items() if k in ExplainOptions.model_fields
    }


@router.post(
    "/api/explain",
    summary="How the network reaches its answer for one image",
    response_model=ExplanationAnswer,
    openapi_extra=json_body(ExplainRequest, **IMAGE_BODIES),
)
async def explain(request: Request, served: Served, service: Explain) -> JSONResponse:
    """Explain the network's answer for one image.

    Same inputs and limits as `/api/predict`, plus `method` (ig, smoothgrad, layercam, gradcam, occlusion or none),
    `target` and `contrast` (digits; default: the prediction, no contrast), `steps` (IG, 4-256, default 32)
    and `baseline` (black, blur or grey) in the JSON body or the query string. Answers the label, logits,
    probabilities, every layer's activations as PNG data URLs, the attribution (28×28 values and baseline in
    the model's input space), the processed 28×28, the drawing's place on the training digits' map with its
    5 nearest training digits, and timings.
    """
    query = _query_options(request)
    validated(ExplainOptions, query)  # a bad query parameter fails before the body is read
    processed, payload = await processed_image(request, served)
    sent = {k: v for k, v in payload.items() if k in ExplainOptions.model_fields}
    options = validated(ExplainOptions, {**query, **sent}).model_dump()
    body: dict[str, Any] = {"blank": processed.blank, "processed": processed.to_data_url()}
    if processed.blank:
        body.update(label=None, reason=processed.reason)
        return JSONResponse(body)
    body.update(await service.run(lambda: service.explainer().explain(processed.pixels, **options)))
    return JSONResponse(body)


@router.get("/api/explain/map", summary="The training digits' map (penultimate layer, t-SNE) for the panel")
async def explain_map(service: Explain) -> JSONResponse:
    """`x`, `y` and `label` of a fixed subsample of the training digits, embedded by t-SNE of the penultimate layer."""
    return JSONResponse(await service.run(lambda: service.explainer().map_points()))

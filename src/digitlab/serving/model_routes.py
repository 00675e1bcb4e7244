"""`GET /api/model` (name, metrics, input contract), `/healthz` (liveness) and `/readyz` (the model answers)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digitlab.serving.answers import Health, InputContract, ModelInfo, Ready
from digitlab.serving.state import Served, ServedModel

if TYPE_CHECKING:
    from digitlab.models.saved import LoadedModel

router = APIRouter(tags=["model"])


def model_info(served: ServedModel) -> ModelInfo:
    """What `/api/model` answers, built once at start-up (kept in `app.state.model_info`).

    Args:
      served: the served model.

    Returns:
      The model's name, runtime, temperature, test accuracy (if its run has one) and input contract.
    """
    loaded = served.predictor.loaded
    return ModelInfo(
        name=loaded.name,
        version=1,
        runtime=served.predictor.runtime.name,
        temperature=loaded.temperature,
        metrics=_metrics(loaded),
        input=InputContract(
            image="any PNG/JPEG/GIF/BMP/WebP; preprocessed like MNIST (ink found, cropped, 20 px box, centred)",
            pixels="28×28 numbers in [0, 1] or [0, 255], white digit on black (MNIST convention)",
            max_body_bytes=served.config.max_body_bytes,
            max_pixels=served.config.max_pixels,
        ),
        output={"label": "0-9", "probabilities": "10 calibrated probabilities"},
        contract=_contract(loaded),
    )


def _metrics(loaded: LoadedModel) -> dict[str, float | None]:
    if loaded.run_dir is None:
        return {}
    for name in ("report/metrics.json", "metrics.json"):
        path = loaded.run_dir / name
        if path.is_file():
            data = json.loads(path.read_text())
            return {"test_accuracy": data.get("accuracy") or (data.get("test") or {}).get("accuracy")}
    return {}


def _contract(loaded: LoadedModel) -> dict[str, Any] | None:
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


@router.get("/api/model", summary="Model name, metrics and input contract", response_model=ModelInfo)
async def model(request: Request) -> ModelInfo:
    """The model's name, runtime, calibration temperature, test accuracy and what it takes (no file-system paths)."""
    return request.app.state.model_info


@router.get("/healthz", summary="Liveness", response_model=Health)
async def healthz() -> Health:
    """Always `{"status": "ok"}` while the process answers."""
    return Health(status="ok")


@router.get("/readyz", summary="Readiness: the model answers", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(served: Served) -> Ready | JSONResponse:
    """Whether the model answers.

    `ready` with the model's name and runtime when a blank image goes through the model thread and gives
    finite logits; a 503 `not ready` otherwise.
    """
    logits = await served.logits(np.zeros((1, 28, 28), np.float32))
    if logits.shape != (1, 10) or not np.all(np.isfinite(logits)):
        return JSONResponse({"status": "not ready"}, status_code=503)
    return Ready(status="ready", model=served.predictor.loaded.name, runtime=served.predictor.runtime.name)

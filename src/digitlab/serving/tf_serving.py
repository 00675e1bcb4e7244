"""TensorFlow Serving's REST API, as TF Serving speaks it for the SavedModel `digitlab export` writes.

A client written against `tensorflow_model_server` serving `export/savedmodel/digits` works unchanged against
`digitlab serve`, and the other way round: the status, metadata and predict routes (each also under
`/versions/1`), the row (`instances`) and columnar (`inputs`) forms, named (`{"image": ...}`) or not, and TF
Serving's answers: `predictions` for rows, `outputs` for columns. Every signature has one output, so those are
plain lists (TF Serving gives a dict per row only when a signature has several). Extensions, which real TF
Serving does not accept: an image as `{"b64": ...}` (any PNG/JPEG/..., preprocessed like MNIST) and pixels in
[0, 255] as well as [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from digitlab.models.export import SERVING_NAME, SERVING_VERSION, signature_defs, signatures_for
from digitlab.serving.requests import BadRequest, TFServingRequest, b64, json_body, parse_json, pixels_from_json
from digitlab.serving.state import Served, ServedModel

INPUT = "image"  # every signature's one input
MAX_INSTANCES = 1024  # images per request: what the 16 MiB body limit holds (config.MAX_PREDICT_BODY_BYTES)

router = APIRouter(tags=["TensorFlow Serving"])


def _check_model(model: str, version: str | None) -> None:
    """TF Serving's 404 for a model or version it does not serve."""
    if model != SERVING_NAME or version not in (None, str(SERVING_VERSION)):
        wanted = f"Latest({model})" if version is None else f"Specific({model}, {version})"
        raise BadRequest(
            f"Servable not found for request: {wanted} (this server serves {SERVING_NAME}, version 1)", 404
        )


@router.get("/v1/models/{model}", summary="TF Serving: model status")
@router.get("/v1/models/{model}/versions/{version}", summary="TF Serving: model status of one version")
async def status(model: str, version: str | None = None) -> dict[str, Any]:
    """TF Serving's `model_version_status`: version 1, AVAILABLE.

    Args:
      model: The model name in the path; must be the served name.
      version: The version in the path, if any; must be 1.

    Returns:
      The status object TF Serving answers.

    Raises:
      BadRequest: 404 for another model name or version.
    """
    _check_model(model, version)
    ok = {"error_code": "OK", "error_message": ""}
    return {"model_version_status": [{"version": str(SERVING_VERSION), "state": "AVAILABLE", "status": ok}]}


@router.get("/v1/models/{model}/metadata", summary="TF Serving: the signatures")
@router.get("/v1/models/{model}/versions/{version}/metadata", summary="TF Serving: the signatures of one version")
async def metadata(served: Served, model: str, version: str | None = None) -> dict[str, Any]:
    """TF Serving's metadata: the signature defs the exported SavedModel has.

    `serving_default` (probabilities), `logits`, and for a model with features `features`.

    Args:
      served: The served model (a dependency).
      model: The model name in the path; must be the served name.
      version: The version in the path, if any; must be 1.

    Returns:
      The metadata object TF Serving answers (`model_spec` and the signature defs).

    Raises:
      BadRequest: 404 for another model name or version.
    """
    _check_model(model, version)
    return {
        "model_spec": {"name": SERVING_NAME, "signature_name": "", "version": str(SERVING_VERSION)},
        "metadata": {"signature_def": {"signature_def": signature_defs(served.predictor.feature_width)}},
    }


@router.post("/v1/models/{model}:predict", summary="TF Serving: predict", openapi_extra=json_body(TFServingRequest))
@router.post(
    "/v1/models/{model}/versions/{version}:predict",
    summary="TF Serving: predict with one version",
    openapi_extra=json_body(TFServingRequest),
)
async def predict(request: Request, served: Served, model: str, version: str | None = None) -> JSONResponse:
    """TF Serving's predict.

    Row format `{"instances": [...]}` → `{"predictions": [...]}`; columnar `{"inputs": ...}` →
    `{"outputs": ...}`. Each image is 28×28 (or 28×28×1) numbers in [0, 1] (or [0, 255]), white on black like
    MNIST, or `{"b64": image bytes}`; named (`{"image": ...}`) or not. `signature_name`: `serving_default`
    (probabilities, the default), `logits`, or for a model with features `features`.

    Args:
      request: The HTTP request; its body is read here (the route declares its schema).
      served: The served model (a dependency).
      model: The model name in the path; must be the served name.
      version: The version in the path, if any; must be 1.

    Returns:
      JSON with (N, 10) float32 `predictions` (row format) or `outputs` (columnar); (N, D) for `features`.

    Raises:
      BadRequest: 404 for another model name or version; 400 for a malformed body; 413 over `MAX_INSTANCES` images.
    """
    _check_model(model, version)
    signatures = signatures_for(served.predictor.feature_width is not None)
    signature, columnar, items = parse_predict(parse_json(await request.body()), signatures)
    pixels = [await _pixels(served, item, where) for item, where in items]
    logits, features = await served.forward(np.stack(pixels))
    values = {"logits": logits, "features": features}.get(signature)
    values = served.probabilities(logits) if values is None else values
    return JSONResponse({"outputs" if columnar else "predictions": values.astype(np.float32).tolist()})


def parse_predict(payload: Any, signatures: dict[str, str] | None = None) -> tuple[str, bool, list[tuple[Any, str]]]:
    """A TF Serving predict body, taken apart.

    Args:
      payload: the parsed JSON body.
      signatures: the served model's signatures (default: those of a model without features).

    Returns:
      (signature name, whether columnar, [(one image's value, where it was in the request)]).

    Raises:
      BadRequest: what is wrong and what is known, in TF Serving's words where it has them (413 over
        `MAX_INSTANCES` images).
    """
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object with 'instances' (row format) or 'inputs' (columnar format)")
    signatures = signatures or signatures_for(False)
    signature = payload.get("signature_name", "serving_default")
    if signature not in signatures:
        raise BadRequest(
            f"Serving signature name: {json_str(signature)} not found in signature def; "
            f"known signatures: {', '.join(signatures)}"
        )
    if ("instances" in payload) == ("inputs" in payload):
        which = "both" if "inputs" in payload else "neither"
        raise BadRequest(f"send 'instances' (row format) or 'inputs' (columnar format), not {which}")
    if "instances" in payload:
        rows = payload["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequest("'instances' must be a non-empty list")
        _check_count(len(rows))
        return (
            signature,
            False,
            [(_unnamed(row, f"instances[{i}]", signature), f"instances[{i}]") for i, row in enumerate(rows)],
        )
    where = "inputs"
    value = payload["inputs"]
    if _is_named(value):
        value, where = _unnamed(value, where, signature), f"inputs[{INPUT!r}]"
    if _is_b64(value):
        return signature, True, [(value, where)]  # one image (extension)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{where} must be a non-empty batch: a list of 28×28 images")
    _check_count(len(value))
    return signature, True, [(image, f"{where}[{i}]") for i, image in enumerate(value)]


def json_str(value: Any) -> str:
    """`value` as TF Serving quotes it in a message: strings in double quotes, others as Python writes them."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _unnamed(value: Any, where: str, signature: str) -> Any:
    """The value of the signature's one input, from `{"image": value}` or an unnamed value."""
    if not _is_named(value):
        return value
    if set(value) != {INPUT}:
        unknown = ", ".join(sorted(map(str, set(value) - {INPUT}))) or "none"
        raise BadRequest(f"{where}: input name(s) {unknown} not in signature {signature}; its one input is '{INPUT}'")
    return value[INPUT]


def _check_count(count: int) -> None:
    if count > MAX_INSTANCES:
        raise BadRequest(f"at most {MAX_INSTANCES} instances per request, got {count}", 413)


async def _pixels(served: ServedModel, value: Any, where: str) -> np.ndarray:
    if isinstance(value, dict):
        if not _is_b64(value) or not isinstance(value["b64"], str):
            raise BadRequest(f"{where} must be a 28×28 array or {{'b64': '...'}}")
        return (await served.preprocess(b64(value["b64"], f"{where}.b64"))).pixels
    return pixels_from_json(value, where)

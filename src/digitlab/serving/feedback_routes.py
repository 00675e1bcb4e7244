"""`POST /api/feedback`: the page's "Wrong? It was …", stored for `digitlab finetune` (see `feedback.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from digitlab.serving.answers import FeedbackStored
from digitlab.serving.feedback import store_feedback
from digitlab.serving.requests import BadRequest, FeedbackRequest, image_bytes, json_body, parse_json, validated
from digitlab.serving.state import Served

router = APIRouter(tags=["feedback"])


@router.post(
    "/api/feedback",
    summary="Store a correction for later fine-tuning",
    response_model=FeedbackStored,
    openapi_extra=json_body(FeedbackRequest),
)
async def feedback(request: Request, served: Served) -> FeedbackStored:
    """Store one correction.

    JSON `{"image": data URL of the drawing, "label": the true digit, "predicted": what the model said}`;
    stored as a PNG plus one line in `index.jsonl` of the feedback folder. A folder that cannot take it (full,
    read-only) is a 507 and nothing is half-written.
    """
    correction = validated(FeedbackRequest, parse_json(await request.body()))
    data = image_bytes(correction.image)  # a base64 decode: cheaper than a thread handoff, as in /api/predict
    processed = await served.preprocess(data, for_model=False)  # validates the image; stored with it
    try:
        record = await run_in_threadpool(
            store_feedback, served.feedback_dir, data, processed, correction.label, correction.predicted
        )
    except OSError as e:
        raise BadRequest(f"the correction could not be stored ({e.strerror or 'write failed'})", 507) from e
    return FeedbackStored(stored=True, id=record["id"])

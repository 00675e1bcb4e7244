"""The API's answers as Pydantic models: the OpenAPI document's response schemas are generated from them.

The prediction routes build plain JSON themselves and return it as a `JSONResponse` (already plain types: FastAPI's
generic encoder would only cost time), so for those the models document the answer; the others return them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorAnswer(BaseModel):
    """Every 4xx answer (and the 500 of a bug, which names only the exception's type)."""

    error: str = Field(description="what was wrong, in one line")


class TopK(BaseModel):
    """One of the most probable labels."""

    label: int = Field(ge=0, le=9)
    probability: float = Field(ge=0, le=1)


class DigitAnswer(BaseModel):
    """`/api/predict`'s answer for one image."""

    blank: bool = Field(description="no ink was found")
    processed: str = Field(description="the 28×28 the model saw, as a PNG data URL")
    label: int | None = Field(description="the digit 0-9; null unless the verdict is digit")
    verdict: Literal["digit", "blank", "not_a_digit", "several_digits"]
    reason: str = Field(description='why the verdict is not "digit" ("" when it is)')
    probabilities: list[float] | None = Field(description="10 calibrated probabilities; null when blank")
    top_k: list[TopK] = Field(description="the 3 most probable labels, most probable first")
    timing_ms: float = Field(description="time spent on the request in the server, in milliseconds")


class ReadDigitAnswer(BaseModel):
    """One digit of a reading."""

    label: int = Field(ge=0, le=9)
    confidence: float = Field(ge=0, le=1)
    probabilities: list[float] = Field(description="10 calibrated probabilities")
    box: list[int] = Field(description="[x0, y0, x1, y1] in the image's pixels")
    processed: str = Field(description="its 28×28 as the model saw it, as a PNG data URL")


class ReadingAnswer(BaseModel):
    """`/api/read`'s answer: one line of digits."""

    text: str = Field(description='the number, e.g. "42" ("" when blank)')
    digits: list[ReadDigitAnswer]
    confidence: float = Field(ge=0, le=1, description="the chance that every digit is right, if calibrated")
    blank: bool
    reason: str | None = Field(None, description="why nothing was read (only when blank)")
    timing_ms: float


class ExplanationAnswer(BaseModel):
    """`/api/explain`'s answer: the prediction, every layer's activations, the attribution and the map."""

    model_config = ConfigDict(extra="allow")

    blank: bool
    processed: str = Field(description="the 28×28 the model saw, as a PNG data URL")
    label: int | None


class FeedbackStored(BaseModel):
    """A correction was stored."""

    stored: bool
    id: str = Field(description="the correction's id, also its PNG's name in the feedback folder")


class InputContract(BaseModel):
    """What the model takes."""

    image: str
    pixels: str
    max_body_bytes: int
    max_pixels: int


class ModelInfo(BaseModel):
    """`/api/model`: the model's name, metrics and input contract (no file-system paths)."""

    name: str
    version: int
    runtime: str = Field(description="keras, onnx or litert")
    temperature: float = Field(description="the calibration temperature (1.0 when uncalibrated)")
    metrics: dict[str, float | None] = Field(description="test_accuracy in [0, 1], when the run has one")
    input: InputContract
    output: dict[str, str]
    contract: dict[str, Any] | None = Field(
        description="what digitlab assumed about an imported model (layout, scale, dtype, ...); null for its own"
    )


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"]


class Ready(BaseModel):
    """Readiness: the model answers."""

    status: Literal["ready", "not ready"]
    model: str | None = None
    runtime: str | None = None

"""One image, one honest answer: a digit, or "blank", "several digits" or "not a digit".

`answer_all` is the one place an answer is made: every front end (`digitlab predict`, `/api/predict`, the
notebook widget; the static page's JavaScript follows the same rules) runs the model, then hands the images, their
logits and features here and renders the `Answer`s it gets. `judge` turns a preprocessed image and whether the
run's refusal refuses it into a verdict and a reason:

- blank: no ink (preprocessing said so);
- several_digits: the ink forms several separate marks, or one mark much wider than a digit that the reader
  (`read.read_ink`) cuts into digits it is sure of; the reason gives what `read` makes of it;
- not_a_digit: the refusal score (`refusal.Refusal`) says it looks like no digit;
- digit: the label is the model's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digitlab.data.preprocess import Processed
from digitlab.inference.read import AnswerModel, read_ink
from digitlab.models.calibration import probabilities

VERDICTS = ("digit", "blank", "several_digits", "not_a_digit")
# One mark is called several touching digits only when it is wider than this × its height (about 2% of MNIST's
# digits are) and the reader cuts it into digits it is each this sure of: where a page expects one digit, a
# wide 2 or 5 must not be refused. Chosen on drawn validation digits (bench/read_numbers.py --split validation).
TOUCHING_ASPECT = 1.25
TOUCHING_CONFIDENCE = 0.95
NOT_A_DIGIT = "not a digit: it looks like none of the digits the model was trained on"


@dataclass(frozen=True)
class Answer:
    """One image's answer, as every front end shows it.

    Attributes:
        verdict: One of `VERDICTS`.
        reason: Why the verdict is not "digit", one sentence ("" for a digit).
        probabilities: The 10 calibrated probabilities, rounded to 6 places, whenever the model ran (None: blank).
        top_k: The most probable labels, most probable first: [{"label": 0–9, "probability": float}, ...].
    """

    verdict: str
    reason: str = ""
    probabilities: list[float] | None = None
    top_k: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def blank_of(cls, processed: Processed) -> Answer:
        """The answer for an image preprocessing found no ink in (its reason says why)."""
        return cls("blank", processed.reason)

    @property
    def label(self) -> int | None:
        """The digit 0–9, set for the "digit" verdict only (the probabilities are given whenever the model ran)."""
        if self.verdict != "digit" or self.probabilities is None:
            return None
        return int(np.argmax(self.probabilities))

    @property
    def blank(self) -> bool:
        """Whether no ink was found."""
        return self.verdict == "blank"

    def to_json(self) -> dict[str, Any]:
        """{label, verdict, reason, probabilities, top_k, blank}: the fields every front end answers."""
        return {
            "label": self.label,
            "verdict": self.verdict,
            "reason": self.reason,
            "probabilities": self.probabilities,
            "top_k": self.top_k,
            "blank": self.blank,
        }


def answer_all(
    processed: Sequence[Processed],
    logits: np.ndarray,
    net_features: np.ndarray | None,
    model: AnswerModel,
    top_k: int = 3,
) -> list[Answer]:
    """The answers for images with ink, from the model's outputs for them in one batch.

    The refusal scores the whole batch at once (about 5× cheaper per image than one at a time); an image with
    several marks or one wide mark is read (`judge`), which runs the model again: callers on an event loop send
    those (`needs_reading`) to a thread.

    Args:
        processed: N preprocessed images, none blank (`Answer.blank_of` answers those).
        logits: (N, 10) the model's logits for them.
        net_features: (N, D) the network's features for them, or None (the refusal then uses logits and pixels).
        model: What answers (`read.AnswerModel`): its temperature, its refusal, and the model that reads.
        top_k: How many of the most probable labels each answer lists, 1 to 10.

    Returns:
        N answers, in order.
    """
    if not processed:
        return []
    probs = probabilities(np.asarray(logits), model.temperature)
    pixels = np.stack([p.pixels for p in processed])
    refused = model.refusal().refuses(pixels, logits, net_features)
    answers = []
    for image, row, not_digit in zip(processed, probs, refused, strict=True):
        verdict, reason = judge(image, bool(not_digit), model)
        answers.append(Answer(verdict, reason, [round(float(v), 6) for v in row], top_k_of(row, top_k)))
    return answers


def top_k_of(probs: np.ndarray, k: int) -> list[dict[str, float]]:
    """The k most probable labels of one row of probabilities, most probable first.

    Args:
        probs: (10,) probabilities.
        k: How many, 1 to 10.

    Returns:
        [{"label": int 0–9, "probability": float rounded to 6 places}, ...], k entries.
    """
    order = np.argsort(-probs)[:k]
    return [{"label": int(i), "probability": round(float(probs[i]), 6)} for i in order]


def judge(processed: Processed, not_digit: bool, model: AnswerModel | None = None) -> tuple[str, str]:
    """(verdict, reason) for one image; the reason is "" for a digit.

    Args:
      processed: the image's 28×28 with its details (`marks`, `mark_aspect`) and ink.
      not_digit: whether the run's refusal score refuses it (`refusal.Refusal.refuses`; callers score a whole
        batch at once, about 5× cheaper per image than one at a time).
      model: what reads several marks or a wide one (`read.AnswerModel`; None: not tried).

    Returns:
      (verdict, reason): verdict is "digit", "blank", "several_digits" or "not_a_digit"; reason is "" for a digit.
    """
    if processed.blank:
        return "blank", processed.reason
    marks = processed.details.get("marks", 1)
    if marks >= 2:
        text = _read(processed, model)
        return "several_digits", f"several digits: {marks} separate marks{text}; use read for numbers"
    if model is not None and needs_reading(processed):
        reading = read_ink(processed.ink, model, fill=False)  # clear cuts only: a wide 2 is not "22"
        if len(reading.digits) >= 2 and min(d.confidence for d in reading.digits) >= TOUCHING_CONFIDENCE:
            return "several_digits", f"several digits: reads as {reading.text!r} (touching); use read for numbers"
    if not_digit:
        return "not_a_digit", NOT_A_DIGIT
    return "digit", ""


def needs_reading(processed: Processed) -> bool:
    """Whether `judge` would read the image (several marks, or one wider than a digit).

    Reading is slower, so callers on an event loop send it to a thread.

    Args:
        processed: An image as `data.preprocess.to_mnist_28x28` returned it.

    Returns:
        True when it holds two or more marks, or one wider than `TOUCHING_ASPECT` × its height.
    """
    if processed.blank or processed.ink is None:
        return False
    return processed.details.get("marks", 1) >= 2 or processed.details.get("mark_aspect", 0) > TOUCHING_ASPECT


def _read(processed: Processed, model: AnswerModel | None) -> str:
    if model is None or processed.ink is None:
        return ""
    return f", reads as {read_ink(processed.ink, model).text!r}"

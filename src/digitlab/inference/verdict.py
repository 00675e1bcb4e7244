"""One image, one honest answer: a digit, or "blank", "several digits" or "not a digit".

`judge` turns a preprocessed image, its logits and the run's refusal score into a verdict and a reason:

- blank: no ink (preprocessing said so);
- several_digits: the ink forms several separate marks, or one mark much wider than a digit that the reader
  (`read.read_ink`) cuts into digits it is sure of; the reason gives what `read` makes of it;
- not_a_digit: the refusal score (`refusal.Refusal`) says it looks like no digit;
- digit: the label is the model's answer.
"""

from __future__ import annotations

from digitlab.data.preprocess import Processed
from digitlab.inference.read import read_ink

VERDICTS = ("digit", "blank", "several_digits", "not_a_digit")
# One mark is called several touching digits only when it is wider than this × its height (about 2% of MNIST's
# digits are) and the reader cuts it into digits it is each this sure of: where a page expects one digit, a
# wide 2 or 5 must not be refused. Chosen on drawn validation digits (bench/read_numbers.py --split validation).
TOUCHING_ASPECT = 1.25
TOUCHING_CONFIDENCE = 0.95


def judge(processed: Processed, not_digit: bool, model=None) -> tuple[str, str]:
    """(verdict, reason) for one image; the reason is "" for a digit.

    Args:
      processed: the image's 28×28 with its details (`marks`, `mark_aspect`) and ink.
      not_digit: whether the run's refusal score refuses it (`refusal.Refusal.refuses`; callers score a whole
        batch at once, about 5× cheaper per image than one at a time).
      model: what reads several marks or a wide one (a `Predictor`, see `read.read_number`; None: not tried).

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
        reading = read_ink(processed.ink, model)
        if len(reading.digits) >= 2 and min(d.confidence for d in reading.digits) >= TOUCHING_CONFIDENCE:
            return "several_digits", f"several digits: reads as {reading.text!r} (touching); use read for numbers"
    if not_digit:
        return "not_a_digit", "not a digit: it looks like none of the digits the model was trained on"
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


def _read(processed: Processed, model) -> str:
    if model is None or processed.ink is None:
        return ""
    return f", reads as {read_ink(processed.ink, model).text!r}"

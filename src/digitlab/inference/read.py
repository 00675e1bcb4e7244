"""Reading a handwritten number: segmentation (`digitlab.data.segment`) plus the search that picks the cuts.

Every group of ink that may hold several touching digits is cut at its candidate columns in every way that
gives pieces of plausible width; each piece is made into an MNIST-style 28×28 exactly as a single digit is
(`preprocess.normalise_digit`), all pieces go to the model in one batch, and dynamic programming keeps the
segmentation with the highest total score, where a piece scores

    log p(its most likely digit) + 0.5 · log prior(its width / height)
      − 1 · max(0, its refusal score − (threshold − 6)) − 1

- the prior is MNIST's own distribution of digit widths (`WIDTH_PRIOR`): a piece twice as wide as tall is as
  unlikely as in MNIST, where under 0.3% of digits are;
- the refusal term (`refusal.Refusal`, the score behind "not a digit") is what makes the search work: the
  model reads two touching digits as one confident, wrong digit, but such a piece, or half a digit, looks
  like no digit at all (it raised touching pairs read exactly from 69% to 86% on validation digits, with the
  refusal of the time);
- each piece costs a nat, a prior against cutting one digit into two confident halves.

A group is cut only when it is wider than `SPLIT_ABOVE` × its height and, among other digits, wider than
`SPLIT_WIDER` × their median width (a 1 counted as `NARROW_AS` × its height wide, a mark that may itself hold
several digits as `WIDE_AS` × its height). The constants were chosen on numbers made of validation digits
(`bench/read_numbers.py --split validation`), never on test.

Out of scope, as the docs say: several lines, decimal points, minus signs and separators.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from digitlab.data.decode import MAX_PIXELS, ImageInput
from digitlab.data.preprocess import WORK_SIZE, Processed, bounding_box, image_ink, normalise_digit
from digitlab.data.segment import Group, segment_line
from digitlab.models.calibration import probabilities

if TYPE_CHECKING:
    from digitlab.inference.refusal import Refusal

SPLIT_ABOVE = 0.75  # a group at most this wide (× its height) is one digit
SPLIT_WIDER = 1.5  # … and wider than this × the median width of the line's other groups, when it has some
# In that median, a group narrower than NARROW_AS × its height (a 1) counts as that wide: beside 1s every digit was
# "wide", and a 5 or 8 among them was cut in two. Chosen on validation numbers (`bench/read_numbers.py --split
# validation`, 100 per length and gap): separated numbers read exactly 95.3% -> 96.0%, touching ones 55.4% -> 55.2%
# (0.8: 96.5% and 54.4%; 0.9: 96.5% and 52.4%; 0.5: unchanged).
NARROW_AS = 0.7
# … and a group wider than WIDE_AS × its height counts as that wide: where every mark of the line holds several
# touching digits (a six-digit number in two blobs of three), each was as wide as the others' median, none was cut,
# and the line was read as two digits. Chosen on validation numbers (`bench/read_numbers.py --split validation
# --sweep WIDE_AS=...`, seeds 0 and 41): touching numbers of 2-6 digits read exactly 58.3% -> 62.3% and 60.7% ->
# 68.3%, separated ones unchanged (94.8%, 96.2%); 0.8 read more touching numbers (65.7%, 71.7%) but cost separated
# ones on seed 41 (96.2% -> 95.9%), 0.7 on both.
WIDE_AS = 0.9
PIECE_COST = 1.0  # nats each extra piece costs: a prior against cutting one digit into two confident halves
PRIOR_WEIGHT = 0.5  # the width prior's weight against the model's log-probability
# A piece the refusal score finds unlike any digit (two touching digits seen as one, half a digit) pays for it:
# NOT_DIGIT_WEIGHT nats per unit of score above (threshold − NOT_DIGIT_MARGIN). Chosen again on validation
# numbers when the refusal took the Mahalanobis distance in (refusal /4; 0.5 and 2.0 before): touching numbers of
# 2, 3 and 4 digits read exactly 81.3 / 61.3 / 36.7% -> 91.3 / 72.5 / 53.3%, separated ones 95.0 -> 97.0% (pairs,
# close), 91.7 -> 95.0% (5 digits apart); weights 0.5–2 and margins 4–12 were tried (bending cuts, a seam-carving
# path around the strokes instead of a straight column, changed nothing and was not kept).
# Checked again under refusal /5 (`bench/read_numbers.py --split validation --weights`, 60 numbers per length and
# gap): touching / separated / a lone digit read exactly 58.3 / 94.4 / 96.7% at (1, 6); every other pair of weights
# 0.5–2 and margins 4–10 within 3 points on touching and 0.6 on separated numbers (noise at these counts): kept.
NOT_DIGIT_WEIGHT = 1.0
NOT_DIGIT_MARGIN = 6.0
MAX_PIECE = 1.6  # no piece wider than this × the line's height
MIN_PIECE = 0.12  # nor narrower (a "1" drawn as a bar is about 0.15)
# log-density of MNIST digits' width/height ratio (bounding box of ink > 50/255, first 20,000 training digits)
# relative to its mode, in bins of 0.1 centred at 0.1, 0.2, ..., 2.0 (the last bin holds everything wider),
# made unimodal (non-increasing away from the mode) so sparse tail bins cannot reward a wider piece; computed
# by `bench/read_numbers.py --prior`
WIDTH_PRIOR = np.array(
    [
        [-7.1, -2.5, -2.5, -2.0, -1.7, -0.6, -0.6, 0.0, -0.8, -0.8],  # bins 0.1 … 1.0
        [-1.4, -2.0, -4.1, -4.1, -4.9, -9.1, -9.1, -9.1, -9.1, -9.1],  # bins 1.1 … 2.0
    ]
).ravel()


class AnswerModel(Protocol):
    """What reading a number and judging an image need of a model: a `Predictor`, or the server's `BatchedModel`.

    Attributes:
        temperature: The calibration temperature (1.0 when uncalibrated).
    """

    temperature: float

    def forward(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 28, 28) float32 in [0, 1] → ((N, 10) logits, (N, D) features or None)."""
        ...

    def refusal(self) -> Refusal:
        """The run's "not a digit" score."""
        ...


@dataclass
class ReadDigit:
    """One digit of a reading: its label, confidence, 10 probabilities, box [x0, y0, x1, y1] in input pixels."""

    label: int
    confidence: float
    probabilities: list[float]
    box: list[int]
    processed: Processed = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """{label, confidence in [0, 1], the 10 probabilities, box [x0, y0, x1, y1] in the image's pixels}."""
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": self.probabilities,
            "box": self.box,
        }


@dataclass
class Reading:
    """What `read` found: the text (e.g. "42"), its digits left to right, and an overall confidence.

    The confidence is the product of the digits' confidences: the chance that every digit is right, if the model
    is calibrated.
    """

    text: str
    digits: list[ReadDigit]
    confidence: float
    blank: bool = False
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """{text, digits (each `ReadDigit.to_json`), confidence in [0, 1], blank (and reason when blank)}."""
        body: dict[str, Any] = {
            "text": self.text,
            "digits": [d.to_json() for d in self.digits],
            "confidence": round(self.confidence, 6),
            "blank": self.blank,
        }
        if self.blank:
            body["reason"] = self.reason
        return body


def width_log_prior(ratio: float) -> float:
    """The log prior of a piece whose ink is `ratio` × the line's height wide (0 at MNIST's most common width)."""
    index = min(max(round(ratio * 10) - 1, 0), len(WIDTH_PRIOR) - 1)
    return float(WIDTH_PRIOR[index])


def read_number(source: ImageInput, model: AnswerModel, max_pixels: int = MAX_PIXELS) -> Reading:
    """Read the one line of digits in an image.

    Args:
      source: any image `load_pixels` takes (a path, bytes, a PIL image, an array).
      model: what answers (`AnswerModel`: a `Predictor`).
      max_pixels: the decoded-pixel limit.

    Returns:
      The Reading; blank (with the reason) when there is no ink.

    Raises:
      ImageError: the image cannot be decoded or is over the limit.
    """
    return read_ink(_line_ink(source, max_pixels), model)


def read_ink(ink, model: AnswerModel, fill: bool = True) -> Reading:
    """`read_number` on an image's ink already at working size.

    Args:
        ink: The image's ink (`data.preprocess.Ink`), as `to_mnist_28x28` kept it.
        model: What answers (`AnswerModel`: a `Predictor`).
        fill: Whether to cut wide stretches at even spacings too (`segment.cut_candidates`).

    Returns:
        The reading: its text left to right, each digit with its box and confidence (blank when no ink).
    """
    groups = segment_line(ink.flat, fill)
    if not groups:
        return Reading("", [], 0.0, blank=True, reason="blank: no ink")
    line_height = int(np.median([g.height for g in groups]))
    options = [_pieces(ink, g, line_height, _others_width(groups, i)) for i, g in enumerate(groups)]
    flat = [(gi, span, p) for gi, pieces in enumerate(options) for span, p in pieces.items()]
    pixels = np.stack([p.pixels for _, _, p in flat])
    logits, net = model.forward(pixels)
    probs = probabilities(logits, model.temperature)
    refusal = model.refusal()
    margins = refusal.margins(pixels, logits, net)  # > 0: the refusal would say "not a digit"
    scored: list[dict] = [{} for _ in groups]
    for (gi, span, processed), row, margin in zip(flat, probs, margins, strict=True):
        ratio = processed.details["aspect"]  # the piece's own ink box, as MNIST's ratio is each digit's own
        score = (
            math.log(max(float(row.max()), 1e-12))
            + PRIOR_WEIGHT * width_log_prior(ratio)
            - NOT_DIGIT_WEIGHT * max(0.0, float(margin) + NOT_DIGIT_MARGIN)
            - PIECE_COST
        )
        scored[gi][span] = (score, row, processed)
    digits: list[ReadDigit] = []
    for group, table in zip(groups, scored, strict=True):
        for span in _best_segmentation(group, table):
            _, row, processed = table[span]
            rounded = [round(float(v), 6) for v in row]
            box = list(processed.bbox or (0, 0, 0, 0))
            digits.append(ReadDigit(int(row.argmax()), float(row.max()), rounded, box, processed))
    confidence = float(np.prod([d.confidence for d in digits])) if digits else 0.0
    return Reading("".join(str(d.label) for d in digits), digits, confidence)


def _line_ink(source: ImageInput, max_pixels: int):
    """The ink at a working size that gives a line of digits about a single digit's resolution per digit."""
    from digitlab.data.decode import image_size

    size = image_size(source) if isinstance(source, bytes | bytearray) else None
    if size is None and hasattr(source, "size") and not isinstance(source, np.ndarray):
        size = source.size
    if size is None and isinstance(source, np.ndarray):
        size = (source.shape[1], source.shape[0])
    work = WORK_SIZE
    if size is not None and size[1] > 0:
        work = int(min(WORK_SIZE * max(1.0, size[0] / size[1]), WORK_SIZE * 8))
    return image_ink(source, max_pixels, work_size=work)


def _others_width(groups: list[Group], i: int) -> float | None:
    """How wide one digit of this line is: the median width of its other groups (None when alone).

    Each counts between `NARROW_AS` and `WIDE_AS` × its height: a 1 as a digit of normal width, a mark that may
    hold several digits as one wide digit.
    """
    others = [min(max(g.width, NARROW_AS * g.height), WIDE_AS * g.height) for j, g in enumerate(groups) if j != i]
    return float(np.median(others)) if others else None


def _pieces(ink, group: Group, line_height: int, digit_width: float | None) -> dict[tuple[int, int], Processed]:
    """Every piece of the group between two cut points that has a plausible width, as a 28×28.

    A group is cut only when it is wider than `SPLIT_ABOVE` × its height and, in a line with other digits,
    wider than `SPLIT_WIDER` × the others' median width (a wide 2 or 5 among narrower digits stays whole).
    """
    left, right = group.box[2], group.box[3]
    wide = group.width > SPLIT_ABOVE * group.height and (digit_width is None or group.width > SPLIT_WIDER * digit_width)
    points = [left, *group.cuts, right] if wide and group.cuts else [left, right]
    pieces = {}
    for i, a in enumerate(points):
        for b in points[i + 1 :]:
            ratio = (b - a) / max(line_height, 1)
            whole = (a, b) == (left, right)
            if not whole and not MIN_PIECE <= ratio <= MAX_PIECE:
                continue
            mask = np.zeros_like(group.mask)
            mask[:, a:b] = group.mask[:, a:b]
            mask = _without_fragments(mask)
            if mask.sum() < 4:
                continue
            pieces[(a, b)] = normalise_digit(ink, mask, bounding_box(mask))
    return pieces


def _without_fragments(mask: np.ndarray) -> np.ndarray:
    """A cut piece without the slivers of its neighbour the straight cut took along (under 15% of its ink)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= 0.15 * areas.max()
    return keep[labels]


def _best_segmentation(group: Group, table: dict) -> list[tuple[int, int]]:
    """The spans covering the group from its left to its right edge with the highest total score (DP)."""
    left, right = group.box[2], group.box[3]
    points = sorted({left, right, *[p for span in table for p in span]})
    best: dict[int, tuple[float, list]] = {left: (0.0, [])}
    for b in points[1:]:
        for a in points:
            if a >= b or a not in best or (a, b) not in table:
                continue
            total = best[a][0] + table[(a, b)][0]
            if b not in best or total > best[b][0]:
                best[b] = (total, [*best[a][1], (a, b)])
    return best[right][1] if right in best else [(left, right)]

"""Ruled and squared paper: its rules are paper, not ink, and are removed before the digit is found.

A rule is a thin straight line across (most of) the image, one of several at a regular spacing; a pen stroke is
thicker or shorter, and a single long line may be the digit itself (a tightly cropped 1). `remove_rules` runs on
the flattened ink map (`preprocess.image_ink`), and `web/static/preprocess.js` does the same with the same
constants (`tests/web/test_parity.py` checks them).
"""

from __future__ import annotations

import cv2
import numpy as np

from digitlab.data.segment import INK_THRESHOLD

RULE_SPAN = 0.8  # a rule runs across at least this share of the image's width (or height)
RULE_WIDTH = 3  # and is at most this many working pixels thick (pen strokes are thicker, or shorter)
RULES_MIN = 2  # parallel rules needed: one long line alone may be a stroke (a tightly cropped 1 or 7)


def remove_rules(flat: np.ndarray) -> np.ndarray:
    """Remove the rules of ruled or squared paper: thin straight lines across the image, keeping crossing strokes.

    A rule is a run of ink along a row (or a column) over at least `RULE_SPAN` of the image, at most `RULE_WIDTH`
    rows thick, and there must be `RULES_MIN` of them in that direction: a single long line may be the digit (a
    tightly cropped 1). Where a stroke of the digit crosses a rule, the ink just beyond both sides of the rule
    is the stroke's, and those rule pixels are kept. Rules tilted by more than about a pixel over the image's
    width break into runs too short to count (the limit: `digitlab predict --save-processed` shows them).

    Args:
        flat: (h, w) float32 flattened ink map in [0, 1].

    Returns:
        The map with the rules' pixels set to 0 (`flat` itself when there are none).
    """
    mask = flat > INK_THRESHOLD
    h, w = mask.shape
    rows, columns = (cv2.reduce(mask.view(np.uint8), axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S) for axis in (1, 0))
    if np.count_nonzero(rows >= RULE_SPAN * w) < RULES_MIN and np.count_nonzero(columns >= RULE_SPAN * h) < RULES_MIN:
        return flat  # the common case, decided in microseconds: too few rows or columns with that much ink
    rules = [_rules(mask), _rules(mask.T).T]  # horizontal, vertical
    if not (rules[0].any() or rules[1].any()):
        return flat
    out = flat.copy()
    out[rules[0] | rules[1]] = 0.0
    kept = out > INK_THRESHOLD
    reach = RULE_WIDTH + 1
    for axis, rule in enumerate(rules):  # restore a rule's pixels where the digit's stroke runs across it
        crossing = rule & _shifted(kept, reach, axis) & _shifted(kept, -reach, axis)
        out[crossing] = flat[crossing]
    return out


def _rules(mask: np.ndarray) -> np.ndarray:
    """Bool mask of the horizontal rules in `mask` (transpose for the vertical ones)."""
    runs = _long_runs(mask, int(RULE_SPAN * mask.shape[1]))
    lines, start = [], None
    for i, on in enumerate([*runs.any(axis=1).tolist(), False]):  # neighbouring rows are one line, if thin
        if on and start is None:
            start = i
        elif not on and start is not None:
            if i - start <= RULE_WIDTH:
                lines.append((start, i))
            start = None
    if len(lines) < RULES_MIN:
        return np.zeros_like(mask)
    chosen = np.zeros(mask.shape[0], bool)
    for first, end in lines:
        chosen[first:end] = True
    return runs & chosen[:, None]


def _long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of `mask` on runs of at least `length` consecutive ink pixels along their row."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # row-major order: each run's end follows its start
    long = ends - starts >= length
    marks = np.zeros((mask.shape[0], mask.shape[1] + 1), np.int32)
    np.add.at(marks, (rows[long], starts[long]), 1)
    np.add.at(marks, (rows[long], ends[long]), -1)
    return np.cumsum(marks, axis=1)[:, :-1] > 0


def _shifted(mask: np.ndarray, by: int, axis: int) -> np.ndarray:
    """`mask` moved `by` pixels along `axis` (positive: toward higher indices), zeros shifted in."""
    out = np.zeros_like(mask)
    source = [slice(None)] * 2
    target = [slice(None)] * 2
    source[axis] = slice(0, mask.shape[axis] - by) if by > 0 else slice(-by, None)
    target[axis] = slice(by, None) if by > 0 else slice(0, mask.shape[axis] + by)
    out[tuple(target)] = mask[tuple(source)]
    return out

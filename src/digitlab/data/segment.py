"""A line of handwritten digits → the pieces that may each be one digit: the geometry half of reading numbers.

The classic over-segment-then-recognise approach (e.g. Casey & Lecolinet, "A survey of methods and
strategies in character segmentation", IEEE PAMI 1996): find more cut candidates than there are digits, let a
classifier score every piece between two candidates, and keep the segmentation whose pieces it scores highest.
This module is the geometry, with no TensorFlow: the ink's connected components, the grouping of components
that belong to one digit, and the cut candidates inside a group that may hold several touching digits. The
search that picks the cuts with a model's scores is `digitlab.inference.read`.

1. Components: 8-connected ink blobs of the flattened ink map (`preprocess.image_ink`), above the ink threshold
   the single-digit path uses too, specks dropped.
2. Groups: components whose columns overlap form one digit (a 5's detached top bar, a 4 drawn in two
   strokes, a 7's crossbar); a small group next to a digit joins it, a small lone one is a speck; groups are
   read left to right. One line of text only.
3. Cuts inside a group: columns where the ink is thin (local minima of the column profile) and valleys of
   the upper and lower contours, where two touching digits usually meet.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

INK_THRESHOLD = 0.25  # after contrast stretching, what counts as ink (the single-digit path's threshold too)
Box = tuple[int, int, int, int]  # (top, bottom, left, right), bottom and right exclusive
SPECK = 0.05  # a component under this share of the largest one's ink is a speck, unless it overlaps a digit
OVERLAP = 0.5  # groups whose column ranges overlap by this share of the narrower one are one digit
SMALL = 0.4  # a group under this × the tallest group's height, both ways, is a detached stroke or a speck
MAX_CUTS = 10  # cut candidates kept per group (the thinnest); the search is quadratic in them
# Between candidates further apart than FILL_GAP × the line's height, evenly spaced ones at most FILL_STEP × it
# apart: overlapping digits meet where the ink's outline has no valley. Chosen on numbers of validation digits
# (bench/read_numbers.py --split validation): touching numbers of 3 and 4 digits read exactly 72.5 / 53.3% ->
# 78.7 / 61.7%, separated ones unchanged, at twice the reader's time on touching digits (every 0.08 × the height
# everywhere: 78.7 / 70.0% at seven times the time).
FILL_GAP = 0.25
FILL_STEP = 0.15


@dataclass
class Group:
    """The ink of what may be one digit or several touching ones.

    Attributes:
      mask: (h, w) bool, the group's ink in the whole working image.
      box: (top, bottom, left, right) of the ink, bottom and right exclusive, in working pixels.
      cuts: column positions (absolute, working pixels) where the group may be cut into digits.
    """

    mask: np.ndarray
    box: Box
    cuts: list[int]

    @property
    def width(self) -> int:
        """Columns of the group's box, in working pixels."""
        return self.box[3] - self.box[2]

    @property
    def height(self) -> int:
        """Rows of the group's box, in working pixels."""
        return self.box[1] - self.box[0]


def bounding_box(mask: np.ndarray) -> Box:
    """Box of a non-empty mask; row/column projections are much cheaper than np.nonzero over every pixel.

    Args:
        mask: (h, w) bool, with some ink.

    Returns:
        (top, bottom, left, right), bottom and right exclusive.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def ink_components(flat: np.ndarray) -> list[tuple[np.ndarray, Box]]:
    """The 8-connected ink blobs of a flattened ink map, specks dropped.

    Args:
        flat: (h, w) float32 flattened ink map.

    Returns:
        (mask, box) per blob.
    """
    mask = flat > INK_THRESHOLD
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    x, y, w, h = (stats[1:, i] for i in range(4))
    # as in the single-digit path: small blobs cut by the image's edge are shadows and paper edges in photos
    at_edge = (x == 0) | (y == 0) | (x + w == mask.shape[1]) | (y + h == mask.shape[0])
    keep = (areas >= max(areas.max() * SPECK, 4)) & ~(at_edge & (areas < 0.5 * areas.max()))
    return [
        (
            labels == label,
            (int(y[label - 1]), int(y[label - 1] + h[label - 1]), int(x[label - 1]), int(x[label - 1] + w[label - 1])),
        )
        for label in np.flatnonzero(keep) + 1
    ]


def group_components(components: list[tuple[np.ndarray, Box]]) -> list[tuple[np.ndarray, Box]]:
    """Merge components whose column ranges overlap (parts of one digit), sorted left to right.

    Args:
        components: (mask, box) pairs.

    Returns:
        (mask, box) per group, left to right.
    """
    groups = sorted(components, key=lambda c: c[1][2])
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _one_digit(groups[i][1], groups[j][1]):
                    mask = groups[i][0] | groups[j][0]
                    groups[i] = (mask, bounding_box(mask))
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(groups, key=lambda g: g[1][2])


def _one_digit(a: Box, b: Box) -> bool:
    """Whether two components belong to one digit.

    They do when their columns overlap by `OVERLAP` of the narrower, or at all when one is under half the other's
    height (a 5's top bar, a 7's crossbar, a 4's short stroke).
    """
    overlap = _overlap(a, b)
    short = min(a[1] - a[0], b[1] - b[0]) < 0.5 * max(a[1] - a[0], b[1] - b[0])
    return overlap >= OVERLAP or (short and overlap > 0)


def _overlap(a: Box, b: Box) -> float:
    """Shared columns of two boxes as a share of the narrower box's width."""
    shared = min(a[3], b[3]) - max(a[2], b[2])
    return max(shared, 0) / max(min(a[3] - a[2], b[3] - b[2]), 1)


def cut_candidates(mask: np.ndarray, box: Box, line_height: int, fill: bool = True) -> list[int]:
    """Columns inside a group where touching digits may meet: thin columns and contour valleys, gaps filled.

    Candidates closer than a fifth of the line's height to the group's edges or to each other are dropped
    (no digit is that narrow, a "1" aside, and a 1 is rarely joined to its neighbours); then wide stretches
    without one get evenly spaced ones (`FILL_GAP`, `FILL_STEP`).

    Args:
        mask: (h, w) bool ink of the group.
        box: the group's box.
        line_height: the line's tallest group, in pixels.
        fill: whether wide stretches without a candidate get evenly spaced ones (False: valleys only, for the
            single-digit verdict, where a wide 2 cut at an even spacing can read as "22").

    Returns:
        Absolute column positions, left to right.
    """
    top, bottom, left, right = box
    ink = mask[top:bottom, left:right]
    profile = ink.sum(axis=0).astype(np.float32)
    rows = np.arange(ink.shape[0])[:, None]
    upper = np.where(ink.any(axis=0), np.where(ink, rows, ink.shape[0]).min(axis=0), ink.shape[0])
    lower = np.where(ink.any(axis=0), np.where(ink, rows, -1).max(axis=0), -1)
    smooth = np.convolve(profile, np.ones(3) / 3, mode="same")
    scores = {}
    for x in range(1, len(profile) - 1):
        if smooth[x] <= smooth[x - 1] and smooth[x] <= smooth[x + 1]:
            scores[x] = float(smooth[x])  # a thin column
        if upper[x] >= upper[x - 1] and upper[x] >= upper[x + 1] and upper[x] > 0.3 * ink.shape[0]:
            scores[x] = min(scores.get(x, np.inf), float(profile[x]))  # a valley of the upper contour
        if lower[x] <= lower[x - 1] and lower[x] <= lower[x + 1] and lower[x] < 0.7 * ink.shape[0]:
            scores[x] = min(scores.get(x, np.inf), float(profile[x]))  # a valley of the lower contour
    edge = max(2, line_height // 5)
    chosen: list[int] = []
    for x in sorted(scores, key=scores.get):  # thinnest first
        if edge <= x <= len(profile) - edge and all(abs(x - c) >= edge for c in chosen):
            chosen.append(x)
        if len(chosen) == MAX_CUTS:
            break
    if not fill:
        return sorted(left + x for x in chosen)
    points = [0, *sorted(chosen), len(profile)]
    filled: list[int] = []
    for a, b in itertools.pairwise(points):
        if b - a > FILL_GAP * line_height:
            n = math.floor((b - a) / (FILL_STEP * line_height))  # as the page's Math.floor
            filled += [int(a + (b - a) * k / (n + 1)) for k in range(1, n + 1)] if n else [int((a + b) / 2)]
    return sorted(left + x for x in {*chosen, *filled})


def attach_small(groups: list[tuple[np.ndarray, Box]]) -> list[tuple[np.ndarray, Box]]:
    """Join small groups to a close neighbour (a detached stroke), or drop them (a speck).

    Small: both sides under `SMALL` × the tallest group's height.

    Args:
        groups: (mask, box) pairs, left to right.

    Returns:
        The groups that remain, left to right.
    """
    if len(groups) < 2:
        return groups
    tallest = max(b[1] - b[0] for _, b in groups)
    small = [i for i, (_, b) in enumerate(groups) if max(b[1] - b[0], b[3] - b[2]) < SMALL * tallest]
    big = [i for i in range(len(groups)) if i not in small]
    if not big:
        return groups
    merged = {i: groups[i] for i in big}
    for i in small:
        box = groups[i][1]
        gap = {j: max(merged[j][1][2] - box[3], box[2] - merged[j][1][3], 0) for j in merged}
        nearest = min(gap, key=gap.get)
        if gap[nearest] <= SMALL * tallest:
            mask = merged[nearest][0] | groups[i][0]
            merged[nearest] = (mask, bounding_box(mask))
    return sorted(merged.values(), key=lambda g: g[1][2])


def marks(flat: np.ndarray) -> list[tuple[np.ndarray, Box]]:
    """The separate marks of a flattened ink map, left to right: what the single-digit path counts.

    Components are grouped into digits, small detached strokes attached, specks dropped.

    Args:
        flat: (h, w) float32 flattened ink map.

    Returns:
        (mask, box) per mark.
    """
    return attach_small(group_components(ink_components(flat)))


def segment_line(flat: np.ndarray, fill: bool = True) -> list[Group]:
    """The marks of a flattened ink map, left to right, each with its cut candidates.

    Args:
        flat: (h, w) float32 flattened ink map.
        fill: `cut_candidates`'s `fill`.

    Returns:
        One `Group` per mark.
    """
    groups = marks(flat)
    if not groups:
        return []
    line_height = int(np.median([g[1][1] - g[1][0] for g in groups]))
    return [
        Group(mask, box, cut_candidates(mask, box, max(line_height, box[1] - box[0]), fill)) for mask, box in groups
    ]

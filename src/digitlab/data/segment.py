"""A line of handwritten digits → the pieces that may each be one digit: the geometry half of reading numbers.

The classic over-segment-then-recognise approach (e.g. Casey & Lecolinet, "A survey of methods and
strategies in character segmentation", IEEE PAMI 1996): find more cut candidates than there are digits, let a
classifier score every piece between two candidates, and keep the segmentation whose pieces it scores highest.
This module is the geometry, with no TensorFlow: the ink's connected components, the grouping of components
that belong to one digit, and the cut candidates inside a group that may hold several touching digits. The
search that picks the cuts with a model's scores is `digitlab.inference.read`.

1. Components: 8-connected ink blobs (the ink map and threshold of the single-digit path), specks dropped.
2. Groups: components whose columns overlap form one digit (a 5's detached top bar, a 4 drawn in two
   strokes, a 7's crossbar); groups are read left to right. One line of text only.
3. Cuts inside a group: columns where the ink is thin (local minima of the column profile) and valleys of
   the upper and lower contours, where two touching digits usually meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from digitlab.data.preprocess import INK_THRESHOLD, Box, bounding_box

SPECK = 0.05  # a component under this share of the largest one's ink is a speck, unless it overlaps a digit
OVERLAP = 0.5  # groups whose column ranges overlap by this share of the narrower one are one digit
MAX_CUTS = 10  # cut candidates kept per group (the thinnest); the search is quadratic in them


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
        return self.box[3] - self.box[2]

    @property
    def height(self) -> int:
        return self.box[1] - self.box[0]


def ink_components(flat: np.ndarray) -> list[tuple[np.ndarray, Box]]:
    """The 8-connected ink blobs of a flattened ink map, specks dropped, as (mask, box) pairs."""
    mask = flat > INK_THRESHOLD
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 1:
        return []
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= max(areas.max() * SPECK, 4)) + 1
    out = []
    for label in keep:
        x, y, w, h = stats[label, :4]
        out.append((labels == label, (int(y), int(y + h), int(x), int(x + w))))
    return out


def group_components(components: list[tuple[np.ndarray, Box]]) -> list[tuple[np.ndarray, Box]]:
    """Merge components whose column ranges overlap (parts of one digit), sorted left to right."""
    groups = sorted(components, key=lambda c: c[1][2])
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _overlap(groups[i][1], groups[j][1]) >= OVERLAP:
                    mask = groups[i][0] | groups[j][0]
                    groups[i] = (mask, bounding_box(mask))
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(groups, key=lambda g: g[1][2])


def _overlap(a: Box, b: Box) -> float:
    """Shared columns of two boxes as a share of the narrower box's width."""
    shared = min(a[3], b[3]) - max(a[2], b[2])
    return max(shared, 0) / max(min(a[3] - a[2], b[3] - b[2]), 1)


def cut_candidates(mask: np.ndarray, box: Box, line_height: int) -> list[int]:
    """Columns inside `box` where touching digits may meet: thin columns and contour valleys.

    Candidates closer than a fifth of the line's height to the group's edges or to each other are dropped
    (no digit is that narrow, a "1" aside, and a 1 is rarely joined to its neighbours).
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
    return sorted(left + x for x in chosen)


def segment_line(flat: np.ndarray) -> list[Group]:
    """The groups of a flattened ink map, left to right, each with its cut candidates."""
    groups = group_components(ink_components(flat))
    if not groups:
        return []
    line_height = int(np.median([g[1][1] - g[1][0] for g in groups]))
    return [Group(mask, box, cut_candidates(mask, box, max(line_height, box[1] - box[0]))) for mask, box in groups]

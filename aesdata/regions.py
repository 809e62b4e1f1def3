"""Defect regions as geometry and as words: overlap, consensus boxes, grounding scores, place names.

A shared layer (no stage imports it from another stage): annotate merges annotators' boxes with it, cot
names and checks locations with it, eval scores a model's boxes with it. Boxes are ``(x, y, w, h)`` as
fractions of the image (:class:`aesdata.schema.Region`).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence

from aesdata.schema import DIMENSIONS, Box, Region

#: The image in thirds: row words and column words.
_ROWS = ("upper", "middle", "lower")
_COLS = ("left", "centre", "right")


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def merge(boxes: Sequence[Box]) -> Box:
    """One box for several annotators' boxes of the same defect: the coordinate-wise median of the corners.

    The median keeps one careless box from dragging the consensus (a mean would follow it).
    """
    if not boxes:
        raise ValueError("no boxes to merge")
    x0 = statistics.median(b[0] for b in boxes)
    y0 = statistics.median(b[1] for b in boxes)
    x1 = statistics.median(b[0] + b[2] for b in boxes)
    y1 = statistics.median(b[1] + b[3] for b in boxes)
    return (x0, y0, max(1e-6, x1 - x0), max(1e-6, y1 - y0))


def best_match(predicted: Sequence[Box], truth: Sequence[Box]) -> float:
    """Mean over the true boxes of the best IoU any predicted box reaches (0 when nothing was predicted)."""
    if not truth:
        raise ValueError("no true boxes to match")
    return sum(max((iou(p, t) for p in predicted), default=0.0) for t in truth) / len(truth)


def grounding(predicted: Mapping[str, Iterable[Region]], truth: Mapping[str, Iterable[Region]]) -> dict[str, float]:
    """Per dimension, the best-match IoU of predicted against true regions, pooled over the slots.

    Only dimensions with a true region are scored; a missing prediction there scores 0.
    """
    scores: dict[str, list[float]] = {}
    for slot, regions in truth.items():
        for dim in DIMENSIONS:
            true_boxes = [r.box for r in regions if r.dimension == dim]
            if true_boxes:
                guess = [r.box for r in predicted.get(slot, ()) if r.dimension == dim]
                scores.setdefault(dim, []).append(best_match(guess, true_boxes))
    return {dim: sum(v) / len(v) for dim, v in scores.items()}


def _thirds(lo: float, size: float) -> set[int]:
    """Which thirds (0, 1, 2) the span [lo, lo + size] overlaps by more than a sliver."""
    hi = lo + size
    return {k for k in range(3) if min(hi, (k + 1) / 3) - max(lo, k / 3) > 0.02}


def place(box: Box) -> str:
    """Where a box sits, in words: the ninth of the image its centre falls in ("upper left", "centre")."""
    x, y, w, h = box
    row, col = _ROWS[min(2, int((y + h / 2) * 3))], _COLS[min(2, int((x + w / 2) * 3))]
    if row == "middle":
        return "centre" if col == "centre" else col
    return f"{row} {col}" if col != "centre" else {"upper": "top centre", "lower": "bottom centre"}[row]


#: A stated location: "in the upper left", "at the bottom", "on the right side", "near the top edge".
#: Directions ("light from the left", "falls toward the right") are not locations and are not read.
_PLACE = re.compile(
    r"\b(?:(?:in|at|near|along|across)\s+the|on\s+the(?=\s+(?:left|right|upper|lower|top|bottom)[\s-]+"
    r"(?:side|edge|half|part|corner|third)))\s+((?:upper|lower|top|bottom|left|right|centre|center|middle)"
    r"(?:[\s-]+(?:left|right|centre|center|middle))?)\b",
    re.I,
)


def stated_places(text: str) -> list[str]:
    """The locations a text states, lower-cased ("upper left", "bottom")."""
    return [" ".join(m.group(1).lower().replace("-", " ").split()) for m in _PLACE.finditer(text)]


def contradicts(text: str, boxes: Sequence[Box]) -> str | None:
    """A location ``text`` states that none of ``boxes`` reaches ("upper left" for a box in the lower half).

    Only stated locations are checked: a note that names no place never contradicts.
    """
    rows = set().union(*(_thirds(b[1], b[3]) for b in boxes))
    cols = set().union(*(_thirds(b[0], b[2]) for b in boxes))
    for stated in stated_places(text):
        words = set(stated.split())
        if (words & {"upper", "top"} and 0 not in rows) or (words & {"lower", "bottom"} and 2 not in rows):
            return stated
        if ("left" in words and 0 not in cols) or ("right" in words and 2 not in cols):
            return stated
    return None

"""Samples as Label Studio tasks, and judgements as Label Studio results (both directions).

The contract (DESIGN.md, annotation): a candidate is acceptable exactly when it has no defect tag.
The ``acceptable`` row of the page is a cross-check of the tags, not a second source of truth: the
ticked slots must equal the untagged ones, or the annotation is reported and not used. Label Studio
leaves a Choices control with nothing ticked out of the result, so an absent ``acceptable`` item
reads as the empty set (all four rejected) and an absent ``defects_X`` as no tag on X. A submission
with nothing ticked at all is therefore "none acceptable, no defect": inconsistent, never silently
"all acceptable".

The control names here and in ``label_studio_config.xml`` must agree: ``acceptable`` (multi-select
of slots), ``defects_A`` … ``defects_D`` (dimension aliases per candidate), ``regions_A`` …
``regions_D`` (optional rectangles on each candidate, labelled with a dimension alias), ``rationale`` (free
text). Label Studio gives a rectangle as ``x, y, width, height`` in percent of the image; aesdata stores it
as a :class:`aesdata.schema.Region` in fractions (clipped to the image), and a rectangle whose dimension is
not tagged for its candidate makes the annotation inconsistent (reported, not used).
The task data key for the source image is ``original``: Label Studio's UI overwrites a key named
``source``. ``sample_id`` travels in the task data so a push can reconcile with tasks that
were imported but never recorded (a crash between the two).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from aesdata.schema import DIMENSIONS, SLOTS, Candidate, Judgement, Region, Sample, Slot

ACCEPTABLE = "acceptable"
RATIONALE = "rationale"
SOURCE_IMAGE = "img_original"
PREDICTION_MODEL_VERSION = "aesdata-synthetic"


def defects_control(slot: Slot) -> str:
    return f"defects_{slot}"


def regions_control(slot: Slot) -> str:
    return f"regions_{slot}"


def image_control(slot: Slot) -> str:
    return f"img_{slot}"


def data_key(slot: Slot) -> str:
    return f"cand_{slot.lower()}"


def task_data(sample: Sample, candidates: list[Candidate], url_for: Callable[[str], str]) -> dict[str, str]:
    """The ``data`` of one task: sample id and the five image URLs (``url_for`` maps a blob sha)."""
    data = {"sample_id": sample.id, "original": url_for(sample.source_id)}
    for cand in candidates:
        data[data_key(cand.slot)] = url_for(cand.sha256)
    return data


def judgement_result(judgement: Judgement) -> list[dict[str, Any]]:
    """A judgement as Label Studio result items, shaped as the page posts it (empty Choices left out)."""
    items: list[dict[str, Any]] = []
    if judgement.answer:
        items.append(_choices_item(ACCEPTABLE, SOURCE_IMAGE, list(judgement.answer)))
    for slot in SLOTS:
        if judgement.defects[slot]:
            items.append(_choices_item(defects_control(slot), image_control(slot), list(judgement.defects[slot])))
    for slot, regions in judgement.regions.items():
        items.extend(_rectangle_item(slot, region) for region in regions)
    return items


def _rectangle_item(slot: Slot, region: Region) -> dict[str, Any]:
    x, y, w, h = (round(c * 100, 4) for c in region.box)
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [region.dimension]}
    return {"from_name": regions_control(slot), "to_name": image_control(slot), "type": "rectanglelabels",
            "value": value}


def _choices_item(name: str, to_name: str, choices: list[str]) -> dict[str, Any]:
    return {"from_name": name, "to_name": to_name, "type": "choices", "value": {"choices": choices}}


def prediction(judgement: Judgement, model_version: str = PREDICTION_MODEL_VERSION) -> dict[str, Any]:
    return {"model_version": model_version, "result": judgement_result(judgement)}


def parse_result(result: list[dict[str, Any]]) -> tuple[Judgement, str | None]:
    """A Label Studio result as a validated judgement and the rationale text.

    The server accepts any result, so everything is checked here: unknown controls or choices and
    picks that disagree with the tags raise ``ValueError`` with a one-line reason.
    """
    accepted: list[str] = []  # absent: nothing ticked (Label Studio omits an empty Choices)
    defects: dict[str, list[str]] = {}
    regions: dict[str, list[Region]] = {}
    texts: list[str] = []
    controls = {defects_control(s): s for s in SLOTS}
    boxes = {regions_control(s): s for s in SLOTS}
    for item in result:
        name, value = item.get("from_name"), item.get("value") or {}
        if name == ACCEPTABLE:
            accepted = _choices(name, value, SLOTS)
        elif name in controls:
            defects[controls[name]] = _choices(name, value, DIMENSIONS)
        elif name in boxes:
            regions.setdefault(boxes[name], []).extend(_regions(name, value, item))
        elif name == RATIONALE:
            texts.extend(str(t) for t in value.get("text", []))
        else:
            raise ValueError(f"unknown control {name!r} (is the project's labeling config aesdata's?)")
    if not accepted and not any(defects.values()):
        raise ValueError("nothing ticked: tick each acceptable candidate and tag every defect of the others")
    try:
        judgement = Judgement(answer=accepted, defects={s: defects.get(s, []) for s in SLOTS},  # type: ignore[arg-type]
                              regions=regions)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ValueError("; ".join(_one_line(e) for e in exc.errors())) from None
    rationale = "\n".join(t.strip() for t in texts if t.strip()) or None
    return judgement, rationale


def _one_line(error: Any) -> str:
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _choices(name: str, value: dict[str, Any], allowed: tuple[str, ...]) -> list[str]:
    choices = value.get("choices")
    if not isinstance(choices, list):
        raise ValueError(f"control {name!r} has no list of choices")
    bad = [c for c in choices if c not in allowed]
    if bad:
        raise ValueError(f"control {name!r}: unknown choice(s) {', '.join(map(str, bad))}")
    return choices


def _regions(name: str, value: dict[str, Any], item: dict[str, Any]) -> list[Region]:
    """The regions of one drawn rectangle (one per label on it), clipped to the image.

    A rotated rectangle becomes its axis-aligned bounding box (turned in pixels, with the image's
    ``original_width``/``original_height``): regions are upright boxes.
    """
    labels = value.get("rectanglelabels")
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"control {name!r}: a rectangle without a dimension label")
    bad = [lab for lab in labels if lab not in DIMENSIONS]
    if bad:
        raise ValueError(f"control {name!r}: unknown label(s) {', '.join(map(str, bad))}")
    try:
        x, y, w, h = (float(value[k]) / 100 for k in ("x", "y", "width", "height"))
        turn = math.radians(float(value.get("rotation") or 0))  # clockwise about the top-left corner
        aspect = float(item.get("original_height") or 1) / float(item.get("original_width") or 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"control {name!r}: a rectangle without numeric x, y, width, height") from None
    corners = [(0.0, 0.0), (w, 0.0), (w, h * aspect), (0.0, h * aspect)]  # in units of the image width
    xs = [x + cx * math.cos(turn) - cy * math.sin(turn) for cx, cy in corners]
    ys = [y + (cx * math.sin(turn) + cy * math.cos(turn)) / aspect for cx, cy in corners]
    x0, y0 = max(0.0, min(xs)), max(0.0, min(ys))
    x1, y1 = min(1.0, max(xs)), min(1.0, max(ys))
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"control {name!r}: a rectangle with no area inside the image")
    return [Region(dimension=lab, box=(x0, y0, x1 - x0, y1 - y0)) for lab in labels]

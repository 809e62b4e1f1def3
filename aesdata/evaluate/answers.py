"""Tolerant parsing of a model's reply into a set of slots, or ``None`` when it says nothing clear.

Models answer in many shapes: ``<answer>A,C</answer>``, ``A and C``, ``a, c``, ``AC``, ``none``,
``{"final_answer": ["A", "C"]}``, ``The answer is B.``. Where to look, in order:

1. the last ``<answer>…</answer>`` (reasoning inside ``<think>…</think>`` is ignored everywhere);
2. a JSON object with ``final_answer`` or ``answer`` (the structure the cot stage asks for);
3. the rest of the line after the last ``answer is`` / ``answer:``;
4. the whole reply, when it is a single line.

The region found must then consist of slot letters, separators and a few filler words
(``candidates A and C``, ``\\boxed{A,C}``), or be a "none" phrase. Anything else, a contradiction like ``A or C`` or
``none, A`` included, is unparseable: guessing would score a model for an answer it did not give.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from aesdata.evaluate.scoring import Prediction
from aesdata.schema import SLOTS, Region

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S | re.I)
_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.I)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_SEPARATORS = re.compile(r"[\s,;/&+|]+")
_STRIP = "*`'\"[](){}.!:"

_LETTERS = {s.lower() for s in SLOTS}
_FILLER = {
    "and",
    "slot",
    "slots",
    "candidate",
    "candidates",
    "image",
    "images",
    "option",
    "options",
    "both",
    "only",
    "are",
    "is",
    "acceptable",
    "the",
}
_NONE_WORDS = {"none", "nothing", "neither", "no", "empty", "∅"}
_NONE_FILLER = _FILLER | {"of", "them", "one", "is", "acceptable"}
_COMPACT = re.compile(r"^[A-D]{2,4}$")
_LATEX = re.compile(r"\\(?:boxed|text|mathrm|textbf)\s*\{([^{}]*)\}")
_ASIDE = re.compile(r"\([^()]*\)")


def _tokens(region: str) -> list[str]:
    return [t.strip(_STRIP) for t in _SEPARATORS.split(region.strip()) if t.strip(_STRIP)]


def parse_slots(region: str) -> Prediction:
    """Parse a short answer region: slot letters and separators, or a none phrase; else None.

    LaTeX wrappers (``\\boxed{A, C}``, ``\\text{none}``) are unwrapped, and an aside in parentheses after
    the answer (``A, C (B and D are warped)``) is left out.
    """
    for _ in range(3):  # innermost first: \\boxed{\\text{none}}
        region = _LATEX.sub(r" \1 ", region)
    without_asides = _ASIDE.sub(" ", region)
    tokens = _tokens(without_asides) or _tokens(region)
    if not tokens:
        return None
    lowered = [t.lower() for t in tokens]
    if lowered[0] in _NONE_WORDS:
        return frozenset() if all(t in _NONE_FILLER for t in lowered[1:]) else None
    picked: set[str] = set()
    for raw, low in zip(tokens, lowered, strict=True):
        if low in _LETTERS:
            picked.add(low.upper())
        elif _COMPACT.match(raw) and len(set(raw)) == len(raw):
            picked.update(raw)
        elif low not in _FILLER:
            return None
    return frozenset(picked) if picked else None


def _from_json(text: str) -> Prediction | str:
    """The answer field of a JSON reply; the text itself when the reply is not such JSON."""
    try:
        data = json.loads(_FENCE.sub("", text.strip()))
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    value = data.get("final_answer", data.get("answer"))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return parse_slots(",".join(value)) if value else frozenset()
    if isinstance(value, str):
        return parse_slots(value)
    return None


def parse_reply(text: str | None) -> Prediction:
    """The set of slots a reply accepts, or None when it is unparseable (see the module doc)."""
    if not text or not text.strip():
        return None
    visible = _THINK.sub("", text).strip()
    tags = _ANSWER_TAG.findall(visible)
    if tags:
        return parse_slots(tags[-1])
    found = _from_json(visible)
    if not isinstance(found, str):
        return found
    stated = _ANSWER_IS.findall(visible)
    if stated:
        return parse_slots(stated[-1])
    if "\n" not in visible:
        return parse_slots(visible)
    return None


_REGIONS_TAG = re.compile(r"<regions>(.*?)</regions>", re.S | re.I)


def parse_regions(text: str | None) -> dict[str, list[Region]] | None:
    """Where a reply says the defects are, or None when it gives no (well-formed) boxes.

    Boxes are asked for as ``<regions>[{"slot": "C", "dimension": "...", "box": [x, y, w, h]}]</regions>``
    (fractions of the image) after the answer; a malformed block counts as no boxes, never as an error.
    """
    tags = _REGIONS_TAG.findall(_THINK.sub("", text or ""))
    if not tags:
        return None
    try:
        items = json.loads(_FENCE.sub("", tags[-1].strip()))
        out: dict[str, list[Region]] = {}
        for item in items:
            slot = str(item["slot"]).strip().upper()
            if slot not in SLOTS:
                return None
            out.setdefault(slot, []).append(Region(dimension=item["dimension"], box=tuple(item["box"])))
        return out
    except (ValueError, TypeError, KeyError, ValidationError):
        return None

"""Reading a model's structured reply into :class:`~aesdata.schema.CotReply`, tolerantly.

Endpoints with JSON-schema ``response_format`` return clean JSON; others (and models that ignore the
instruction) wrap it in prose or code fences, spell slots as "Candidate A", answers as "A, C" and
booleans as "yes". Those are normalised; anything still not a reply raises :class:`ReplyError` whose
message goes back to the model in the repair turn.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from pydantic import ValidationError

from aesdata.schema import DIMENSIONS, SLOTS, CotReply


class ReplyError(ValueError):
    """The reply is not a CotReply; the message says why, for the repair turn."""


@cache
def reply_schema() -> dict[str, Any]:
    """The JSON schema sent as ``response_format``."""
    return CotReply.model_json_schema()


_REPLY_KEYS = {"observations", "reasoning", "final_answer", "answer"}
_SLOTS, _DIMENSIONS = frozenset(SLOTS), frozenset(DIMENSIONS)


def extract_json(text: str) -> Any:
    """The reply's JSON object in ``text``: a reasoning model's ``<think>`` block, code fences and prose
    around it are ignored; among several objects the first with a reply's keys wins."""
    text = re.sub(r"<think>.*?</think>", " ", text.strip(), flags=re.S | re.I)
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            if _REPLY_KEYS & value.keys():
                return value
            found.append(value)
    if found:
        return found[0]
    raise ReplyError("the reply contains no JSON object")


def _slot(value: Any) -> Any:
    if isinstance(value, str) and value in _SLOTS:  # the common case: no regular expression (16 a reply)
        return value
    if isinstance(value, str):
        found = re.findall(r"\b([A-D])\b", value.strip().upper().replace("CANDIDATE", " "))
        if len(found) == 1:
            return found[0]
    return value


def _answer(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return [] if text.lower() in ("", "none", "no candidate", "[]") else re.findall(r"\b[A-D]\b", text.upper())
    if isinstance(value, list):
        return [_slot(v) for v in value]
    return value


def _dimension(value: Any) -> Any:
    if isinstance(value, str) and value in _DIMENSIONS:
        return value
    if isinstance(value, str):
        key = re.sub(r"[\s\-]+", "_", value.strip().lower())
        if key in DIMENSIONS:
            return key
    return value


def _bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "defective", "1"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("no", "false", "clean", "ok", "0"):
        return False
    return value


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if "final_answer" not in out and "answer" in out:
        out["final_answer"] = out.pop("answer")
    out["final_answer"] = _answer(out.get("final_answer"))
    observations = out.get("observations")
    if isinstance(observations, list):
        out["observations"] = [_observation(o) for o in observations]
    return out


def _observation(o: Any) -> Any:
    if not isinstance(o, dict):
        return o
    slot, dimension, defective = o.get("slot"), o.get("dimension"), o.get("defective")
    if type(defective) is bool and isinstance(slot, str) and slot in _SLOTS and isinstance(dimension, str) \
            and dimension in _DIMENSIONS:  # as asked (16 a reply): nothing to copy
        return o
    return {**o, "slot": _slot(slot), "dimension": _dimension(dimension), "defective": _bool(defective)}


def _as_asked(text: str) -> CotReply | None:
    """The reply when it is exactly one JSON object that is a CotReply as it stands (what an endpoint
    with ``response_format`` returns), validated straight from the text; None for anything else.

    Whatever passes here, the tolerant path reads the same way (its normalising leaves valid slots,
    dimensions and booleans as they are); it costs a third of it (about 70 us of CPU a reply, on the
    event loop of a run at 256 requests in flight)."""
    if not text.startswith("{"):
        return None
    try:
        return CotReply.model_validate_json(text)
    except ValidationError:
        return None


def parse_reply(text: str) -> CotReply:
    """The reply as a CotReply, or :class:`ReplyError` naming the first thing wrong."""
    reply = _as_asked(text)
    if reply is None:
        data = extract_json(text)
        try:
            reply = CotReply.model_validate(_normalise(data))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "reply"
            raise ReplyError(f"the JSON does not match the schema: {where}: {first['msg']}") from None
    if not reply.reasoning.strip():
        raise ReplyError("the reasoning is empty")
    if len(set(reply.final_answer)) != len(reply.final_answer):
        raise ReplyError("final_answer repeats a slot")
    ordered = [s for s in SLOTS if s in reply.final_answer]
    return reply if ordered == reply.final_answer else reply.model_copy(update={"final_answer": ordered})

"""The ``template`` mode: a rationale written from the label alone, no model (offline default, baseline).

Phrases come from ``annotation/prompts/template.toml``; each sample picks its variants by a hash of its
id, so the text varies across samples and a re-run writes the same text. The result goes through the
same validators as a model's.
"""

from __future__ import annotations

import hashlib
from string import Template

from aesdata.cot.prompts import mode_hash, phrases
from aesdata.cot.validate import Limits, Problem, validate
from aesdata.regions import place
from aesdata.schema import DIMENSIONS, SLOTS, CotMode, CotReply, Judgement, Observation, Rationale


def _pick(options: list[str], *key: str) -> str:
    digest = hashlib.sha256("/".join(key).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]


def _note(judgement: Judgement, sample_id: str, slot: str, dim: str) -> str:
    """The phrase for one candidate and dimension; a defect with a marked region says where it is."""
    bank = phrases()
    defective = dim in judgement.defects[slot]  # type: ignore[index]
    note = _pick(bank["defect" if defective else "clean"][dim], sample_id, slot, dim)
    places = [place(r.box) for r in judgement.regions.get(slot, ()) if r.dimension == dim]  # type: ignore[call-overload]
    return f"{note}, in the {' and the '.join(places)} of the image" if defective and places else note


def observations_from(judgement: Judgement, sample_id: str) -> list[Observation]:
    """One observation per candidate per dimension, worded from the phrase bank."""
    return [
        Observation(slot=slot, dimension=dim, defective=dim in judgement.defects[slot],
                    note=_note(judgement, sample_id, slot, dim))
        for slot in SLOTS
        for dim in DIMENSIONS
    ]


def _reasoning(judgement: Judgement, observations: list[Observation], sample_id: str) -> str:
    bank = phrases()
    parts = [_pick(bank["intro"], sample_id, "intro")]
    for slot in SLOTS:
        notes = "; ".join(o.note for o in observations if o.slot == slot)
        defects = judgement.defects[slot]
        if defects:
            verdict = Template(bank["verdict"]["reject"]).substitute(
                slot=slot, defects=" and ".join(bank["names"][d] for d in defects)
            )
        else:
            verdict = Template(bank["verdict"]["accept"]).substitute(slot=slot)
        parts.append(f"Candidate {slot}: {notes}. {verdict}")
    if judgement.answer:
        answer = ", ".join(f"Candidate {s}" for s in judgement.answer)
        parts.append(Template(bank["conclusion"]["some"]).substitute(answer=answer))
    else:
        parts.append(bank["conclusion"]["none"])
    return "\n".join(parts)


def finish(
    sample_id: str, mode: CotMode, reply: CotReply, problems: list[Problem], *, raw: str | None = None
) -> Rationale:
    """A valid rationale from ``reply``, or a failed one carrying the problems (shared by offline modes)."""
    if problems:
        return Rationale(
            sample_id=sample_id,
            mode=mode,
            status="failed",
            prompt_hash=mode_hash(mode),
            errors=[p.reason for p in problems],
            raw=raw or reply.model_dump_json(),
            observations=reply.observations,
        )
    return Rationale(
        sample_id=sample_id,
        mode=mode,
        status="valid",
        prompt_hash=mode_hash(mode),
        think=reply.reasoning,
        answer=reply.final_answer,
        observations=reply.observations,
    )


def template_rationale(sample_id: str, judgement: Judgement, limits: Limits) -> Rationale:
    observations = observations_from(judgement, sample_id)
    reply = CotReply(
        observations=observations,
        reasoning=_reasoning(judgement, observations, sample_id),
        final_answer=list(judgement.answer),
    )
    return finish(sample_id, "template", reply, validate(reply, judgement, limits))

"""Annotator quality and agreement, from the ``annotations`` and ``labels`` tables alone.

The figures (and the shape of the dict) follow the annotation team's quality report: per annotator
the tasks done and how often their answer equals the consensus of the others on shared samples;
Krippendorff's alpha on acceptance and per dimension; the samples in dispute. Gold accuracy and task
times need the annotation stage's gold answers and lead times: where that report is available,
:func:`quality` is the one place to point at it.
"""

from __future__ import annotations

from typing import Any

from aesdata.annotate.consensus import agreement_report, consensus
from aesdata.schema import DIMENSIONS, Judgement
from aesdata.workspace import Workspace


def judgements(ws: Workspace) -> dict[str, dict[str, Judgement]]:
    """``sample -> annotator -> judgement`` over every stored annotation."""
    out: dict[str, dict[str, Judgement]] = {}
    for sample_id, who, raw in ws.db.execute("SELECT sample_id, annotator, judgement FROM annotations "
                                             "ORDER BY sample_id, annotator"):
        out.setdefault(sample_id, {})[who] = Judgement.model_validate_json(raw)
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def quality(ws: Workspace) -> dict[str, Any]:
    """Annotators (tasks, compared, agreement with the others' consensus), alpha, samples in dispute."""
    per_sample = judgements(ws)
    tasks: dict[str, int] = {}
    agreed: dict[str, list[float]] = {}
    for by in per_sample.values():
        for who, judgement in by.items():
            tasks[who] = tasks.get(who, 0) + 1
            others = [j for a, j in by.items() if a != who]
            if others:
                agreed.setdefault(who, []).append(float(consensus(others).judgement.answer == judgement.answer))
    annotators = [{"annotator": who, "tasks": n, "compared": len(agreed.get(who, [])),
                   "agreement": _r(sum(agreed[who]) / len(agreed[who])) if agreed.get(who) else None}
                  for who, n in sorted(tasks.items(), key=lambda kv: (-kv[1], kv[0]))]
    figures = agreement_report(per_sample)
    alpha = {"acceptance": _r(figures["alpha_acceptance"]), **{d: _r(figures[f"alpha_{d}"]) for d in DIMENSIONS}}
    disputes = [r[0] for r in ws.db.execute(
        "SELECT sample_id FROM labels WHERE origin = 'human' AND needs_review = 1 ORDER BY sample_id")]
    return {"annotators": annotators, "alpha": alpha, "full_agreement": _r(figures["full_agreement"]),
            "samples_annotated": len(per_sample),
            "samples_with_several": sum(1 for by in per_sample.values() if len(by) > 1), "in_dispute": disputes}

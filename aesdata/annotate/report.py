"""``aesdata annotate report``: how the team is doing, from the workspace alone (no server needed).

Per annotator: tasks done, gold accuracy (exact, proportional, defects caught and, where the gold answer
has regions, localisation IoU per dimension), agreement
with the consensus of the others, median seconds per task, whether they are left out of the consensus
(``[annotate] min_gold_accuracy``) or a reviewer. Per dimension: Krippendorff's alpha on the tags and the
mean pairwise IoU of the annotators' boxes. And the samples
in dispute (their label needs review).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aesdata.annotate.consensus import agreement_report
from aesdata.annotate.gold import gold_answers
from aesdata.annotate.quality import below_gold, score_annotators
from aesdata.annotate.review import reviewers
from aesdata.schema import DIMENSIONS, Judgement
from aesdata.workspace import Workspace

#: What the dataset card shows of each annotator (pseudonyms and figures only).
CARD_FIELDS = ("annotator", "tasks", "gold_tasks", "gold_exact", "gold_proportional", "agreement", "left_out",
               *(f"located_{d}" for d in DIMENSIONS))


def all_judgements(db: sqlite3.Connection) -> dict[str, dict[str, Judgement]]:
    """``sample -> annotator -> judgement`` over every stored annotation."""
    out: dict[str, dict[str, Judgement]] = {}
    for row in db.execute("SELECT sample_id, annotator, judgement FROM annotations"):
        out.setdefault(row[0], {})[row[1]] = Judgement.model_validate_json(row[2])
    return out


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def quality_report(ws: Workspace, judgements: dict[str, dict[str, Judgement]] | None = None) -> dict[str, Any]:
    """Annotators, alpha per dimension, disputes: the figures ``annotate report`` prints."""
    db = ws.db
    judgements = all_judgements(db) if judgements is None else judgements
    gold = gold_answers(db)
    lead_times: dict[str, list[float]] = {}
    for who, seconds in db.execute("SELECT annotator, lead_time_s FROM annotations WHERE lead_time_s IS NOT NULL"):
        lead_times.setdefault(who, []).append(seconds)
    scores = score_annotators(judgements, gold, lead_times)
    left_out = below_gold(scores, ws.settings.annotate.min_gold_accuracy)
    review = reviewers(db)
    annotators = [
        {
            "annotator": s.annotator,
            "tasks": s.tasks,
            "gold_tasks": s.gold_tasks,
            "gold_exact": _r(s.gold_exact),
            "gold_proportional": _r(s.gold_proportional),
            **{f"caught_{d}": _r(s.caught.get(d)) for d in DIMENSIONS},
            **{f"located_{d}": _r(s.located.get(d)) for d in DIMENSIONS},
            "compared": s.compared,
            "agreement": _r(s.agreement),
            "median_seconds": _r(s.median_seconds),
            "left_out": s.annotator in left_out,
            "reviewer": s.annotator in review,
        }
        for s in sorted(scores.values(), key=lambda s: (-s.tasks, s.annotator))
    ]
    agreement = agreement_report(judgements)
    alpha = {k.removeprefix("alpha_"): _r(v) for k, v in agreement.items() if k.startswith("alpha_")}
    box_iou = {k.removeprefix("iou_"): _r(v) for k, v in agreement.items() if k.startswith("iou_")}
    in_review = "SELECT sample_id FROM labels WHERE origin = 'human' AND needs_review = 1 ORDER BY sample_id"
    disputes = [r[0] for r in db.execute(in_review)]
    return {
        "annotators": annotators,
        "alpha": alpha,
        "full_agreement": _r(agreement.get("full_agreement")),
        "box_iou": box_iou,
        "samples_annotated": len(judgements),
        "samples_with_several": sum(1 for by in judgements.values() if len(by) > 1),
        "gold_samples": len(gold),
        "gold_annotated": sum(1 for sid in gold if sid in judgements),
        "in_dispute": disputes,
        "min_gold_accuracy": ws.settings.annotate.min_gold_accuracy,
    }


def card_summary(ws: Workspace, judgements: dict[str, dict[str, Judgement]] | None = None) -> dict[str, Any]:
    """The part of the report the dataset card publishes: no sample ids, no timings."""
    report = quality_report(ws, judgements)
    return {
        "annotators": [{k: a[k] for k in CARD_FIELDS} for a in report["annotators"]],
        "alpha": report["alpha"],
        "box_iou": report["box_iou"],
        "gold_samples": report["gold_samples"],
        "min_gold_accuracy": report["min_gold_accuracy"],
    }

"""How reliable each annotator is: pure functions over judgements, gold answers and task times.

* on **gold** (samples with a known answer): exact and proportional accuracy of the annotator's answer
  (the project's scorer, :mod:`aesdata.scoring`) and, per dimension, the share of the gold defects along
  it that the annotator tagged and, where the gold answer has regions, how well the annotator's boxes
  locate them (best-match IoU, :func:`aesdata.regions.best_match`; no box there scores 0);
* against **the others**: on each sample the annotator shares with at least one other, whether their
  answer equals the consensus of the others (:func:`aesdata.annotate.consensus.consensus`);
* **time**: the median of Label Studio's ``lead_time`` (seconds on the task) over their annotations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median

from aesdata.annotate.consensus import consensus
from aesdata.regions import best_match
from aesdata.schema import DIMENSIONS, SLOTS, Judgement
from aesdata.scoring import exact, proportional


@dataclass
class AnnotatorScore:
    annotator: str
    tasks: int = 0
    gold_tasks: int = 0
    gold_exact: float | None = None
    gold_proportional: float | None = None
    caught: dict[str, float | None] = field(default_factory=dict)  # dimension -> share of gold defects tagged
    located: dict[str, float | None] = field(default_factory=dict)  # dimension -> mean IoU on gold regions
    compared: int = 0  # samples shared with at least one other annotator
    agreement: float | None = None  # share of those where the answer equals the others' consensus
    median_seconds: float | None = None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_annotators(
    per_sample: Mapping[str, Mapping[str, Judgement]],
    gold: Mapping[str, Judgement],
    lead_times: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, AnnotatorScore]:
    """Scores of every annotator in ``per_sample`` (``sample -> annotator -> judgement``)."""
    lead_times = lead_times or {}
    scores: dict[str, AnnotatorScore] = {}
    exacts: dict[str, list[float]] = {}
    props: dict[str, list[float]] = {}
    agreed: dict[str, list[float]] = {}
    tagged: dict[str, dict[str, list[int]]] = {}  # annotator -> dimension -> [caught, present]
    ious: dict[str, dict[str, list[float]]] = {}  # annotator -> dimension -> IoU per gold slot with regions
    for sample_id, by in per_sample.items():
        known = gold.get(sample_id)
        for who, judgement in by.items():
            score = scores.setdefault(who, AnnotatorScore(who))
            score.tasks += 1
            answer = frozenset(judgement.answer)
            if known is not None:
                exacts.setdefault(who, []).append(exact(answer, frozenset(known.answer)))
                props.setdefault(who, []).append(proportional(answer, frozenset(known.answer)))
                counts = tagged.setdefault(who, {d: [0, 0] for d in DIMENSIONS})
                for slot in SLOTS:
                    for dim in known.defects[slot]:
                        counts[dim][1] += 1
                        counts[dim][0] += dim in judgement.defects[slot]
                        truth = [r.box for r in known.regions.get(slot, ()) if r.dimension == dim]
                        if truth:
                            drawn = [r.box for r in judgement.regions.get(slot, ()) if r.dimension == dim]
                            ious.setdefault(who, {}).setdefault(dim, []).append(best_match(drawn, truth))
            others = [j for a, j in by.items() if a != who]
            if others:
                agreed.setdefault(who, []).append(float(consensus(others).judgement.answer == judgement.answer))
    for who, score in scores.items():
        score.gold_tasks = len(exacts.get(who, []))
        score.gold_exact = _mean(exacts.get(who, []))
        score.gold_proportional = _mean(props.get(who, []))
        counts = tagged.get(who, {})
        score.caught = {d: counts[d][0] / counts[d][1] if d in counts and counts[d][1] else None for d in DIMENSIONS}
        score.located = {d: _mean(ious.get(who, {}).get(d, [])) for d in DIMENSIONS}
        score.compared = len(agreed.get(who, []))
        score.agreement = _mean(agreed.get(who, []))
        times = [t for t in lead_times.get(who, ()) if t is not None]
        score.median_seconds = median(times) if times else None
    return scores


def below_gold(scores: Mapping[str, AnnotatorScore], min_accuracy: float) -> set[str]:
    """Annotators measured on gold whose exact accuracy is under ``min_accuracy`` (0: nobody)."""
    if min_accuracy <= 0:
        return set()
    return {a for a, s in scores.items() if s.gold_exact is not None and s.gold_exact < min_accuracy}

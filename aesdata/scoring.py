"""The scorer (DESIGN.md, Scoring): pure functions of a prediction and an answer, no I/O, below every stage.

* exact: 1 when the predicted set of slots equals the answer, else 0;
* proportional (partial credit in the spirit of Dynamic Proportional Accuracy): 0 as soon as one
  picked slot is wrong, else ``|predicted ∩ answer| / |answer|``; an empty answer is scored exactly.

An unparseable reply is ``None`` and scores 0 on both: a model that cannot follow the answer format
earns nothing, and the count of such replies is reported beside the scores.

The random baseline is an expectation over all 16 subsets of the four slots, each equally likely,
computed exactly by enumeration rather than by sampling, so it is the same figure on every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from aesdata.schema import DIMENSIONS, SLOTS

#: A parsed prediction: the set of slots the model accepts, or None when its reply was unparseable.
Prediction = frozenset[str] | None

#: Every subset of the four slots (the empty set and all four included): 16 of them.
ALL_SUBSETS: tuple[frozenset[str], ...] = tuple(
    frozenset(combo) for r in range(len(SLOTS) + 1) for combo in combinations(SLOTS, r)
)


def exact(pred: Prediction, answer: frozenset[str]) -> float:
    """1.0 when ``pred`` is exactly the answer, else 0.0 (an unparseable reply is never right)."""
    return float(pred is not None and pred == answer)


def proportional(pred: Prediction, answer: frozenset[str]) -> float:
    """Partial credit: 0 if any picked slot is wrong, else the share of acceptable slots found."""
    if pred is None:
        return 0.0
    if not answer:
        return exact(pred, answer)
    if pred - answer:
        return 0.0
    return len(pred) / len(answer)


@dataclass(frozen=True)
class SampleScore:
    """One sample's scores over its rollouts (means), or their expectation for a baseline.

    ``rejected[d]`` is the mean number of candidates defective along ``d`` that the predictions left out
    (a defect caught); ``defective[d]`` how many candidates of the sample are defective along ``d``.
    """

    exact: float
    proportional: float
    pass_at_k: float
    rollouts: int
    unparseable: int
    rejected: Mapping[str, float]
    defective: Mapping[str, int]


def _defective(defects: Mapping[str, Sequence[str]]) -> dict[str, int]:
    return {d: sum(d in defects.get(slot, ()) for slot in SLOTS) for d in DIMENSIONS}


def _rejected(preds: Sequence[Prediction], defects: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Mean count of d-defective candidates not picked; an unparseable reply catches nothing."""
    out = {}
    for d in DIMENSIONS:
        bad = {slot for slot in SLOTS if d in defects.get(slot, ())}
        out[d] = sum(len(bad - p) for p in preds if p is not None) / len(preds)
    return out


def score_sample(
    preds: Sequence[Prediction], answer: frozenset[str], defects: Mapping[str, Sequence[str]]
) -> SampleScore:
    """Score K rollouts of one sample: means over rollouts, pass@K = any rollout exact."""
    if not preds:
        raise ValueError("score_sample needs at least one prediction")
    exacts = [exact(p, answer) for p in preds]
    return SampleScore(
        exact=sum(exacts) / len(preds),
        proportional=sum(proportional(p, answer) for p in preds) / len(preds),
        pass_at_k=max(exacts),
        rollouts=len(preds),
        unparseable=sum(p is None for p in preds),
        rejected=_rejected(preds, defects),
        defective=_defective(defects),
    )


def random_sample_score(answer: frozenset[str], defects: Mapping[str, Sequence[str]], rollouts: int = 1) -> SampleScore:
    """Expected scores of a uniform random subset, by enumeration of all 16 subsets.

    The mean over :data:`ALL_SUBSETS` is the expectation itself; pass@K of K independent draws is
    ``1 - (1 - p)^K`` with ``p`` the chance that one draw is exact.
    """
    over_all = score_sample(ALL_SUBSETS, answer, defects)
    p = over_all.exact
    return SampleScore(
        exact=p,
        proportional=over_all.proportional,
        pass_at_k=1.0 - (1.0 - p) ** rollouts,
        rollouts=rollouts,
        unparseable=0,
        rejected=over_all.rejected,
        defective=over_all.defective,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(scores: Sequence[SampleScore]) -> dict[str, object]:
    """Aggregate per-sample scores into the figures a report prints.

    ``per_dimension[d]``: over the samples with at least one candidate defective along ``d``, their mean
    exact and proportional scores, and ``caught``: the share of those defective candidates left out.
    Means over no samples are ``None`` (nothing to measure), never 0.
    """
    per_dimension: dict[str, dict[str, object]] = {}
    for d in DIMENSIONS:
        hit = [s for s in scores if s.defective[d]]
        total_bad = sum(s.defective[d] for s in hit)
        per_dimension[d] = {
            "samples": len(hit),
            "exact": _mean([s.exact for s in hit]),
            "proportional": _mean([s.proportional for s in hit]),
            "caught": sum(s.rejected[d] for s in hit) / total_bad if total_bad else None,
        }
    return {
        "samples": len(scores),
        "replies": sum(s.rollouts for s in scores),
        "exact": _mean([s.exact for s in scores]),
        "proportional": _mean([s.proportional for s in scores]),
        "pass_at_k": _mean([s.pass_at_k for s in scores]),
        "unparseable": sum(s.unparseable for s in scores),
        "per_dimension": per_dimension,
    }

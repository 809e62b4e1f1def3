"""Consensus and agreement: pure functions over judgements, no I/O.

* :func:`consensus` derives one label from several annotators' judgements: per slot, the majority
  decides acceptance (a tie counts as *not acceptable*, the conservative side); a rejected slot keeps
  the dimensions tagged by more than half of the annotators who rejected it (or, when none reaches
  that, the most often tagged ones). Any disagreement on a slot's acceptance, ties included, flags the
  sample for review: the label is still usable, but a person should look. Where the consensus tags a
  dimension on a slot, the boxes the annotators who tagged it drew there are merged
  (:func:`merged_boxes`); boxes of annotators who did not tag it do not count.
* :func:`settle` decides a sample's label with the team around it: a reviewer's judgement settles it;
  otherwise annotators left out for low gold accuracy do not vote (unless nobody else is left, then
  everyone votes and the sample goes to review).
* :func:`box_agreement` is the localisation agreement: the mean pairwise IoU of two annotators' boxes for
  the same slot and dimension.
* :func:`krippendorff_alpha_nominal` measures agreement beyond chance (Krippendorff 2011,
  "Computing Krippendorff's Alpha-Reliability"), tolerating missing values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from itertools import permutations

from aesdata.regions import best_match, iou, merge
from aesdata.schema import DIMENSIONS, SLOTS, Box, Judgement, Region


@dataclass(frozen=True)
class Consensus:
    judgement: Judgement
    agreement: float  # share of annotators whose answer equals the consensus answer
    needs_review: bool


def consensus(judgements: Sequence[Judgement]) -> Consensus:
    """One judgement from one or more annotators' judgements of the same sample."""
    if not judgements:
        raise ValueError("consensus of no judgements")
    n = len(judgements)
    defects: dict[str, list[str]] = {}
    review = False
    for slot in SLOTS:
        rejecters = [j for j in judgements if slot not in j.answer]
        accepts = n - len(rejecters)
        review = review or 0 < accepts < n
        if accepts * 2 > n:
            continue  # acceptable: no defects
        tags = Counter(d for j in rejecters for d in j.defects[slot])
        majority = [d for d in DIMENSIONS if tags[d] * 2 > len(rejecters)]
        top = max(tags.values())
        defects[slot] = majority or [d for d in DIMENSIONS if tags[d] == top]
    regions = {slot: [Region(dimension=dim, box=box) for dim in dims for box in merged_boxes(
        [[r.box for r in j.regions.get(slot, ()) if r.dimension == dim] for j in judgements if dim in j.defects[slot]]
    )] for slot, dims in defects.items()}
    judgement = Judgement.from_defects(defects, regions)
    agreeing = sum(1 for j in judgements if j.answer == judgement.answer)
    return Consensus(judgement=judgement, agreement=agreeing / n, needs_review=review)


def merged_boxes(by_annotator: Sequence[Sequence[Box]]) -> list[Box]:
    """The consensus boxes of one slot and dimension from each annotator's boxes there.

    Boxes that overlap gather into one defect (each annotator at most once in it, the box overlapping the
    defect's merged box most); a defect that at least half of the annotators who drew any box marked
    becomes one box, the coordinate-wise median of its boxes (:func:`aesdata.regions.merge`).
    """
    drawers = [boxes for boxes in by_annotator if boxes]
    defects: list[tuple[list[Box], set[int]]] = []
    for who, boxes in enumerate(drawers):
        for box in boxes:
            free = [(iou(merge(group), box), group, owners) for group, owners in defects if who not in owners]
            overlap, group, owners = max(free, key=lambda f: f[0], default=(0.0, [], set()))
            if overlap > 0:
                group.append(box)
                owners.add(who)
            else:
                defects.append(([box], {who}))
    return [merge(group) for group, owners in defects if 2 * len(owners) >= len(drawers)]


def box_agreement(per_sample: Mapping[str, Mapping[str, Judgement]]) -> dict[str, float | None]:
    """Per dimension, the mean over annotator pairs that both drew boxes for it on the same slot of the
    symmetric best-match IoU of their boxes (``None`` where no such pair exists)."""
    pairs: dict[str, list[float]] = {d: [] for d in DIMENSIONS}
    for by in per_sample.values():
        judgements = list(by.values())
        for slot in SLOTS:
            for dim in DIMENSIONS:
                drawn = [[r.box for r in j.regions.get(slot, ()) if r.dimension == dim] for j in judgements]
                drawn = [boxes for boxes in drawn if boxes]
                pairs[dim].extend((best_match(a, b) + best_match(b, a)) / 2
                                  for i, a in enumerate(drawn) for b in drawn[i + 1:])
    return {d: sum(v) / len(v) if v else None for d, v in pairs.items()}


@dataclass(frozen=True)
class Settled:
    judgement: Judgement
    agreement: float | None  # share of the voters (or of the annotators, against a reviewer) agreeing
    needs_review: bool
    left_out: tuple[str, ...]  # annotators whose judgement did not count
    reviewed_by: str | None


def settle(
    by_annotator: Mapping[str, Judgement], *, left_out: Set[str] = frozenset(), reviewers: Set[str] = frozenset()
) -> Settled:
    """The label of one sample from its annotators' judgements (``annotator -> judgement``)."""
    if not by_annotator:
        raise ValueError("settle needs at least one judgement")
    reviewing = sorted(a for a in by_annotator if a in reviewers)
    if reviewing:
        verdict = by_annotator[reviewing[0]]
        others = [j for a, j in by_annotator.items() if a not in reviewers]
        agreement = sum(j.answer == verdict.answer for j in others) / len(others) if others else None
        return Settled(verdict, agreement, False, (), reviewing[0])
    voters = [a for a in sorted(by_annotator) if a not in left_out]
    everyone_left_out = not voters
    voters = voters or sorted(by_annotator)
    result = consensus([by_annotator[a] for a in voters])
    return Settled(
        judgement=result.judgement,
        agreement=result.agreement if len(voters) > 1 else None,
        needs_review=result.needs_review or everyone_left_out,
        left_out=() if everyone_left_out else tuple(a for a in sorted(by_annotator) if a in left_out),
        reviewed_by=None,
    )


def krippendorff_alpha_nominal(units: Iterable[Mapping[Hashable, Hashable]]) -> float | None:
    """Krippendorff's alpha for nominal data.

    ``units`` holds, per unit (e.g. one slot of one sample), the value each coder gave it (coders
    absent from a unit are missing). Units with fewer than two values are not pairable and ignored.
    Returns ``None`` when alpha is undefined: no pairable unit, or a single value used throughout
    (no expected disagreement).
    """
    coincidence: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = list(unit.values())
        m = len(values)
        if m < 2:
            continue
        for a, b in permutations(values, 2):
            coincidence[(a, b)] += 1.0 / (m - 1)
    n_c: Counter[Hashable] = Counter()
    for (a, _b), weight in coincidence.items():
        n_c[a] += weight
    n = sum(n_c.values())
    if n <= 1:
        return None
    observed = sum(w for (a, b), w in coincidence.items() if a != b)
    expected = (n * n - sum(v * v for v in n_c.values())) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected


def agreement_report(per_sample: Mapping[str, Mapping[str, Judgement]]) -> dict[str, float | None]:
    """Alpha on per-slot acceptance and on each dimension's tags, box IoU agreement per dimension
    (``iou_<dimension>``), and the share of samples in full agreement, over samples with at least two
    annotators (``sample -> annotator -> judgement``)."""
    multi = {s: by for s, by in per_sample.items() if len(by) >= 2}
    report: dict[str, float | None] = {
        "alpha_acceptance": krippendorff_alpha_nominal(
            {a: slot in j.answer for a, j in by.items()} for by in multi.values() for slot in SLOTS
        ),
    }
    for dim in DIMENSIONS:
        report[f"alpha_{dim}"] = krippendorff_alpha_nominal(
            {a: dim in j.defects[slot] for a, j in by.items()} for by in multi.values() for slot in SLOTS
        )
    report.update({f"iou_{dim}": v for dim, v in box_agreement(multi).items()})
    full = sum(1 for by in multi.values() if len({tuple(j.answer) for j in by.values()}) == 1)
    report["full_agreement"] = full / len(multi) if multi else None
    return report

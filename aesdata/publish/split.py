"""Train/test assignment: group-aware, stable across versions, stratified. A pure function.

* **Group-aware**: samples whose sources are near-duplicates share a group and always share a split,
  so no near-duplicate leaks from train into test.
* **Stable**: a sample keeps the split it had in any earlier version. When a new link merges a group
  that was in test with one that was in train, the whole group goes to test: the promise is that a
  test sample never becomes training data (the train samples that move are counted and reported).
* **Stratified**: new groups fill each stratum (the set of defect dimensions present) towards the
  target test fraction; within a stratum, groups are taken in the order of a hash of their group id,
  so the same inputs always give the same split, on any machine.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aesdata.schema import Split


@dataclass(frozen=True, slots=True)
class Item:
    """What the splitter needs to know about one sample."""

    sample_id: str
    group: str
    stratum: str


@dataclass
class Assignment:
    splits: dict[str, Split] = field(default_factory=dict)
    moved_to_test: list[str] = field(default_factory=list)  # train samples pulled in by a merged test group

    def count(self) -> dict[str, int]:
        counts = Counter(self.splits.values())
        return {"train": counts["train"], "test": counts["test"]}


def _order(group: str) -> str:
    return hashlib.sha256(f"split:{group}".encode()).hexdigest()


def _quotas(deficits: Mapping[str, float], budget: int) -> dict[str, int]:
    """Share ``budget`` test rows among strata in proportion to their deficits (largest remainder)."""
    total = sum(deficits.values())
    if budget <= 0 or total <= 0:
        return {s: 0 for s in deficits}
    exact = {s: budget * d / total for s, d in deficits.items()}
    quotas = {s: int(v) for s, v in exact.items()}
    for s in sorted(exact, key=lambda s: (quotas[s] - exact[s], s))[: budget - sum(quotas.values())]:
        quotas[s] += 1
    return quotas


def assign(items: Iterable[Item], previous: Mapping[str, Split], test_fraction: float) -> Assignment:
    """Split ``items``; ``previous`` holds every sample's split in earlier versions."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    members: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        members[item.group].append(item)

    out = Assignment()
    fresh: dict[str, list[str]] = defaultdict(list)  # stratum -> new groups
    test_per_stratum: Counter[str] = Counter()
    size_per_stratum: Counter[str] = Counter()
    for group, its in members.items():
        for it in its:
            size_per_stratum[it.stratum] += 1
        earlier = {previous[it.sample_id] for it in its if it.sample_id in previous}
        if not earlier:
            stratum = Counter(it.stratum for it in its).most_common(1)[0][0]
            fresh[stratum].append(group)
            continue
        split: Split = "test" if "test" in earlier else "train"
        for it in its:
            out.splits[it.sample_id] = split
            if split == "test":
                test_per_stratum[it.stratum] += 1
                if previous.get(it.sample_id) == "train":
                    out.moved_to_test.append(it.sample_id)

    # New groups: each stratum's share of the remaining test budget, filled in hash order.
    total = sum(size_per_stratum.values())
    budget = round(test_fraction * total) - sum(test_per_stratum.values())
    fresh_size = {s: sum(len(members[g]) for g in gs) for s, gs in fresh.items()}
    deficits = {
        s: min(max(test_fraction * size_per_stratum[s] - test_per_stratum[s], 0.0), fresh_size[s]) for s in fresh
    }
    quotas = _quotas(deficits, budget)
    taken_total = 0
    for stratum, groups in fresh.items():
        taken = 0
        for group in sorted(groups, key=_order):
            # take the group when that brings the stratum closer to its quota than leaving it
            if taken + len(members[group]) / 2 < quotas[stratum]:
                taken += _put(out, members[group], "test")
            else:
                _put(out, members[group], "train")
        taken_total += taken
    # Groups larger than a small stratum's quota can leave the total short: top up across strata.
    for group in sorted((g for gs in fresh.values() for g in gs), key=_order):
        size = len(members[group])
        if out.splits[members[group][0].sample_id] == "train" and taken_total + size / 2 < budget:
            taken_total += _put(out, members[group], "test")
    return out


def _put(out: Assignment, members: list[Item], split: Split) -> int:
    for it in members:
        out.splits[it.sample_id] = split
    return len(members)

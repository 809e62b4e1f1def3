"""The split as a pure function: groups never span splits, earlier splits hold, strata are filled."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata.publish.split import Item, assign

STRATA = ["none", "physical_shadow", "placement_layout", "appearance_deformation+physical_shadow"]


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[Item], dict[str, str]]:
    n = draw(st.integers(1, 120))
    groups = draw(st.lists(st.integers(0, max(0, n - 1)), min_size=n, max_size=n))
    strata = draw(st.lists(st.sampled_from(STRATA), min_size=n, max_size=n))
    items = [Item(f"s{i}", f"g{groups[i]}", strata[i]) for i in range(n)]
    earlier = draw(
        st.dictionaries(
            st.sampled_from([it.sample_id for it in items]), st.sampled_from(["train", "test"]), max_size=n // 2
        )
    )
    return items, earlier


@given(workloads(), st.floats(0, 0.6))
@settings(max_examples=150, deadline=None)
def test_groups_never_span_and_test_is_sticky(work: tuple[list[Item], dict[str, str]], fraction: float) -> None:
    items, earlier = work
    out = assign(items, earlier, fraction)
    assert set(out.splits) == {it.sample_id for it in items}
    by_group = defaultdict(set)
    for it in items:
        by_group[it.group].add(out.splits[it.sample_id])
    assert all(len(splits) == 1 for splits in by_group.values())
    for sid, split in earlier.items():
        if split == "test":
            assert out.splits[sid] == "test"
        elif out.splits[sid] == "test":  # train only moves when its group holds a test sample
            assert sid in out.moved_to_test
    assert assign(items, earlier, fraction).splits == out.splits  # deterministic


def test_fraction_and_strata_are_met_on_a_large_set() -> None:
    items = [Item(f"s{i}", f"g{i // 2}", STRATA[i % len(STRATA)]) for i in range(4000)]
    out = assign(items, {}, 0.2)
    assert abs(out.count()["test"] - 800) <= 2
    per = Counter((it.stratum, out.splits[it.sample_id]) for it in items)
    for stratum in STRATA:
        share = per[stratum, "test"] / (per[stratum, "test"] + per[stratum, "train"])
        assert abs(share - 0.2) < 0.01, (stratum, share)


def test_new_samples_fill_the_budget_around_the_old_ones() -> None:
    first = [Item(f"s{i}", f"g{i}", "none") for i in range(100)]
    v1 = assign(first, {}, 0.1)
    grown = first + [Item(f"s{i}", f"g{i}", "none") for i in range(100, 300)]
    v2 = assign(grown, v1.splits, 0.1)
    assert all(v2.splits[s] == split for s, split in v1.splits.items())
    assert v2.count()["test"] == 30
    assert v2.moved_to_test == []


def test_a_merged_group_goes_to_test_and_says_so() -> None:
    earlier = {"a": "test", "b": "train"}
    out = assign([Item("a", "g", "none"), Item("b", "g", "none"), Item("c", "g", "none")], earlier, 0.5)
    assert out.splits == {"a": "test", "b": "test", "c": "test"}
    assert out.moved_to_test == ["b"]


def test_zero_fraction_puts_everything_in_train() -> None:
    out = assign([Item(f"s{i}", f"g{i}", "none") for i in range(10)], {}, 0.0)
    assert out.count() == {"train": 10, "test": 0}


def test_pairs_in_tiny_strata_still_reach_the_test_share() -> None:
    # every stratum holds one pair: a per-stratum quota of 1 could never take a group of 2
    items = [Item(f"s{i}", f"g{i // 2}", f"stratum{i // 2}") for i in range(20)]
    out = assign(items, {}, 0.2)
    assert out.count()["test"] == 4

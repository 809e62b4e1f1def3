"""The near-duplicate search is exact: the same pairs and decisions as comparing every pair."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata import nearindex
from aesdata.nearindex import BITS, NearIndex, Plan, all_pairs, flip_masks, plan

u64 = st.integers(min_value=0, max_value=2**64 - 1)


def planted(n: int, seed: int, max_flips: int = 12) -> np.ndarray:
    """Random hashes with many close pairs planted (random ones are almost never close)."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    for a in range(1, n, 2):
        v = int(h[rng.integers(0, a)])
        for bit in rng.choice(64, size=int(rng.integers(0, max_flips)), replace=False):
            v ^= 1 << int(bit)
        h[a] = v
    return h


def brute_search(stored: np.ndarray, queries: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    d = np.bitwise_count(queries[:, None] ^ stored[None, :]) if len(stored) else np.zeros((len(queries), 0), int)
    qi, pos = np.nonzero(d <= radius)
    return sorted(zip(qi.tolist(), d[qi, pos].tolist(), pos.tolist(), strict=True))


def sequential(hashes: np.ndarray, radius: int, near: int) -> tuple[list, list]:
    """Reference: one hash at a time, comparing with every source so far."""
    sources: list[int] = []
    decisions, links = [], []
    for k, h in enumerate(hashes.tolist()):
        close = sorted(((h ^ s).bit_count(), p) for p, s in enumerate(sources) if (h ^ s).bit_count() <= radius)
        if close and close[0][0] <= near:
            decisions.append(("near", close[0][1], close[0][0]))
        else:
            decisions.append(("source", len(sources), -1))
            links.extend((k, p, d) for d, p in sorted(close, key=lambda c: c[1]))
            sources.append(h)
    return decisions, links


def test_flip_masks_are_complete():
    assert len(flip_masks(16, 1)) == 17 and len(flip_masks(10, 2)) == 1 + 10 + 45
    assert len(set(flip_masks(12, 3))) == len(flip_masks(12, 3))


@pytest.mark.parametrize("n", [1_000, 640_000, 10_000_000])
@pytest.mark.parametrize("radius", [0, 6, 10])
def test_plans_satisfy_the_pigeonhole_bound(n, radius):
    p = plan(n, radius)
    assert sum(p.widths) == BITS
    assert sum(t + 1 for t in p.thresholds if t >= 0) >= radius + 1, "every close pair meets some chunk"


@pytest.mark.parametrize("radius", [0, 6, 10])
def test_search_equals_brute_force_through_both_levels_and_tail(radius):
    h = planted(22600, seed=radius, max_flips=radius + 2)
    index = NearIndex(radius, tail=200)
    index.add(h[:20000])  # the main level
    index.add(h[20000:22000])  # past the tail bound, under MID_FRACTION of the main level: a middle level
    index.add(h[22000:22200])  # stays in the brute-force tail
    assert [(t.first, t.size) for t in index.levels] == [(0, 20000), (20000, 2000)]
    got = list(zip(*index.search(h[22200:]), strict=True))
    expected = [(q, p, d) for q, d, p in brute_search(h[:22200], h[22200:], radius)]
    assert sorted(got, key=lambda g: (g[0], g[2], g[1])) == got and len(expected) > 50
    found = {p for _, p, _ in got}
    assert found & set(range(20000, 22000)) and found & set(range(22000, 22200)), "every part holds some pair"
    assert got == sorted(expected, key=lambda e: (e[0], e[2], e[1]))


def test_middle_level_folds_into_a_new_main_level():
    h = planted(5000, seed=7)
    index = NearIndex(0, tail=100)  # radius 0: tables pay at a few hundred hashes already
    index.add(h[:4000])
    index.add(h[4000:4400])
    assert [(t.first, t.size) for t in index.levels] == [(0, 4000), (4000, 400)]
    index.add(h[4400:4700])  # the middle would pass 1/8 of the main level: one main level over everything
    assert [(t.first, t.size) for t in index.levels] == [(0, 4700)]


@st.composite
def plans(draw: st.DrawFn, radius: int) -> Plan:
    """Any chunking that satisfies the pigeonhole bound for ``radius`` (widths 1-16, unprobed chunks too)."""
    widths: list[int] = []
    while sum(widths) < BITS:
        widths.append(min(draw(st.integers(1, 16)), BITS - sum(widths)))
    thresholds = [draw(st.integers(-1, min(w, 3))) for w in widths]
    while sum(t + 1 for t in thresholds if t >= 0) < radius + 1:
        i = draw(st.integers(0, len(widths) - 1))
        thresholds[i] = min(widths[i], thresholds[i] + 1)
        if all(t == w for t, w in zip(thresholds, widths, strict=True)):
            break
    return Plan(tuple(widths), tuple(thresholds), 1.0)


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(0, 12), st.integers(1, 150))
def test_any_valid_chunking_finds_exactly_the_close_pairs(data, radius, batch):
    """The kernels (probe sort, bucket sweep, each pair reported from one chunk only) are exact for every
    chunking the planner could pick, not only the ones it picks at the sizes the other tests reach."""
    chosen = data.draw(plans(radius))
    if sum(t + 1 for t in chosen.thresholds if t >= 0) < radius + 1:
        return  # every chunk already at its full width: no chunking of these widths reaches the radius
    h = planted(700, seed=radius + batch, max_flips=radius + 3)
    index = NearIndex(radius, tail=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nearindex, "plan", lambda n, r: chosen)
        index.add(h[:500])
        index.add(h[500:550])  # a middle level
    assert [t.plan for t in index.levels] == [chosen, chosen]
    queries = h[550 : 550 + batch]
    expected = brute_search(h[:550], queries, radius)
    for join in (False, True):  # both kernels: the probe sweep and the join
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(nearindex, "JOIN_PROBES", 10**9 if join else 0)
            got = [(q, d, p) for q, p, d in zip(*index.search(queries), strict=True)]
        assert got == expected


@pytest.mark.parametrize("join", [False, True])
@pytest.mark.parametrize("queries", [1, 256, 2000])
def test_join_and_sweep_find_every_close_pair(join, queries):
    """Many queries probe each bucket (planted near copies share buckets), pairs close in several chunks
    are reported once; the join's slices (JOIN_BATCH) keep their query numbers. A dropped or doubled
    pair fails the comparison with brute force."""
    h = planted(8000 + queries, seed=queries, max_flips=12)
    index = NearIndex(10, h[:8000], tail=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nearindex, "JOIN_PROBES", 10**9 if join else 0)
        mp.setattr(nearindex, "JOIN_BATCH", 700)
        got = [(q, d, p) for q, p, d in zip(*index.search(h[8000:]), strict=True)]
    expected = brute_search(h[:8000], h[8000:], 10)
    assert got == expected and len(expected) >= queries // 3


def test_a_search_with_many_queries_indexes_the_tail_first():
    h = planted(10220, seed=11)
    index = NearIndex(10, tail=1100)
    index.add(h[:8200])
    index.add(h[8200:9220])  # under the tail bound: searched by brute force
    assert [(t.first, t.size) for t in index.levels] == [(0, 8200)]
    got = [(q, d, p) for q, p, d in zip(*index.search(h[9220:9270]), strict=True)]
    assert [(t.first, t.size) for t in index.levels] == [(0, 8200)], "a few queries scan the tail"
    assert got == brute_search(h[:9220], h[9220:9270], 10)
    got = [(q, d, p) for q, p, d in zip(*index.search(h[9220:]), strict=True)]
    assert [(t.first, t.size) for t in index.levels] == [(0, 8200), (8200, 1020)], "many: a middle level first"
    assert got == brute_search(h[:9220], h[9220:], 10)


def test_the_join_serves_many_queries_and_the_sweep_few():
    index = NearIndex(10, planted(20000, seed=5), tail=0)
    t = index.levels[0]
    for queries, join in ((256, False), (1 << 16, True)):
        p = t.probes(10)
        assert (nearindex.JOIN_PROBES * queries * len(p.flips) >= p.walked) is join



@pytest.mark.parametrize("radius,near,batch", [(6, 6, 256), (6, 6, 2000), (10, 6, 1), (10, 6, 256),
                                               (10, 6, 2000), (10, 0, 256), (10, 0, 2000)])
def test_assign_in_batches_equals_one_at_a_time(radius, near, batch):
    """One at a time, ingest's batches, and a rebuild's (pairs within the batch through tables over it,
    stored ones through the join) decide alike."""
    h = planted(3000, seed=100 + radius + near)
    expected_decisions, expected_links = sequential(h, radius, near)
    index = NearIndex(radius, tail=300)
    decisions, links = [], []
    for start in range(0, len(h), batch):
        a = index.assign(h[start : start + batch], near)
        for k in range(len(a.position)):
            decisions.append(("source", int(a.position[k]), -1) if a.position[k] >= 0
                             else ("near", int(a.near_of[k]), int(a.distance[k])))
        links.extend((start + int(q), int(p), int(d)) for q, p, d in zip(*a.links, strict=True))
    assert decisions == expected_decisions
    assert links == expected_links
    assert sum(d[0] == "near" for d in decisions) > 100 and (len(links) > 0 or radius == near)


@pytest.mark.parametrize("tail", [0, 300])
def test_decisions_first_then_links_in_bulk_equal_one_at_a_time(tail):
    """Ingest's way: each batch decided within the near radius only (``links=False``), the new sources'
    links searched later, many at once (here at uneven points, once with a tail, and some twice)."""
    h = planted(3000, seed=42)
    expected_decisions, expected_links = sequential(h, 10, 6)
    index = NearIndex(10, tail=tail)
    decisions, links, unlinked, linked = [], set(), [], []
    for start in range(0, len(h), 256):
        a = index.assign(h[start : start + 256], 6, links=False)
        assert len(a.links[0]) == 0
        decisions += [("source", int(p), -1) if p >= 0 else ("near", int(o), int(d))
                      for p, o, d in zip(a.position, a.near_of, a.distance, strict=True)]
        unlinked += [int(p) for p in a.position if p >= 0]
        if len(unlinked) >= 700 or start + 256 >= len(h):
            found = index.links_of(np.array(unlinked + linked[-50:]))  # 50 linked before: found again, alike
            links.update((max(a, b), min(a, b), d) for a, b, d in zip(*(x.tolist() for x in found), strict=True))
            linked, unlinked = linked + unlinked, []
    assert decisions == expected_decisions
    by_position = {int(p): k for k, (kind, p, _) in enumerate(decisions) if kind == "source"}
    assert sorted((by_position[a], b, d) for a, b, d in links) == sorted(expected_links) and len(links) > 100


def test_a_search_below_the_index_radius_probes_less_and_finds_the_same():
    h = planted(28_400, seed=8)
    index = NearIndex(10, h[:28_000], tail=0)
    t = index.levels[0]
    assert t.probes(6).cost < t.probes(10).cost / 3 and len(t.probes(6).flips) < len(t.probes(10).flips)
    expected = brute_search(h[:28_000], h[28_000:], 10)
    for radius in (0, 3, 6, 10):
        got = [(q, d, p) for q, p, d in zip(*index.search(h[28_000:], radius), strict=True)]
        assert got == [e for e in expected if e[1] <= radius]
    assert len([e for e in expected if e[1] <= 6]) > 50


def test_a_crowded_batch_is_decided_in_halves_alike():
    """Near-identical hashes by the thousand (blank or retouched photos) would make millions of pairs
    within one call: assign takes the call's halves in turn instead, and decides as one at a time."""
    rng = np.random.default_rng(4)
    root = int(rng.integers(0, 2**63))
    crowd = [root ^ (1 << int(a)) ^ (1 << int(b)) for a, b in rng.integers(0, 64, size=(1200, 2))]
    h = np.array(crowd + rng.integers(0, 2**63, size=300).tolist(), dtype=np.uint64)
    rng.shuffle(h)
    h = np.concatenate([h, h[:200] ^ np.uint64(0b1111_0000_0000_1111)])  # 8 bits from earlier ones: links
    assert len(all_pairs(h, 10)) > nearindex.CROWDED * len(h) * 8, "more pairs than one call may hold"
    expected_decisions, expected_links = sequential(h, 10, 6)
    calls = []
    assign = NearIndex.assign
    with pytest.MonkeyPatch.context() as mp:  # counts the calls, each still the real one
        mp.setattr(NearIndex, "assign",
                   lambda self, *args, **kw: calls.append(len(args[0])) or assign(self, *args, **kw))
        a = NearIndex(10, tail=0).assign(h, 6)
    decisions = [("source", int(p), -1) if p >= 0 else ("near", int(o), int(d))
                 for p, o, d in zip(a.position, a.near_of, a.distance, strict=True)]
    links = [(int(q), int(p), int(d)) for q, p, d in zip(*a.links, strict=True)]
    assert (decisions, links) == (expected_decisions, expected_links) and len(links) > 30
    assert len(calls) > 3 and max(calls[1:]) <= len(h) // 2, "taken in halves"


@settings(max_examples=60, deadline=None)
@given(st.lists(u64, min_size=0, max_size=80), st.lists(u64, min_size=1, max_size=30), st.integers(0, 12),
       st.integers(0, 40))
def test_search_property_against_brute_force(stored, queries, radius, tail):
    index = NearIndex(12, tail=tail)
    # near copies of the stored hashes make close pairs likely
    q = np.array(queries + [s ^ (1 << (i % 64)) ^ (1 << ((7 * i) % 64)) for i, s in enumerate(stored[:10])],
                 dtype=np.uint64)
    index.add(np.array(stored, dtype=np.uint64))
    got = [(a, d, b) for a, b, d in zip(*index.search(q, radius), strict=True)]
    assert got == brute_search(np.array(stored, dtype=np.uint64), q, radius)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(u64, st.integers(0, 12)), min_size=1, max_size=60), st.sampled_from([(6, 6), (10, 6)]),
       st.integers(1, 17))
def test_assign_property_against_sequential(seeds, radii, batch):
    radius, near = radii
    values: list[int] = []
    for v, flips in seeds:  # each hash a random one or a few bits away from an earlier one
        base = values[v % len(values)] if values and flips < 10 else v
        values.append(base ^ ((1 << flips) - 1) << (v % 50))
    h = np.array([v % 2**64 for v in values], dtype=np.uint64)
    expected_decisions, expected_links = sequential(h, radius, near)
    index = NearIndex(radius, tail=batch)
    decisions, links = [], []
    for start in range(0, len(h), batch):
        a = index.assign(h[start : start + batch], near)
        decisions += [("source", int(p), -1) if p >= 0 else ("near", int(o), int(d))
                      for p, o, d in zip(a.position, a.near_of, a.distance, strict=True)]
        links += [(start + int(q), int(p), int(d)) for q, p, d in zip(*a.links, strict=True)]
    assert (decisions, links) == (expected_decisions, expected_links)


def test_all_pairs_baseline_is_every_close_pair():
    h = planted(500, seed=3)
    pairs = all_pairs(h, 6)
    expected = [(i, j, (int(h[i]) ^ int(h[j])).bit_count()) for i in range(500) for j in range(i + 1, 500)
                if (int(h[i]) ^ int(h[j])).bit_count() <= 6]
    assert [tuple(p) for p in pairs.tolist()] == expected and len(expected) > 20


def test_radius_limits():
    with pytest.raises(ValueError, match="radius"):
        NearIndex(radius=4).search(np.zeros(1, np.uint64), 6)
    with pytest.raises(ValueError, match="near radius"):
        NearIndex(radius=4).assign(np.zeros(1, np.uint64), 6)

"""Multi-index hashing finds exactly the pairs the quadratic search finds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata.nearindex import HashIndex, all_pairs, chunk_widths, flip_masks, near_pairs, plan

u64 = st.integers(min_value=0, max_value=2**64 - 1)


def planted(n: int, seed: int, max_flips: int = 9) -> np.ndarray:
    """Random hashes with many close pairs planted (random ones are almost never close)."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    for a in range(0, n - 1, 3):
        v = int(h[a])
        for bit in rng.choice(64, size=int(rng.integers(0, max_flips)), replace=False):
            v ^= 1 << int(bit)
        h[a + 1] = v
    return h


def test_chunking_covers_64_bits_and_masks_are_complete():
    for m in range(1, 9):
        assert sum(chunk_widths(m)) == 64
    assert len(flip_masks(16, 1)) == 17 and len(flip_masks(10, 2)) == 1 + 10 + 45


@pytest.mark.parametrize("n,radius", [(50, 0), (600, 6), (3000, 6), (3000, 10)])
def test_batch_search_equals_all_pairs(n, radius):
    h = planted(n, seed=n + radius)
    expected = all_pairs(h, radius)
    assert len(expected) > 0
    np.testing.assert_array_equal(near_pairs(h, radius), expected)


def test_plan_grows_chunk_width_with_size():
    assert plan(1_000, 6)[0] >= plan(1_000_000, 6)[0]


@settings(max_examples=40, deadline=None)
@given(st.lists(u64, min_size=1, max_size=60), u64, st.integers(0, 12))
def test_incremental_index_query_equals_brute_force(stored, query, radius):
    index = HashIndex(radius=12)
    for i, h in enumerate(stored):
        index.add(h, i)
    got = index.query(query, radius)
    expected = sorted(((i, (h ^ query).bit_count()) for i, h in enumerate(stored)
                       if (h ^ query).bit_count() <= radius), key=lambda kv: (kv[1], str(kv[0])))
    assert got == expected


def test_query_radius_cannot_exceed_index_radius():
    with pytest.raises(ValueError, match="radius"):
        HashIndex(radius=4).query(0, 6)

"""Hamming-radius search over 64-bit perceptual hashes without comparing every pair.

Multi-index hashing (Norouzi et al.): split the 64 bits into ``m`` chunks. If two hashes differ in at
most ``t`` bits, by pigeonhole at least one chunk differs in at most ``t // m`` bits, so candidates are
found by looking up each chunk's value and its few bit-flipped neighbours, then verified on all 64 bits.

* :class:`HashIndex` answers one query at a time and grows as images arrive (ingest).
* :func:`near_pairs` finds every close pair in a batch of hashes at once, vectorised with numpy,
  choosing the chunking from the batch size so the work stays near-linear (benchmarks, grouping).
* :func:`all_pairs` is the quadratic baseline, kept for tests and the benchmark.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterator
from itertools import combinations
from math import comb

import numpy as np

BITS = 64


def chunk_widths(m: int) -> list[int]:
    """Widths of ``m`` chunks covering 64 bits, as equal as possible."""
    base, extra = divmod(BITS, m)
    return [base + (1 if i >= m - extra else 0) for i in range(m)]


def flip_masks(width: int, radius: int) -> list[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set (0 first)."""
    return [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(width), r)]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class HashIndex:
    """Incremental index of (hash, item) for queries "every item within ``radius`` bits of h"."""

    def __init__(self, radius: int, chunks: int = 4) -> None:
        if not 0 <= radius < BITS:
            raise ValueError(f"radius must be in [0, 63], got {radius}")
        self.radius = radius
        self._widths = chunk_widths(chunks)
        self._shifts = [sum(self._widths[:i]) for i in range(chunks)]
        chunk_radius = radius // chunks
        self._masks = [flip_masks(w, chunk_radius) for w in self._widths]
        self._tables: list[dict[int, list[tuple[int, Hashable]]]] = [defaultdict(list) for _ in range(chunks)]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _chunks(self, h: int) -> Iterator[tuple[int, int]]:
        for i, (shift, width) in enumerate(zip(self._shifts, self._widths, strict=True)):
            yield i, (h >> shift) & ((1 << width) - 1)

    def add(self, h: int, item: Hashable) -> None:
        for i, value in self._chunks(h):
            self._tables[i][value].append((h, item))
        self._size += 1

    def query(self, h: int, radius: int | None = None) -> list[tuple[Hashable, int]]:
        """Items within ``radius`` (default: the index radius, the maximum) of ``h``, nearest first."""
        radius = self.radius if radius is None else radius
        if radius > self.radius:
            raise ValueError(f"index built for radius {self.radius}, asked {radius}")
        found: dict[Hashable, int] = {}
        for i, value in self._chunks(h):
            table = self._tables[i]
            for mask in self._masks[i]:
                for other, item in table.get(value ^ mask, ()):
                    if item not in found:
                        d = (h ^ other).bit_count()
                        if d <= radius:
                            found[item] = d
        return sorted(found.items(), key=lambda kv: (kv[1], str(kv[0])))


# --------------------------------------------------------------------------- batch search


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def all_pairs(hashes: np.ndarray, radius: int, block: int = 2048) -> np.ndarray:
    """Quadratic baseline: every (i, j, distance) with i < j and distance <= radius."""
    h = np.asarray(hashes, dtype=np.uint64)
    out = []
    for start in range(0, len(h), block):
        rows = h[start : start + block]
        d = _popcount(rows[:, None] ^ h[None, :])
        i, j = np.nonzero(d <= radius)
        i = i + start
        keep = i < j
        out.append(np.stack([i[keep], j[keep], d[i[keep] - start, j[keep]]], axis=1))
    return _sorted_pairs(np.concatenate(out) if out else np.empty((0, 3), dtype=np.int64))


def _sorted_pairs(pairs: np.ndarray) -> np.ndarray:
    pairs = pairs.astype(np.int64, copy=False).reshape(-1, 3)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) else pairs


def plan(n: int, radius: int) -> tuple[int, int]:
    """Pick (chunks, chunk radius) minimising estimated work for ``n`` random hashes.

    Work per flip pattern is one pass over the items and the table, plus the candidate pairs it
    yields (about n^2 / 2^width); more chunks mean fewer bits each, fewer patterns, more candidates.
    """
    best: tuple[float, int, int] | None = None
    for m in range(1, max(radius + 2, 9)):
        widths = chunk_widths(m)
        if max(widths) > 24:
            continue
        r = radius // m
        cost = 0.0
        for w in widths:
            patterns = sum(comb(w, k) for k in range(r + 1))
            cost += patterns * (n + n * n / 2.0**w) + 2.0**w
        if best is None or cost < best[0]:
            best = (cost, m, r)
    assert best is not None, "radius too large for chunked search"
    return best[1], best[2]


def _expand(starts_a: np.ndarray, counts_a: np.ndarray, starts_b: np.ndarray, counts_b: np.ndarray) -> tuple[
    np.ndarray, np.ndarray
]:
    """Cartesian products of index ranges [sa, sa+ca) x [sb, sb+cb), all groups at once."""
    sizes = counts_a * counts_b
    total = int(sizes.sum())
    if total == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    group = np.repeat(np.arange(len(sizes)), sizes)
    offsets = np.cumsum(sizes) - sizes
    local = np.arange(total, dtype=np.int64) - offsets[group]
    cb = counts_b[group]
    return starts_a[group] + local // cb, starts_b[group] + local % cb


def near_pairs(hashes: np.ndarray, radius: int, max_pairs_per_step: int = 4_000_000) -> np.ndarray:
    """Every (i, j, distance) with i < j and Hamming distance <= radius, sorted; same result as
    :func:`all_pairs` without the quadratic work."""
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2:
        return np.empty((0, 3), dtype=np.int64)
    m, r = plan(n, radius)
    found = []
    shift = 0
    for width in chunk_widths(m):
        keys = ((h >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)
        shift += width
        order = np.argsort(keys, kind="stable")
        hs = h[order]  # hashes in bucket order: candidate pairs are verified without gathering twice
        counts = np.bincount(keys, minlength=1 << width)
        starts = np.cumsum(counts) - counts
        occupied = np.nonzero(counts)[0]
        for mask in flip_masks(width, r):
            partner = occupied ^ mask
            ok = counts[partner] > 0
            if mask:  # each unordered bucket pair once: the smaller key first
                ok &= partner > occupied
            ka, kb = occupied[ok], partner[ok]
            # bound memory: expand the bucket pairs in slices of about max_pairs_per_step pairs
            sizes = counts[ka] * counts[kb]
            bounds = np.searchsorted(np.cumsum(sizes), np.arange(max_pairs_per_step, int(sizes.sum()) + 1,
                                                                  max_pairs_per_step), side="right")
            for part in np.split(np.arange(len(ka)), bounds):
                a, b = _expand(starts[ka[part]], counts[ka[part]], starts[kb[part]], counts[kb[part]])
                if not mask:
                    keep = a < b
                    a, b = a[keep], b[keep]
                d = _popcount(hs[a] ^ hs[b])
                close = d <= radius
                if close.any():
                    i, j = order[a[close]], order[b[close]]
                    lo, hi = np.minimum(i, j), np.maximum(i, j)
                    found.append(np.stack([lo, hi, d[close].astype(np.int64)], axis=1))
    if not found:
        return np.empty((0, 3), dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)  # a pair can match in several chunks
    return _sorted_pairs(pairs)

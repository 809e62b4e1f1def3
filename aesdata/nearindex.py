"""Exact Hamming-radius search over 64-bit perceptual hashes, batch by batch, without comparing every pair.

Multi-index hashing (Norouzi et al.) with the general pigeonhole principle: split the 64 bits into
``m`` chunks and give chunk ``i`` a threshold ``t_i`` with ``sum(t_i + 1) >= radius + 1``. If two hashes
differ in at most ``radius`` bits, some chunk ``i`` differs in at most ``t_i`` bits (otherwise they would
differ in at least ``sum(t_i + 1)``), so every close pair is found by probing, for each chunk, the
buckets within ``t_i`` flips of the query's chunk value, then verifying all 64 bits. Nothing is
approximate: a pair is either verified or provably too far.

Layout: the stored hashes are bucket-sorted per chunk into flat arrays (a counting sort: an offsets table
of ``2**width`` entries and the hashes themselves in bucket order, so a probe reads one contiguous run).
A batch's probes are sorted by bucket before any is read (:func:`aesdata.nearkernels.probe_order`), so
each chunk's table is swept forward once per batch, buckets prefetched ahead, instead of one cache miss
per probe. Many queries at once (a rebuild's batches) take a join (:func:`aesdata.nearkernels.join_tables`):
the queries are bucket-sorted too and each stored bucket's run is read once for all the queries that probe
it, so the search is bound by popcounts instead of memory. Hashes live in levels: a main level, a middle
one over the hashes added since the main level was built (rebuilt, with its own plan, whenever the tail
outgrows ``16 * sqrt(middle)``, or before a search with many queries), and the tail, searched by brute
force; the main level is rebuilt over everything once the middle one passes ``MID_FRACTION`` of it. So a
rebuild sorts at most an eighth of the index, except every eighth of growth.
The kernels (:mod:`aesdata.nearkernels`) are compiled with numba (popcount is one instruction).

* :class:`NearIndex` holds the hashes ingest keeps; :meth:`NearIndex.assign` is the one call ingest and
  ``aesdata dupes --rebuild`` make per batch: it decides which new hashes are near-duplicates and which
  become sources, with their links, exactly as if the batch were taken one image at a time. Ingest asks
  for the decisions alone (a search within the near-duplicate radius, on tables planned for the link
  radius: :meth:`_Tables.probes` narrows the thresholds) and searches the links of its new sources
  through :meth:`NearIndex.links_of` in batches of tens of thousands, where the join kernel pays.
* :func:`all_pairs` is the quadratic baseline the tests and the benchmark compare with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import combinations
from math import comb, isqrt, log2
from types import ModuleType

import numpy as np

BITS = 64
MAX_WIDTH = 20  # offsets table of 1M int32 per chunk at most (4 MB): a 22-bit one made each probe 2-3x dearer
TAIL_MIN = 2048
TAIL_SCALE = 16
MID_FRACTION = 0.125
# Relative costs in the cost model, fitted by least squares on one-chunk tables at 100k-2M hashes on 2
# shared cores (about 1.3-1.9 ns per candidate, 22-25 ns per probe): a probe is its share of the batch's
# probe sort, two offsets and the start of a bucket's run (prefetched), a candidate a streamed read and a
# popcount; a brute-force comparison the same from cache, without the bucket bookkeeping.
COST_PROBE, COST_CANDIDATE, COST_BRUTE = 14.0, 1.0, 0.4
COST_SORT = 100.0  # a hash's share of a level build (four counting sorts, about 25 ns each), same units


# --------------------------------------------------------------------------- running the compiled kernels


PARALLEL_WORK = 20_000_000  # estimated operations below which a call runs on one thread


@contextmanager
def _threads(work: float) -> Iterator[None]:
    """One thread for small calls: a parallel region's start and barrier cost more than they save there,
    and far more on a busy machine, where the slowest thread may not be scheduled for a while."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(before if work >= PARALLEL_WORK else 1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _kernels() -> ModuleType:
    from aesdata import nearkernels

    return nearkernels


JOIN_PROBES = 8  # a join pays once its queries' probes reach 1/8 of the (bucket, flip) pairs it walks
JOIN_BATCH = 1 << 19  # most queries per join call: 12 B each, and 8 B per thread for a bucket's group


class _Crowded(Exception):
    """More close pairs than a search was allowed to hold."""


def _search_level(t: _Tables, queries: np.ndarray, radius: int,
                  most: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, position, distance) of every hash of one level within ``radius`` of the queries; searched
    again with room for all of them when some segment found more matches than it had slots for
    (:class:`_Crowded` instead of that second search when they are more than ``most``).

    Many queries (a rebuild's batches) take the join kernel, which reads each bucket's run once for all
    the queries probing it; the few of an ingest batch take the probe sweep (measured break-even at 2M
    hashes, 13/17/17/17 bits: about 16k queries, where the join walks 8 (bucket, flip) pairs per probe).
    """
    import numba

    if len(queries) > JOIN_BATCH:  # the join's buffers grow with its queries: bounded slices
        starts = range(0, len(queries), JOIN_BATCH)
        parts = [_search_level(t, queries[s : s + JOIN_BATCH], radius, most) for s in starts]
        return (np.concatenate([qi + s for (qi, _, _), s in zip(parts, starts, strict=True)]),
                np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))
    p = t.probes(radius)
    join = JOIN_PROBES * len(queries) * len(p.flips) >= p.walked
    kernel = _kernels().join_tables if join else _kernels().search_tables
    work = len(queries) * p.cost
    segments = numba.get_num_threads() if work >= PARALLEL_WORK else 1
    slots = 64 + 8 * len(queries) // segments
    while True:
        with _threads(work):
            counts, found = kernel(queries, radius, t.shifts, t.widths, p.thresholds, p.flips, p.flip_start,
                                   t.offsets, t.off_start, t.by_bucket, t.position, t.size, segments, slots)
        if counts.max() <= slots:
            break
        if most is not None and counts.sum() > most:
            raise _Crowded
        slots = int(counts.max())
    qi, pos, d = (np.concatenate([found[s, i, :c] for s, c in enumerate(counts)]) for i in range(3))
    return qi, pos, d


def _search_brute(queries: np.ndarray, hashes: np.ndarray, radius: int, before: int,
                  first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, position, distance) by comparing every pair (``before >= 0``: only hashes earlier than
    input ``before + i``, for pairs within a batch); ``hashes[j]`` has position ``first + j``."""
    slots = 8
    while True:
        with _threads(len(queries) * len(hashes)):
            counts, found, dist = _kernels().search_brute(queries, hashes, radius, before, slots)
        if len(counts) == 0 or counts.max() <= slots:
            break
        slots = int(counts.max())
    keep = np.arange(slots)[None, :] < counts[:, None]
    qi = np.broadcast_to(np.arange(len(queries))[:, None], keep.shape)[keep]
    return qi, found[keep] + first, dist[keep]


# --------------------------------------------------------------------------- planning


def flip_masks(width: int, radius: int) -> list[int]:
    """Every ``width``-bit mask with at most ``radius`` bits set (0 first)."""
    return [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(width), r)]


@cache
def _probes(width: int, t: int) -> int:
    return sum(comb(width, k) for k in range(t + 1))


@dataclass(frozen=True)
class Plan:
    """Chunk widths and per-chunk thresholds (``-1``: chunk not probed), or brute force (no chunks)."""

    widths: tuple[int, ...]  # from the low bits up, 64 in all
    thresholds: tuple[int, ...]
    cost: float  # estimated operations per query

    @property
    def brute(self) -> bool:
        return not self.widths


def plan(n: int, radius: int) -> Plan:
    """The chunking for ``n`` stored hashes (planned once per quarter-octave of ``n``: rebuilds are frequent)."""
    return _plan(round(4 * log2(max(n, 1))), radius, MAX_WIDTH, COST_PROBE, COST_CANDIDATE, COST_BRUTE)


@lru_cache(maxsize=256)
def _plan(quarter_octaves: int, radius: int, max_width: int, cost_probe: float, cost_candidate: float,
          cost_brute: float) -> Plan:
    """The chunking with the least estimated work per query against ``n`` uniform hashes.

    A chunk of ``w`` bits probed with threshold ``t`` costs ``probes(w, t)`` random bucket reads, each
    yielding about ``n / 2**w`` candidates to verify. Widths and thresholds are chosen together (dynamic
    programme over bits used and pigeonhole units ``t + 1`` still needed); brute force when cheaper.
    """

    n = 2.0 ** (quarter_octaves / 4)
    units = radius + 1
    chunk = np.full((max_width + 1, units), np.inf)  # cost of one chunk of w bits at threshold t
    for w in range(1, max_width + 1):
        for t in range(min(w, units)):
            chunk[w, t] = _probes(w, t) * (cost_probe + cost_candidate * n / 2.0**w)
    # best[u, b]: least cost of b bits still to cut with u units still needed (0 units: the rest unprobed)
    best = np.full((units + 1, BITS + 1), np.inf)
    best[0] = 0.0
    pick = np.zeros((units + 1, BITS + 1, 2), np.int64)
    for u in range(1, units + 1):
        for w in range(1, max_width + 1):
            for t in range(min(w, u)):
                cost = chunk[w, t] + best[u - t - 1, : BITS + 1 - w]  # for b = w..BITS
                better = cost < best[u, w:]
                best[u, w:][better] = cost[better]
                pick[u, w:][better] = (w, t)
    chunks, bits, u = [], BITS, units
    while u > 0:
        w, t = (int(x) for x in pick[u, bits])
        chunks.append((w, t))
        bits, u = bits - w, u - t - 1
    if bits:
        chunks.append((bits, -1))
    cost = float(best[units, BITS])
    if cost >= cost_brute * n:
        return Plan((), (), cost_brute * n)
    return Plan(tuple(w for w, _ in chunks), tuple(t for _, t in chunks), cost)


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class _Probes:
    """What a search at one radius probes in a level's tables: per probed chunk a threshold (``-1``: not
    probed at this radius) and its flips (those of at most that many bits: a prefix of the chunk's)."""

    thresholds: np.ndarray
    flips: np.ndarray
    flip_start: np.ndarray
    cost: float  # estimated operations per query
    walked: int  # (bucket, flip) pairs a join walks: every bucket of every probed chunk, with each of its flips


def _chunk_cost(width: int, t: int, n: int) -> float:
    return _probes(width, t) * (COST_PROBE + COST_CANDIDATE * n / 2.0**width) if t >= 0 else 0.0


def narrowed(widths: tuple[int, ...], thresholds: tuple[int, ...], n: int, radius: int) -> tuple[int, ...]:
    """The cheapest thresholds, at most the tables' own, that still find every pair within ``radius``
    (``sum(t_i + 1) >= radius + 1``): a search below the index radius (ingest's near-duplicate decision,
    radius 6 on tables for 10) probes far fewer buckets."""
    need = radius + 1
    best: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}  # units reached (capped) -> cheapest way
    for w, top in zip(widths, thresholds, strict=True):
        step: dict[int, tuple[float, tuple[int, ...]]] = {}
        for units, (cost, chosen) in best.items():
            for t in range(-1, top + 1):
                key, c = min(need, units + t + 1), cost + _chunk_cost(w, t, n)
                if key not in step or c < step[key][0]:
                    step[key] = (c, (*chosen, t))
        best = step
    return best[need][1]


@dataclass
class _Tables:
    """One level: hashes at positions ``[first, first + size)`` bucket-sorted per probed chunk."""

    plan: Plan
    first: int
    size: int
    shifts: np.ndarray
    widths: np.ndarray
    thresholds: np.ndarray
    flips: np.ndarray
    flip_start: np.ndarray
    offsets: np.ndarray
    off_start: np.ndarray
    by_bucket: np.ndarray
    position: np.ndarray
    _by_radius: dict[int, _Probes] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.first + self.size

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.by_bucket.nbytes + self.position.nbytes

    def probes(self, radius: int) -> _Probes:
        """The probes of a search within ``radius`` (at most the radius the tables were planned for)."""
        if radius not in self._by_radius:
            widths, tops = tuple(int(w) for w in self.widths), tuple(int(t) for t in self.thresholds)
            ts = narrowed(widths, tops, self.size, radius)
            flips, starts = [], [0]
            for c, t in enumerate(ts):
                begin = int(self.flip_start[c])
                flips.extend(self.flips[begin : begin + (_probes(widths[c], t) if t >= 0 else 0)])
                starts.append(len(flips))
            self._by_radius[radius] = _Probes(
                thresholds=np.array(ts, np.int64), flips=np.array(flips, np.int64),
                flip_start=np.array(starts, np.int64),
                cost=sum(_chunk_cost(w, t, self.size) for w, t in zip(widths, ts, strict=True)),
                walked=sum((1 << w) * (_probes(w, t) if t >= 0 else 0) for w, t in zip(widths, ts, strict=True)))
        return self._by_radius[radius]


def _build_tables(hashes: np.ndarray, first: int, radius: int) -> _Tables:
    p = plan(len(hashes), radius)
    shifts = np.cumsum([0, *p.widths[:-1]])
    probed = [(int(s), w, t) for s, w, t in zip(shifts, p.widths, p.thresholds, strict=True) if t >= 0]
    n = len(hashes)
    by_bucket = np.empty(n * len(probed), np.uint64)
    position = np.empty(n * len(probed), np.int32)
    offsets, flips, starts, off_start = [], [], [0], [0]
    for c, (shift, width, t) in enumerate(probed):
        part = slice(c * n, (c + 1) * n)
        offsets.append(_kernels().bucket_sort(hashes, first, shift, width, by_bucket[part], position[part]))
        flips.extend(flip_masks(width, t))
        starts.append(len(flips))
        off_start.append(off_start[-1] + len(offsets[-1]))
    column = lambda i: np.array([c[i] for c in probed], np.int64)  # noqa: E731
    return _Tables(
        plan=p, first=first, size=n, shifts=column(0), widths=column(1), thresholds=column(2),
        flips=np.array(flips, np.int64), flip_start=np.array(starts, np.int64), offsets=np.concatenate(offsets),
        off_start=np.array(off_start[:-1], np.int64), by_bucket=by_bucket, position=position,
    )


@dataclass(frozen=True)
class Assignment:
    """What :meth:`NearIndex.assign` decided for a batch, one entry per input hash.

    ``position``: the index position given to a new source, ``-1`` for a near-duplicate;
    ``near_of`` / ``distance``: the nearest source (smallest distance, then smallest position) a
    near-duplicate belongs to, ``-1`` for a source; ``links``: (input, source position, distance) for
    every earlier source within the index radius of each new source.
    """

    position: np.ndarray
    near_of: np.ndarray
    distance: np.ndarray
    links: tuple[np.ndarray, np.ndarray, np.ndarray]


class NearIndex:
    """Stored 64-bit hashes (positions ``0..n-1`` in insertion order) searched within ``radius``.

    Up to two levels of tables and a tail: the main level (rebuilt when the level above it outgrows
    ``MID_FRACTION`` of it), a middle one over the hashes since (rebuilt when the tail outgrows its
    bound), and the tail, searched by brute force. Each level has its own plan for its own size.
    """

    def __init__(self, radius: int, hashes: np.ndarray | None = None, *, tail: int | None = None) -> None:
        """``tail``: most hashes left outside the tables (default: ``max(TAIL_MIN, TAIL_SCALE * sqrt(m))``,
        ``m`` the middle level's size)."""
        if not 0 <= radius < BITS:
            raise ValueError(f"radius must be in [0, 63], got {radius}")
        self.radius = radius
        self._tail = tail
        self._hashes = np.empty(1024, np.uint64)
        self._n = 0
        self._levels: list[_Tables] = []
        if hashes is not None:
            self.add(hashes)

    def __len__(self) -> int:
        return self._n

    @property
    def hashes(self) -> np.ndarray:
        return self._hashes[: self._n]

    @property
    def levels(self) -> list[_Tables]:
        return list(self._levels)

    @property
    def nbytes(self) -> int:
        """Memory held by the index's arrays."""
        return self._hashes.nbytes + sum(t.nbytes for t in self._levels)

    def add(self, hashes: np.ndarray) -> None:
        """Append hashes (positions follow on); tables are rebuilt as the tail and middle level grow."""
        h = np.asarray(hashes, dtype=np.uint64)
        if self._n + len(h) > len(self._hashes):
            grown = np.empty(max(2 * len(self._hashes), self._n + len(h)), np.uint64)
            grown[: self._n] = self._hashes[: self._n]
            self._hashes = grown
        self._hashes[self._n : self._n + len(h)] = h
        self._n += len(h)
        middle = self._n - self._main  # what a new middle level would hold
        limit = max(TAIL_MIN, TAIL_SCALE * isqrt(middle)) if self._tail is None else self._tail
        if self._n - self._indexed > limit:
            self._rebuild()

    @property
    def _main(self) -> int:
        return self._levels[0].size if self._levels else 0

    @property
    def _indexed(self) -> int:
        return self._levels[-1].end if self._levels else 0

    def _rebuild(self) -> None:
        """Take the tail into the tables: a new middle level, or a new main level once the middle one
        would pass ``MID_FRACTION`` of it."""
        main = self._main
        middle = self._n - main
        if middle > MID_FRACTION * main:  # a new main level over everything (the old ones freed first)
            if not plan(self._n, self.radius).brute:
                self._levels = []
                self._levels = [_build_tables(self.hashes, 0, self.radius)]
        elif not plan(middle, self.radius).brute:
            self._levels = self._levels[:1]
            self._levels.append(_build_tables(self._hashes[main : self._n], main, self.radius))

    def search(self, queries: np.ndarray, radius: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every stored hash within ``radius`` (default and maximum: the index radius) of each query,
        as arrays (query, position, distance) sorted by query, distance, position."""
        radius = self.radius if radius is None else radius
        if radius > self.radius:
            raise ValueError(f"index built for radius {self.radius}, asked {radius}")
        q = np.ascontiguousarray(queries, dtype=np.uint64)
        if len(q) * (self._n - self._indexed) * COST_BRUTE > COST_SORT * (self._n - self._main):
            self._rebuild()  # many queries (a rebuild's batch): cheaper to index the tail than to scan it
        parts = [_search_level(t, q, radius) for t in self._levels]
        start = self._indexed
        if self._n > start:
            parts.append(_search_brute(q, self._hashes[start : self._n], radius, -1, start))
        return _sorted(parts)

    def assign(self, hashes: np.ndarray, near_radius: int, pinned: np.ndarray | None = None, *,
               links: bool = True) -> Assignment:
        """Decide a batch as if its hashes arrived one by one, then add its new sources.

        Hash ``k`` is a near-duplicate when its nearest source (stored, or earlier in the batch and itself
        made a source) is within ``near_radius``; otherwise it becomes a source linked to every earlier
        source within the index radius. ``pinned`` hashes become sources whatever their distance (a
        rebuild keeps sources that already have samples). ``links=False`` decides only (searching within
        ``near_radius``, far cheaper than the index radius) and leaves the links to :meth:`links_of`.
        """
        if near_radius > self.radius:
            raise ValueError(f"near radius {near_radius} exceeds the index radius {self.radius}")
        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        k = len(h)
        base = self._n
        pin = np.zeros(k, np.bool_) if pinned is None else np.ascontiguousarray(pinned, dtype=np.bool_)
        radius = self.radius if links else near_radius
        try:
            iq, ipos, idist = _within(h, radius, CROWDED * k)
        except _Crowded:  # near-identical hashes by the thousand: the halves, one after the other, decide alike
            half = k // 2
            return _joined(self.assign(h[:half], near_radius, pin[:half], links=links),
                           self.assign(h[half:], near_radius, pin[half:], links=links), half)
        sq, spos, sd = self.search(h, radius)
        is_source, near_of, near_d = _kernels().decide(k, sq, spos, sd, iq, ipos, idist, base, near_radius, pin)
        # batch references become positions: new sources are numbered in input order after the stored ones
        position = np.where(is_source, base + np.cumsum(is_source) - 1, -1)
        from_batch = near_of >= base
        near_of[from_batch] = position[near_of[from_batch] - base]
        self.add(h[is_source])
        if not links:
            return Assignment(position, near_of, near_d, _sorted([]))
        ok = is_source[iq] & is_source[ipos]
        link_q = np.concatenate([sq[is_source[sq]], iq[ok]])
        link_p = np.concatenate([spos[is_source[sq]], position[ipos[ok]]])
        link_d = np.concatenate([sd[is_source[sq]], idist[ok]])
        order = np.lexsort((link_p, link_q))
        return Assignment(position, near_of, near_d, (link_q[order], link_p[order], link_d[order]))

    def links_of(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every pair of stored hashes within the index radius with an end in ``positions``, once each, as
        (position, other position, distance), the larger position first when both ends are in
        ``positions``. Sources decided with ``assign(links=False)`` get their links here, many at a time:
        a call with tens of thousands of queries takes the join kernel, far cheaper per query than
        ingest's calls of a few hundred."""
        p = np.unique(np.asarray(positions, dtype=np.int64))
        qi, pos, d = self.search(self.hashes[p])
        mine = p[qi]
        keep = (pos != mine) & ((pos < mine) | ~np.isin(pos, p))
        return mine[keep], pos[keep], d[keep]


CROWDED = 16  # most close pairs per input within one assign() call before it takes its halves in turn
WITHIN_BRUTE = 512  # batches up to this size are searched against themselves pair by pair


def _within(h: np.ndarray, radius: int, most: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input, earlier input, distance) of every pair of the batch within ``radius``: pair by pair, or
    for a batch the planner would index (a rebuild's), through tables over the batch itself, holding at
    most ``most`` pairs (both ways: :class:`_Crowded` past that). Ingest's batches go pair by pair: their
    few thousand popcounts cost less than building tables (measured: 0.5 ms a call at 256)."""
    if len(h) <= WITHIN_BRUTE or plan(len(h), radius).brute:
        return _sorted([_search_brute(h, h, radius, 0, 0)])
    qi, pos, d = _search_level(_build_tables(h, 0, radius), h, radius, 2 * most)
    earlier = pos < qi
    return _sorted([(qi[earlier], pos[earlier], d[earlier])])


def _joined(a: Assignment, b: Assignment, offset: int) -> Assignment:
    """One batch's assignment from its two parts' (``b``'s inputs numbered from ``offset``)."""
    (aq, ap, ad), (bq, bp, bd) = a.links, b.links
    return Assignment(np.concatenate([a.position, b.position]), np.concatenate([a.near_of, b.near_of]),
                      np.concatenate([a.distance, b.distance]),
                      (np.concatenate([aq, bq + offset]), np.concatenate([ap, bp]), np.concatenate([ad, bd])))


def _sorted(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    qi, pos, d = (np.concatenate([p[i] for p in parts]).astype(np.int64) for i in range(3))
    order = np.lexsort((pos, d, qi))
    return qi[order], pos[order], d[order]


# --------------------------------------------------------------------------- baseline


def all_pairs(hashes: np.ndarray, radius: int, block: int = 2048) -> np.ndarray:
    """Quadratic baseline: every (i, j, distance) with i < j and distance <= radius, sorted."""
    h = np.asarray(hashes, dtype=np.uint64)
    out = [np.empty((0, 3), np.int64)]
    for start in range(0, len(h), block):
        rows = h[start : start + block]
        d = np.bitwise_count(rows[:, None] ^ h[None, :])
        i, j = np.nonzero(d <= radius)
        keep = i + start < j
        out.append(np.stack([i[keep] + start, j[keep], d[i[keep], j[keep]]], axis=1).astype(np.int64))
    pairs = np.concatenate(out)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]

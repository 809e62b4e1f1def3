"""Compiled kernels of :mod:`aesdata.nearindex` (numba), in their own module so that importing the
index, and the CLI above it, does not import numba: it is loaded on the first search.

Compiled code is cached on disk (``cache=True``): a process after the first loads it instead of
compiling again.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """One ``popcnt`` instruction (LLVM ctpop) on a uint64."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def prefetch(typingctx, arr, idx):  # type: ignore[no-untyped-def]
    """Ask the cache for ``arr[idx]`` ahead of its use (``llvm.prefetch``: a hint, it never faults)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                           "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(data, [args[1]]), i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@numba.njit(cache=True, nogil=True)
def bucket_sort(hashes, first, shift, width, by_bucket, position):  # type: ignore[no-untyped-def]
    """Counting sort of ``hashes`` by one chunk into ``by_bucket`` / ``position`` (``hashes[i]`` has
    position ``first + i``); returns the bucket offsets (``2**width + 1``)."""
    n = hashes.shape[0]
    size = 1 << width
    mask = np.uint64(size - 1)
    sh = np.uint64(shift)
    offsets = np.zeros(size + 1, np.int32)
    for i in range(n):
        offsets[np.int64((hashes[i] >> sh) & mask) + 1] += 1
    for b in range(size):
        offsets[b + 1] += offsets[b]
    fill = offsets[:size].copy()
    for i in range(n):
        k = np.int64((hashes[i] >> sh) & mask)
        j = fill[k]
        by_bucket[j] = hashes[i]
        position[j] = first + i
        fill[k] = j + 1
    return offsets


@numba.njit(cache=True, nogil=True)
def met_before(x, ci, shifts, widths, thresholds):  # type: ignore[no-untyped-def]
    """Whether a pair that differs by ``x`` meets the threshold of a chunk before ``ci``: it is reported
    from that chunk, so a pair close in several chunks is reported once."""
    for cj in range(ci):
        part = (x >> np.uint64(shifts[cj])) & np.uint64((1 << widths[cj]) - 1)
        if np.int64(popcount(part)) <= thresholds[cj]:
            return True
    return False


SORT_BITS = 12  # bins of the probe sort: 32 KB of counters, in L1; each bin's buckets are a small region
AHEAD = 16  # probes between a bucket's prefetch and its scan (measured: 8 and 32 do a little worse)


@numba.njit(cache=True, nogil=True)
def probe_order(queries, shifts, widths, flips, flip_start):  # type: ignore[no-untyped-def]
    """Every probe of the batch as (bucket, query), chunk after chunk (``start``: where each chunk's
    begin) and within a chunk by the bucket's top bits (a counting sort into at most ``2**SORT_BITS``
    bins): the tables are then read in one forward sweep per chunk instead of at random."""
    q = queries.shape[0]
    m = shifts.shape[0]
    start = np.zeros(m + 1, np.int64)
    for ci in range(m):
        start[ci + 1] = start[ci] + q * (flip_start[ci + 1] - flip_start[ci])
    bucket = np.empty(start[m], np.int32)
    query = np.empty(start[m], np.int32)
    keys = np.empty(q, np.int64)
    for ci in range(m):
        width = widths[ci]
        f0, f1 = flip_start[ci], flip_start[ci + 1]
        sort_bits = 0
        while sort_bits < min(width, SORT_BITS) and (1 << sort_bits) < start[ci + 1] - start[ci]:
            sort_bits += 1
        down = width - sort_bits
        fill = np.zeros((1 << sort_bits) + 1, np.int64)
        mask = np.uint64((1 << width) - 1)
        sh = np.uint64(shifts[ci])
        for qi in range(q):
            keys[qi] = np.int64((queries[qi] >> sh) & mask)
            for fi in range(f0, f1):
                fill[((keys[qi] ^ flips[fi]) >> down) + 1] += 1
        fill[0] = start[ci]
        for b in range(1 << sort_bits):
            fill[b + 1] += fill[b]
        for qi in range(q):
            for fi in range(f0, f1):
                b = keys[qi] ^ flips[fi]
                s = fill[b >> down]
                fill[b >> down] = s + 1
                bucket[s] = b
                query[s] = qi
    return bucket, query, start


@numba.njit(cache=True, parallel=True, nogil=True)
def search_tables(queries, radius, shifts, widths, thresholds, flips, flip_start, offsets, off_start,
                  by_bucket, position, size, segments, slots):  # type: ignore[no-untyped-def]
    """Stored hashes within ``radius`` of each query: per segment of the probe order, the number of
    matches and the first ``slots`` of them as (query, position, distance).

    A pair close in several chunks is reported once, from the first chunk whose threshold it meets.
    """
    bucket, query, start = probe_order(queries, shifts, widths, flips, flip_start)
    total = bucket.shape[0]
    m = shifts.shape[0]
    counts = np.zeros(segments, np.int64)
    found = np.empty((segments, 3, slots), np.int64)
    for s in numba.prange(segments):
        c = 0
        lo, hi = total * s // segments, total * (s + 1) // segments
        for ci in range(m):
            ob = off_start[ci]
            hb = ci * size
            end = min(hi, start[ci + 1])
            for k in range(max(lo, start[ci]), end):
                if k + AHEAD < end:  # the bucket sweep has gaps the hardware prefetcher does not follow
                    prefetch(by_bucket, hb + offsets[ob + bucket[k + AHEAD]])
                h = queries[query[k]]
                b = ob + bucket[k]
                for j in range(hb + offsets[b], hb + offsets[b + 1]):
                    x = h ^ by_bucket[j]
                    d = np.int64(popcount(x))
                    if d > radius or met_before(x, ci, shifts, widths, thresholds):
                        continue
                    if c < slots:
                        found[s, 0, c] = query[k]
                        found[s, 1, c] = position[j]
                        found[s, 2, c] = d
                    c += 1
        counts[s] = c
    return counts, found


GATHER = 8  # a query run's elements copied whatever its length: a fixed trip count (8: 3% faster than 4 at 2M)


@numba.njit(cache=True, nogil=True)
def _member(t, b, flips, f0, f1, qoff):  # type: ignore[no-untyped-def]
    """Where, in the chunk-sorted queries, element ``t`` of bucket ``b``'s gathered group came from."""
    for fi in range(f0, f1):
        bb = b ^ flips[fi]
        run = qoff[bb + 1] - qoff[bb]
        if t < run:
            return qoff[bb] + t
        t -= run
    return -1


@numba.njit(cache=True, parallel=True, nogil=True)
def join_tables(queries, radius, shifts, widths, thresholds, flips, flip_start, offsets, off_start,
                by_bucket, position, size, segments, slots):  # type: ignore[no-untyped-def]
    """:func:`search_tables` for many queries at once (same results): per chunk the queries are
    bucket-sorted too, then each stored bucket's run is read once, from a forward sweep over the table,
    and checked (a vectorised count first) against the group of every query that probes it, gathered
    from the runs of the buckets within the chunk's flips. A bucket's run is read once per call instead
    of once per probe: far fewer bytes from memory when many queries probe each bucket."""
    q = queries.shape[0]
    m = shifts.shape[0]
    counts = np.zeros(segments, np.int64)
    found = np.empty((segments, 3, slots), np.int64)
    qval = np.zeros(q + GATHER, np.uint64)  # the padding is read (never used) by a run's fixed copy
    qidx = np.empty(q, np.int32)
    for ci in range(m):
        qoff = bucket_sort(queries, 0, shifts[ci], widths[ci], qval[:q], qidx)
        buckets = 1 << widths[ci]
        ob, hb = off_start[ci], ci * size
        f0, f1 = flip_start[ci], flip_start[ci + 1]
        for s in numba.prange(segments):
            group = np.empty(q + GATHER, np.uint64)  # a query probes a bucket at most once
            c = counts[s]
            for b in range(buckets * s // segments, buckets * (s + 1) // segments):
                e0, e1 = hb + offsets[ob + b], hb + offsets[ob + b + 1]
                if e0 == e1:
                    continue
                g = 0
                for fi in range(f0, f1):
                    bb = b ^ flips[fi]
                    r0, r1 = qoff[bb], qoff[bb + 1]
                    for i in range(GATHER):
                        group[g + i] = qval[r0 + i]
                    for i in range(r0 + GATHER, r1):
                        group[g + i - r0] = qval[i]
                    g += r1 - r0
                if g == 0:
                    continue
                for j in range(e0, e1):
                    e = by_bucket[j]
                    if count_within(e, group, g, radius) == 0:
                        continue
                    for t in range(g):
                        x = e ^ group[t]
                        d = np.int64(popcount(x))
                        if d > radius or met_before(x, ci, shifts, widths, thresholds):
                            continue
                        if c < slots:
                            found[s, 0, c] = qidx[_member(t, b, flips, f0, f1, qoff)]
                            found[s, 1, c] = position[j]
                            found[s, 2, c] = d
                        c += 1
            counts[s] = c
    return counts, found


@numba.njit(cache=True, nogil=True, fastmath=True)
def count_within(h, hashes, end, radius):  # type: ignore[no-untyped-def]
    """How many of ``hashes[:end]`` are within ``radius`` of ``h``: a branch-free loop LLVM vectorises."""
    r = np.uint64(radius)
    c = np.uint64(0)
    for j in range(end):
        c += np.uint64(popcount(h ^ hashes[j]) <= r)
    return np.int64(c)


@numba.njit(cache=True, parallel=True, nogil=True)
def search_brute(queries, hashes, radius, before, slots):  # type: ignore[no-untyped-def]
    """Per query ``i``: hashes[j] within ``radius`` (j < before + i when ``before >= 0``: earlier ones only).
    Counted first (vectorised); only a query with matches is scanned again to record them."""
    q = queries.shape[0]
    counts = np.zeros(q, np.int64)
    found = np.empty((q, slots), np.int64)
    dist = np.empty((q, slots), np.int64)
    for qi in numba.prange(q):
        h = queries[qi]
        end = hashes.shape[0] if before < 0 else min(hashes.shape[0], before + qi)
        counts[qi] = count_within(h, hashes, end, radius)
        if counts[qi] == 0:
            continue
        c = 0
        for j in range(end):
            d = np.int64(popcount(h ^ hashes[j]))
            if d <= radius:
                if c < slots:
                    found[qi, c] = j
                    dist[qi, c] = d
                c += 1
    return counts, found, dist


@numba.njit(cache=True, nogil=True)
def decide(k, sq, spos, sd, iq, ipos, idist, base, near_radius, pinned):  # type: ignore[no-untyped-def]
    """Inputs ``0..k-1`` taken in order: near-duplicate of the nearest source within ``near_radius`` (stored:
    ``sq, spos, sd``; earlier in the batch and itself a source: ``iq, ipos, idist``; both sorted by input,
    then distance, then position), else a source. Ties go to the smallest position; batch inputs rank
    after every stored position, as ``base + index``. Returns (is_source, near_of, distance)."""
    is_source = np.ones(k, np.bool_)
    near_of = np.full(k, -1, np.int64)
    near_d = np.full(k, -1, np.int64)
    a = 0
    b = 0
    for i in range(k):
        best_d, best_ref = 65, -1
        if a < sq.shape[0] and sq[a] == i:
            best_d, best_ref = sd[a], spos[a]
        while a < sq.shape[0] and sq[a] == i:
            a += 1
        while b < iq.shape[0] and iq[b] == i:
            other = ipos[b]
            ref = base + other
            if is_source[other] and (idist[b] < best_d or (idist[b] == best_d and ref < best_ref)):
                best_d, best_ref = idist[b], ref
            b += 1
        if best_ref >= 0 and best_d <= near_radius and not pinned[i]:
            is_source[i] = False
            near_of[i] = best_ref
            near_d[i] = best_d
    return is_source, near_of, near_d

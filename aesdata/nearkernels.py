"""Compiled kernels of :mod:`aesdata.nearindex` (numba), in their own module so that importing the
index, and the CLI above it, does not import numba: it is loaded on the first search.

Compiled code is cached on disk (``cache=True``): a process after the first loads it instead of
compiling again.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):  # type: ignore[no-untyped-def]
    """One ``popcnt`` instruction (LLVM ctpop) on a uint64."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


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
def probe_order(queries, shifts, widths, flips, flip_start):
    """Every probe of the batch as (chunk, bucket, query), in chunk order and, within a chunk, in bucket
    order (a counting sort on the bucket's top bits, about one bin per probe): the tables are then read
    in one forward sweep per chunk instead of at random, so the bucket runs stream from memory."""
    q = queries.shape[0]
    m = shifts.shape[0]
    total = 0
    for ci in range(m):
        total += q * (flip_start[ci + 1] - flip_start[ci])
    bucket = np.empty(total, np.int64)
    query = np.empty(total, np.int32)
    chunk = np.empty(total, np.int32)
    keys = np.empty(q, np.int64)
    base = 0
    for ci in range(m):
        width = widths[ci]
        f0, f1 = flip_start[ci], flip_start[ci + 1]
        count = q * (f1 - f0)
        sort_bits = 1
        while sort_bits < width and (1 << sort_bits) < count:
            sort_bits += 1
        down = width - sort_bits
        fill = np.zeros((1 << sort_bits) + 1, np.int64)
        mask = np.uint64((1 << width) - 1)
        sh = np.uint64(shifts[ci])
        for qi in range(q):
            keys[qi] = np.int64((queries[qi] >> sh) & mask)
            for fi in range(f0, f1):
                fill[((keys[qi] ^ flips[fi]) >> down) + 1] += 1
        fill[0] = base
        for b in range(1 << sort_bits):
            fill[b + 1] += fill[b]
        for qi in range(q):
            for fi in range(f0, f1):
                b = keys[qi] ^ flips[fi]
                s = fill[b >> down]
                fill[b >> down] = s + 1
                bucket[s] = b
                query[s] = qi
                chunk[s] = ci
        base += count
    return bucket, query, chunk


@numba.njit(cache=True, parallel=True, nogil=True)
def search_tables(queries, radius, shifts, widths, thresholds, flips, flip_start, offsets, off_start,
                  by_bucket, position, size, segments, slots):  # type: ignore[no-untyped-def]
    """Stored hashes within ``radius`` of each query: per segment of the probe order, the number of
    matches and the first ``slots`` of them as (query, position, distance).

    A pair close in several chunks is reported once, from the first chunk whose threshold it meets.
    """
    bucket, query, chunk = probe_order(queries, shifts, widths, flips, flip_start)
    total = bucket.shape[0]
    counts = np.zeros(segments, np.int64)
    found = np.empty((segments, 3, slots), np.int64)
    for s in numba.prange(segments):
        c = 0
        for k in range(total * s // segments, total * (s + 1) // segments):
            ci = np.int64(chunk[k])
            h = queries[query[k]]
            ob = off_start[ci] + bucket[k]
            hb = ci * size
            for j in range(hb + offsets[ob], hb + offsets[ob + 1]):
                x = h ^ by_bucket[j]
                d = np.int64(popcount(x))
                if d > radius:
                    continue
                seen = False
                for cj in range(ci):
                    part = (x >> np.uint64(shifts[cj])) & np.uint64((1 << widths[cj]) - 1)
                    if np.int64(popcount(part)) <= thresholds[cj]:
                        seen = True
                        break
                if seen:
                    continue
                if c < slots:
                    found[s, 0, c] = query[k]
                    found[s, 1, c] = position[j]
                    found[s, 2, c] = d
                c += 1
        counts[s] = c
    return counts, found


@numba.njit(cache=True, parallel=True, nogil=True)
def search_brute(queries, hashes, radius, before, slots):  # type: ignore[no-untyped-def]
    """Per query ``i``: hashes[j] within ``radius`` (j < before + i when ``before >= 0``: earlier ones only)."""
    q = queries.shape[0]
    counts = np.zeros(q, np.int64)
    found = np.empty((q, slots), np.int64)
    dist = np.empty((q, slots), np.int64)
    for qi in numba.prange(q):
        h = queries[qi]
        end = hashes.shape[0] if before < 0 else min(hashes.shape[0], before + qi)
        c = 0
        for j in range(end):
            d = np.int64(popcount(h ^ hashes[j]))
            if d <= radius:
                if c < slots:
                    found[qi, c] = j
                    dist[qi, c] = d
                c += 1
        counts[qi] = c
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

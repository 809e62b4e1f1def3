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
def bucket_sort(hashes, shift, width):  # type: ignore[no-untyped-def]
    """Counting sort of ``hashes`` by one chunk: (offsets[2**width + 1], hashes, positions) in bucket order."""
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
    by_bucket = np.empty(n, np.uint64)
    position = np.empty(n, np.int32)
    for i in range(n):
        k = np.int64((hashes[i] >> sh) & mask)
        j = fill[k]
        by_bucket[j] = hashes[i]
        position[j] = i
        fill[k] = j + 1
    return offsets, by_bucket, position


@numba.njit(cache=True, parallel=True, nogil=True)
def search_tables(queries, radius, shifts, widths, thresholds, flips, flip_start, offsets, off_start,
                   by_bucket, position, n, slots):  # type: ignore[no-untyped-def]
    """Per query: count of stored hashes within ``radius`` and the first ``slots`` of them (position, d).

    A pair close in several chunks is reported once, from the first chunk whose threshold it meets.
    """
    q = queries.shape[0]
    m = shifts.shape[0]
    counts = np.zeros(q, np.int64)
    found = np.empty((q, slots), np.int64)
    dist = np.empty((q, slots), np.int64)
    for qi in numba.prange(q):
        h = queries[qi]
        c = 0
        for ci in range(m):
            sh = np.uint64(shifts[ci])
            key = np.int64((h >> sh) & np.uint64((1 << widths[ci]) - 1))
            ob = off_start[ci]
            hb = ci * n
            for fi in range(flip_start[ci], flip_start[ci + 1]):
                b = key ^ flips[fi]
                for j in range(offsets[ob + b], offsets[ob + b + 1]):
                    x = h ^ by_bucket[hb + j]
                    d = np.int64(popcount(x))
                    if d > radius:
                        continue
                    seen = False
                    for cj in range(ci):
                        tj = thresholds[cj]
                        part = (x >> np.uint64(shifts[cj])) & np.uint64((1 << widths[cj]) - 1)
                        if np.int64(popcount(part)) <= tj:
                            seen = True
                            break
                    if seen:
                        continue
                    if c < slots:
                        found[qi, c] = position[hb + j]
                        dist[qi, c] = d
                    c += 1
        counts[qi] = c
    return counts, found, dist


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

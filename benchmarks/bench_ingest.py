"""Ingest throughput and near-duplicate search scaling.

(a) ingest + hash throughput on generated 512x512 JPEGs: images/s with 1 worker and with all cores;
(b) near-duplicate search over random 64-bit hashes (radius 6): multi-index hashing at 10k, 100k and
    640k hashes against the all-pairs baseline at 10k, with time per hash to show the scaling.
Figures only: nothing here passes or fails on time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesdata.ingest import ingest  # noqa: E402
from aesdata.nearindex import all_pairs, near_pairs, plan  # noqa: E402
from aesdata.workspace import Workspace  # noqa: E402

N_IMAGES = int(os.environ.get("BENCH_INGEST_IMAGES", "200"))
SIZES = [int(s) for s in os.environ.get("BENCH_HASHES", "10000,100000,640000").split(",")]


def make_jpegs(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((512, 512), Image.Resampling.BICUBIC)
        img.save(folder / f"{i:05d}.jpg", quality=90)


def bench_ingest() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        make_jpegs(folder, N_IMAGES)
        print(f"ingest + hash, {N_IMAGES} generated 512x512 JPEGs")
        print(f"{'workers':>8} {'seconds':>9} {'images/s':>9} {'ratio':>7}")
        base = None
        for workers in (1, os.cpu_count() or 1):
            with Workspace.init(Path(tmp) / f"ws{workers}") as ws:
                t0 = time.perf_counter()
                summary = ingest(ws, [folder], workers=workers)
                dt = time.perf_counter() - t0
            rate = N_IMAGES / dt
            base = base or rate
            print(f"{workers:>8} {dt:>9.2f} {rate:>9.1f} {rate / base:>6.2f}x   (added {summary.added})")


def bench_search() -> None:
    rng = np.random.default_rng(1)
    print("\nnear-duplicate search, random 64-bit hashes, radius 6")
    print(f"{'hashes':>8} {'method':>10} {'plan':>8} {'seconds':>9} {'us/hash':>8} {'pairs':>6}")
    baseline = None
    for n in SIZES:
        h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
        if n == SIZES[0]:
            t0 = time.perf_counter()
            ref = all_pairs(h, 6)
            baseline = time.perf_counter() - t0
            print(f"{n:>8} {'all-pairs':>10} {'-':>8} {baseline:>9.3f} {baseline / n * 1e6:>8.2f} {len(ref):>6}")
        t0 = time.perf_counter()
        got = near_pairs(h, 6)
        dt = time.perf_counter() - t0
        m, r = plan(n, 6)
        note = f"  ({baseline / dt:.0f}x faster than all-pairs)" if n == SIZES[0] and baseline else ""
        print(f"{n:>8} {'MIH':>10} {f'{m}x{64 // m}b r{r}':>8} {dt:>9.3f} {dt / n * 1e6:>8.2f} {len(got):>6}{note}")
    print("target: 640k hashes in under 60 s on 2 cores; all-pairs would grow as n^2 "
          f"(~{baseline * (640_000 / SIZES[0]) ** 2:.0f} s at 640k by extrapolation)" if baseline else "")


if __name__ == "__main__":
    bench_ingest()
    bench_search()

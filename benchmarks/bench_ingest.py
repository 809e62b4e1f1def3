"""Ingest throughput, the near-duplicate search ingest runs, and ``--hf-dataset`` memory.

(a) ingest + hash throughput on generated 512x512 JPEGs: images/s with 1 worker and with all cores;
(b) the near-duplicate search exactly as ingest and ``aesdata dupes --rebuild`` call it: ingest's
    ``NearIndex.assign(links=False)`` on batches of ``ingest.BATCH`` hashes with ``links_of`` on every
    ``dedup.LINK_BATCH`` new sources and at the end, and a rebuild's ``assign`` on batches of
    ``dedup.BATCH`` (many queries per call, the join kernel), each batch searched against everything
    stored before it and added, at
    100k, 640k and 2M hashes, index radius 6 and 10 (``group_threshold``; near-duplicate radius 6),
    uniform random hashes and clustered ones (families of near copies, as photo sets have). Each case
    runs in a child process so its peak RSS is its own. The all-pairs numpy baseline is timed in the
    same run on a subsample and extrapolated as n^2 (labelled so); then the same search side by side
    with faiss's binary indexes (``IndexBinaryMultiHash``, exact at these settings, and the brute-force
    ``IndexBinaryFlat``), one thread each, on the same stored hashes and queries, pairs checked equal
    (skipped with a line when faiss is not installed: ``pip install faiss-cpu``);
(c) ``ingest --hf-dataset`` peak RSS at 2k and 20k rows of a local parquet dataset (child per size).
Figures only: nothing here passes or fails on time. ``BENCH_HASHES=10000000 BENCH_DISTS=uniform`` runs
the 10M case by hand (``BENCH_PARTS=search`` skips the other parts, ``BENCH_CALLS=rebuild`` the ingest calls).
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesdata.dedup import BATCH as REBUILD_BATCH  # noqa: E402
from aesdata.dedup import LINK_BATCH  # noqa: E402
from aesdata.ingest import BATCH, ingest  # noqa: E402
from aesdata.nearindex import NearIndex, all_pairs  # noqa: E402
from aesdata.workspace import Workspace  # noqa: E402

N_IMAGES = int(os.environ.get("BENCH_INGEST_IMAGES", "200"))
SIZES = [int(s) for s in os.environ.get("BENCH_HASHES", "100000,640000,2000000").split(",")]
RADII = [int(r) for r in os.environ.get("BENCH_RADII", "6,10").split(",")]
DISTS = os.environ.get("BENCH_DISTS", "uniform,clustered").split(",")
HF_ROWS = [int(s) for s in os.environ.get("BENCH_HF_ROWS", "2000,20000").split(",")]
PARTS = os.environ.get("BENCH_PARTS", "ingest,search,faiss,hf").split(",")
CALLS = {"ingest": BATCH, "rebuild": REBUILD_BATCH}  # hashes per assign() call, as each caller makes it
CALLED = os.environ.get("BENCH_CALLS", ",".join(CALLS)).split(",")
COMPARE_QUERIES = 4 * BATCH  # queries per side-by-side case
BASELINE_N = 5_000
NEAR = 6  # ingest.near_duplicate_threshold's default


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def hashes(n: int, dist: str, seed: int = 1) -> np.ndarray:
    """Uniform 64-bit hashes, or families: about n/6 roots, each with copies 0-12 bits away."""
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return rng.integers(0, 2**64, size=n, dtype=np.uint64)
    roots = rng.integers(0, 2**64, size=max(1, n // 6), dtype=np.uint64)
    h = roots[rng.integers(0, len(roots), size=n)]
    flips = rng.integers(0, 13, size=n)
    for k in range(1, 13):
        rows = np.nonzero(flips >= k)[0]
        h[rows] ^= np.left_shift(np.uint64(1), rng.integers(0, 64, size=len(rows)).astype(np.uint64))
    return h


# --------------------------------------------------------------------------- (a) ingest


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


# --------------------------------------------------------------------------- (b) near-duplicate search


def search_case(n: int, radius: int, dist: str, caller: str) -> dict[str, float]:
    """Child process: stream n hashes through the index as ingest does (``assign(links=False)`` on
    calls of ``ingest.BATCH``, ``links_of`` on every ``dedup.LINK_BATCH`` new sources and at the end) or
    as a rebuild does (``assign`` with links on calls of ``dedup.BATCH``); time, memory, outcome counts."""
    h = hashes(n, dist)
    near_radius = min(NEAR, radius)
    warm = NearIndex(radius, tail=0)  # load every compiled kernel before the clock starts
    warm.add(hashes(20_000, dist, seed=2))
    warm.assign(h[:BATCH], near_radius, links=False)
    warm.links_of(np.arange(len(warm)))
    warm.assign(h[:REBUILD_BATCH], near_radius)
    del warm
    index = NearIndex(radius)
    near = links = 0
    unlinked: list[np.ndarray] = []
    waiting = 0
    batch, ingesting = CALLS[caller], caller == "ingest"
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, batch):
        a = index.assign(h[start : start + batch], near_radius, links=not ingesting)
        near += int((a.position < 0).sum())
        links += len(a.links[0])
        if not ingesting:
            continue
        unlinked.append(a.position[a.position >= 0])
        waiting += len(unlinked[-1])
        if waiting >= LINK_BATCH or start + batch >= n:
            links += len(index.links_of(np.concatenate(unlinked))[0])
            unlinked, waiting = [], 0
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    t = index.levels[0] if index.levels else None  # the main level (a middle one has its own, smaller plan)
    plan = f"{'/'.join(map(str, t.plan.widths))} t{'/'.join(map(str, t.plan.thresholds))}" if t else "brute"
    return {"seconds": dt, "cpu": cpu, "near": near, "links": links, "rss_mb": peak_rss_mb(),
            "index_mb": index.nbytes / 2**20, "plan": plan}


def baseline(radius: int, dist: str) -> float:
    """All-pairs CPU seconds at BASELINE_N hashes (numpy popcount over every pair, one thread; best of 3)."""
    h = hashes(BASELINE_N, dist)
    best = float("inf")
    for _ in range(3):
        c0 = time.process_time()
        all_pairs(h, radius)
        best = min(best, time.process_time() - c0)
    return best


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench child {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def bench_search() -> None:
    print(f"\nnear-duplicate search as ingest and dupes --rebuild run it: NearIndex.assign in calls of "
          f"{BATCH} (ingest: decisions only, links_of every {LINK_BATCH} new sources) and {REBUILD_BATCH} "
          f"(rebuild), near radius {NEAR}")
    print(f"{'hashes':>9} {'radius':>6} {'hashes are':>10} {'calls':>8} {'wall s':>8} {'cpu s':>7} {'us/hash':>8} "
          f"{'all-pairs cpu s':>15} {'ratio':>8} {'index MB':>8} {'peak MB':>8} {'near':>8} {'links':>8}  plan")
    base = {(r, d): baseline(r, d) for r in RADII for d in DISTS}
    for n in SIZES:
        for radius in RADII:
            for dist, caller in ((d, c) for d in DISTS for c in CALLED):
                got = child(["search", str(n), str(radius), dist, caller])
                pairs_s = base[(radius, dist)] * (n / BASELINE_N) ** 2  # CPU seconds, like got["cpu"]
                print(f"{n:>9} {radius:>6} {dist:>10} {caller:>8} {got['seconds']:>8.2f} {got['cpu']:>7.2f} "
                      f"{got['cpu'] / n * 1e6:>8.2f} "
                      f"{pairs_s:>14.0f}* {pairs_s / got['cpu']:>7.0f}x {got['index_mb']:>8.0f} "
                      f"{got['rss_mb']:>8.0f} "
                      f"{got['near']:>8} {got['links']:>8}  {got['plan']}", flush=True)
    print(f"* all-pairs CPU time at {BASELINE_N:,} hashes in this run "
          + ", ".join(f"(r{r} {d}: {s:.2f} s)" for (r, d), s in base.items())
          + " extrapolated as n^2; ratio = all-pairs CPU / assign CPU; us/hash: assign CPU per hash. CPU time, "
          "not wall clock, because a shared machine stretches wall clock; ingest's calls run on one thread "
          "(assign goes parallel only past 20M estimated operations per call), a rebuild's on every core "
          "(its CPU time sums the threads; its wall clock is what a user waits). Index MB: the index's "
          "arrays; peak MB: the child's whole process (imports included).")


def compare_case(n: int, radius: int, dist: str) -> dict[str, float | str]:
    """Child process: search only, side by side, one thread each: ``NearIndex.search`` (the tables
    ``assign`` searches) against faiss's ``IndexBinaryMultiHash`` (4 tables of 16 bits, ``nflip`` bits
    flipped per table: exact when ``4 * (nflip + 1) > radius``, as here) and ``IndexBinaryFlat`` (every
    pair, SIMD), on the same ``n`` stored hashes and ``COMPARE_QUERIES`` new ones in batches of ``BATCH``.
    Build times are left out; the pairs found must be the same."""
    import faiss
    import numba

    faiss.omp_set_num_threads(1)
    numba.set_num_threads(1)
    h = hashes(n + COMPARE_QUERIES, dist)
    stored, queries = h[:n], h[n:]
    as_bytes = lambda a: np.ascontiguousarray(a).view(np.uint8).reshape(-1, 8)  # noqa: E731
    multi = faiss.IndexBinaryMultiHash(64, 4, 16)
    multi.nflip = (radius + 1 + 3) // 4 - 1
    flat = faiss.IndexBinaryFlat(64)
    multi.add(as_bytes(stored))
    flat.add(as_bytes(stored))
    ours = NearIndex(radius, stored)
    ours.search(queries[:BATCH])  # load the compiled kernels before the clock starts
    out: dict[str, float | str] = {}
    pairs = {}
    for name in ("nearindex", "multihash", "flat"):
        found = set()
        c0 = time.process_time()
        for start in range(0, COMPARE_QUERIES, BATCH):
            batch = queries[start : start + BATCH]
            if name == "nearindex":
                qi, pos, d = ours.search(batch)
            else:
                index = multi if name == "multihash" else flat
                lims, d, pos = index.range_search(as_bytes(batch), radius + 1)  # keeps d < radius + 1
                qi = np.repeat(np.arange(len(batch)), np.diff(lims).astype(np.int64))
            found.update(zip((qi + start).tolist(), pos.tolist(), d.tolist(), strict=True))
        out[name] = (time.process_time() - c0) / COMPARE_QUERIES * 1e6
        pairs[name] = found
    out["same"] = "yes" if pairs["nearindex"] == pairs["multihash"] == pairs["flat"] else "NO"
    out["pairs"] = len(pairs["nearindex"])
    return out


def bench_faiss() -> None:
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("\nfaiss side by side: skipped, faiss is not installed (pip install faiss-cpu)")
        return
    print(f"\nthe same search side by side with faiss, search only, one thread each, {COMPARE_QUERIES} queries "
          "in batches of 256 against n stored hashes, CPU us per query")
    print(f"{'hashes':>9} {'radius':>6} {'hashes are':>10} {'nearindex':>10} {'faiss multihash':>16} "
          f"{'faiss flat':>11} {'multihash/ours':>15} {'flat/ours':>10} {'pairs':>6} {'same':>5}")
    for n in SIZES:
        for radius in RADII:
            for dist in DISTS:
                got = child(["compare", str(n), str(radius), dist])
                print(f"{n:>9} {radius:>6} {dist:>10} {got['nearindex']:>10.1f} {got['multihash']:>16.1f} "
                      f"{got['flat']:>11.1f} {got['multihash'] / got['nearindex']:>14.1f}x "
                      f"{got['flat'] / got['nearindex']:>9.1f}x {got['pairs']:>6} {got['same']:>5}", flush=True)
    print("faiss IndexBinaryMultiHash(64, 4 tables, 16 bits), nflip = ceil((radius + 1) / 4) - 1 (exact); "
          "IndexBinaryFlat: every pair. faiss range_search keeps d < radius + 1.")


# --------------------------------------------------------------------------- (c) --hf-dataset memory


def hf_make(rows: int, folder: str) -> dict[str, float]:
    """Child process: write a local parquet dataset of ``rows`` noise JPEGs, in parts of 1000 rows."""
    import datasets

    root = Path(folder)
    data = root / "ds" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(rows)

    def images(start: int, stop: int) -> list[dict[str, bytes | None]]:
        out = []
        for _ in range(start, stop):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, size=(128, 128, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
            out.append({"bytes": buf.getvalue(), "path": None})
        return out

    for part, start in enumerate(range(0, rows, 1000)):  # written in parts: the writer stays small too
        ds = datasets.Dataset.from_dict({"image": images(start, min(rows, start + 1000))},
                                        features=datasets.Features({"image": datasets.Image()}))
        ds.to_parquet(str(data / f"train-{part:05d}.parquet"))
    return {"dataset_mb": sum(f.stat().st_size for f in data.iterdir()) / 2**20}


def hf_case(folder: str) -> dict[str, float]:
    """Child process: ingest the dataset :func:`hf_make` wrote; seconds and this process's peak RSS."""
    root = Path(folder)
    with Workspace.init(root / "ws") as ws:
        t0 = time.perf_counter()
        summary = ingest(ws, hf_dataset=str(root / "ds"), workers=2)
        dt = time.perf_counter() - t0
    return {"seconds": dt, "added": summary.added, "rss_mb": peak_rss_mb()}


def bench_hf() -> None:
    print("\ningest --hf-dataset (local parquet, 128x128 JPEG rows), child process per size")
    print(f"{'rows':>7} {'dataset MB':>11} {'seconds':>8} {'added':>7} {'peak RSS MB':>12} {'ratio':>6}")
    first = None
    for rows in HF_ROWS:
        with tempfile.TemporaryDirectory() as tmp:
            got = child(["hf-make", str(rows), tmp]) | child(["hf", tmp])
        first = first or got["rss_mb"]
        print(f"{rows:>7} {got['dataset_mb']:>11.0f} {got['seconds']:>8.1f} {got['added']:>7} "
              f"{got['rss_mb']:>12.0f} {got['rss_mb'] / first:>5.2f}x", flush=True)
    print("peak RSS of the ingesting process (the dataset is written by another one first)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["search"]:
        print(json.dumps(search_case(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])))
    elif sys.argv[1:2] == ["compare"]:
        print(json.dumps(compare_case(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
    elif sys.argv[1:2] == ["hf-make"]:
        print(json.dumps(hf_make(int(sys.argv[2]), sys.argv[3])))
    elif sys.argv[1:2] == ["hf"]:
        print(json.dumps(hf_case(sys.argv[2])))
    else:
        for part, run in (("ingest", bench_ingest), ("search", bench_search), ("faiss", bench_faiss),
                          ("hf", bench_hf)):
            if part in PARTS:
                run()

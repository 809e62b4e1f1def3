"""eval and export throughput on a real published version; the scorer's cost per reply.

A workspace of photo-like samples gets template rationales and is published with the real stages; then

* ``aesdata eval`` runs against the project's OpenAI-compatible server in a subprocess with a fixed
  latency per request: samples/s beside the ideal (concurrency / latency / K) and the client's CPU per
  request (reading the row, decoding and JPEG-encoding its five images, the openai client, parsing,
  scoring, the journal);
* ``aesdata export`` (sft) is timed beside the floor of any per-image export: pyarrow reading the shards
  and writing each image's bytes to its own file (export adds the JSONL, and reads everything back);
* parsing + scoring one reply is timed on a mix of reply shapes.

Figures only: nothing passes or fails on time. Environment: BENCH_EVAL_LATENCY (0.5), BENCH_EVAL_SIZE
(image side, 384), BENCH_EVAL_LEVELS (1,16,64), BENCH_EVAL_ROUNDS (4 samples per worker), BENCH_EVAL_K (4).
Each level runs cold (no JPEG renditions cached) and warm (renditions from ``cache/cot-images``, which
eval shares with cot and mine-hard because published images are the workspace's blobs byte for byte).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aesdata.cot.stage import CotOptions, run_cot  # noqa: E402
from aesdata.evaluate import dataset, run  # noqa: E402
from aesdata.evaluate.answers import parse_reply  # noqa: E402
from aesdata.evaluate.asking import Endpoint  # noqa: E402
from aesdata.evaluate.export import export  # noqa: E402
from aesdata.evaluate.scoring import proportional  # noqa: E402
from aesdata.llm.images import image_cache  # noqa: E402
from aesdata.publish.stage import publish  # noqa: E402
from aesdata.workspace import Workspace  # noqa: E402
from tests.openai_server import spawn  # noqa: E402

LATENCY = float(os.environ.get("BENCH_EVAL_LATENCY", "0.5"))
SIZE = int(os.environ.get("BENCH_EVAL_SIZE", "384"))
LEVELS = [int(c) for c in os.environ.get("BENCH_EVAL_LEVELS", "1,16,64").split(",")]
ROUNDS = int(os.environ.get("BENCH_EVAL_ROUNDS", "4"))
K = int(os.environ.get("BENCH_EVAL_K", "4"))
REPLIES = ["<think>B is deformed.</think><answer>A,C</answer>", "A and C", "The answer is B.", "none",
           '{"final_answer": ["D"]}', "I cannot tell."]


def fixed_reply(body: dict, call_index: int) -> str:
    """The server's policy (loaded by ``tests.openai_server --policy this_file:fixed_reply``)."""
    return "<think>Compared all four.</think><answer>A,C</answer>"


def build(root: Path, n: int) -> tuple[Workspace, Path]:
    """``n`` samples of SIZE-pixel images with template rationales, published as 1.0.0 (a few in test)."""
    from benchmarks.bench_cot import build as build_samples  # the cot benchmark's photo-like samples
    from benchmarks.bench_cot import configure

    ws = Workspace.init(root / "ws")
    build_samples(ws, n)
    configure(ws)  # model "bench", its key in the environment, prices
    run_cot(ws, CotOptions(mode="template"))
    out = root / "published"
    publish(ws, "1.0.0", out=out, test_fraction=0.05)
    return ws, out


def measure_eval(ws: Workspace, base_url: str, concurrency: int, k: int, out: Path) -> tuple[float, float, int]:
    """(samples/s, client CPU ms per request, samples scored) for one eval run over the train split."""
    n = max(4, ROUNDS * -(-concurrency // k))  # ROUNDS samples per worker: mostly steady state
    ref = dataset.resolve(ws, version="1.0.0", dataset=None)
    endpoint = Endpoint(base_url=base_url, concurrency=concurrency, temperature=1.0 if k > 1 else 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    report = run.evaluate(ws, ref, endpoint, split="train", rollouts=k, limit=n, out=out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out.unlink()
    scored = report["metrics"]["samples"]
    return scored / wall, 1000 * cpu / report["usage"]["calls"], scored


def scorer_cost(rounds: int = 20_000) -> float:
    """Microseconds to parse and score one reply."""
    answer = frozenset("AC")
    t = time.process_time()
    for i in range(rounds):
        proportional(parse_reply(REPLIES[i % len(REPLIES)]), answer)
    return 1e6 * (time.process_time() - t) / rounds


def write_images_only(published: Path, out: Path) -> None:
    """The floor: every image of every shard written to its own file, nothing else."""
    for shard in sorted(published.glob("data/*.parquet")):
        table = pq.read_table(shard, columns=["sample_id", "source", "candidates"])
        for sid, source, candidates in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            folder = out / sid
            folder.mkdir(parents=True)
            for name, image in zip(("source", "A", "B", "C", "D"), [source, *candidates], strict=True):
                (folder / f"{name}.png").write_bytes(image["bytes"])


def timed(fn: object, *args: object, **kwargs: object) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    biggest = max(ROUNDS * max(1, c) for c in LEVELS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        ws, published = build(root, biggest + 8)
        rows = ws.db.execute("SELECT COUNT(*) FROM version_rows").fetchone()[0]
        print(f"{rows} samples of {SIZE}px images published in {time.perf_counter() - t:.1f} s (eval reads train); "
              f"server latency {LATENCY:g} s; {os.cpu_count()} cores")
        print(f"parse + score: {scorer_cost():.1f} us per reply")

        proc, base_url = spawn(f"{Path(__file__).resolve()}:fixed_reply", latency=LATENCY, api_key="bench")
        try:
            print(f"{'concurrency':>11} {'K':>2} {'samples':>7} {'ideal/s':>8} | {'cold/s':>7} {'of ideal':>8} "
                  f"{'cpu ms/req':>10} | {'warm/s':>7} {'of ideal':>8} {'cpu ms/req':>10}")
            for c in LEVELS:
                for k in sorted({1, K}):
                    shutil.rmtree(image_cache(ws), ignore_errors=True)
                    cold, cold_cpu, scored = measure_eval(ws, base_url, c, k, root / "report.json")
                    warm, warm_cpu, _ = measure_eval(ws, base_url, c, k, root / "report.json")
                    ideal = c / LATENCY / k
                    print(f"{c:>11} {k:>2} {scored:>7} {ideal:>8.1f} | {cold:>7.1f} {cold / ideal:>8.0%} "
                          f"{cold_cpu:>10.1f} | {warm:>7.1f} {warm / ideal:>8.0%} {warm_cpu:>10.1f}")
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        ref = dataset.resolve(ws, version="1.0.0", dataset=None)
        floor = timed(write_images_only, published, root / "floor")
        sft = timed(export, ws, ref, root / "sft", fmt="sft")
        print(f"export sft: {rows / sft:.0f} samples/s ({sft:.2f} s); writing the images alone (pyarrow): "
              f"{floor:.2f} s (export takes {sft / floor:.1f}x that)")
        ws.close()


if __name__ == "__main__":
    main()

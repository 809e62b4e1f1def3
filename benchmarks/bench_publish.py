"""Publish throughput and peak memory at 20k and 80k samples: memory must stay flat as size grows.

The workspace is built fast by inserting rows directly (no ingest/generate): a pool of small real PNGs
is reused as candidates, and each source id is a hard link to a pool image under its own name. The
80k workspace is the 20k one plus 60k samples, so its publish (2.0.0) also exercises the stable split
against the recorded 1.0.0. Each publish runs in a fresh child process that reports its own peak RSS
(ru_maxrss) and the RSS it had after imports, before publishing (the baseline).

Target: peak RSS under 1.5 GB at both sizes (the papers' dataset: 128k samples, 640k images).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [int(s) for s in os.environ.get("BENCH_PUBLISH_SIZES", "20000,80000").split(",")]
POOL = 64
SIDE = 128

CHILD = """
import json, resource, sys, time
import psutil
from aesdata.publish.stage import publish
from aesdata.workspace import Workspace
ws = Workspace.open(sys.argv[1])
base = psutil.Process().memory_info().rss
t = time.perf_counter()
summary = publish(ws, sys.argv[2], test_fraction=0.1)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rows": summary["train"] + summary["test"], "seconds": seconds, "peak": peak, "base": base,
                  "status": summary["status"], "out": summary["out"]}))
"""


def _pool(ws: object) -> list[str]:
    from tests.factories import box_image

    return [ws.blobs.put_image(box_image(i, size=SIDE)) for i in range(POOL)]  # type: ignore[attr-defined]


def grow(ws_path: Path, start: int, stop: int) -> None:
    """Insert samples ``start..stop`` (labelled, with a template rationale) in a few big transactions."""
    from aesdata import store
    from aesdata.schema import SLOTS, Candidate, GenerationProvenance, Label, Layout, Rationale, Sample, Source
    from aesdata.workspace import Workspace
    from tests.factories import random_judgement

    with Workspace.open(ws_path) as ws:
        pool = _pool(ws)
        rng = random.Random(start)
        layout = Layout(scale=0.5, offset_x=0.5, offset_y=0.5)
        for chunk in range(start, stop, 5000):
            with ws.transaction() as db:
                for i in range(chunk, min(chunk + 5000, stop)):
                    sid = hashlib.sha256(f"bench-source-{i}".encode()).hexdigest()
                    dest = ws.blobs.path(sid)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.link(ws.blobs.path(pool[i % POOL]), dest)
                    src = Source(
                        id=sid,
                        width=SIDE,
                        height=SIDE,
                        mode="RGB",
                        phash=f"{i:016x}",
                        dhash=f"{i:016x}",
                        origin=f"bench/{i}.png",
                    )
                    sample = Sample(id=store.sample_id_for(sid), source_id=sid, backend="synthetic", signature="bench")
                    judgement = random_judgement(rng)
                    cands = [
                        Candidate(
                            sample_id=sample.id,
                            slot=slot,
                            sha256=pool[(i * 4 + k + 1) % POOL],
                            width=SIDE,
                            height=SIDE,
                            seed=i * 4 + k,
                            provenance=GenerationProvenance(
                                backend="synthetic",
                                model_id="bench",
                                pipeline_class="bench",
                                prompt="a product",
                                seed=i * 4 + k,
                                size=SIDE,
                                layout=layout,
                                injected=judgement.defects[slot],
                            ),
                        )
                        for k, slot in enumerate(SLOTS)
                    ]
                    store.insert_source(db, src)
                    store.insert_sample(db, sample, cands)
                    store.upsert_label(db, Label(sample_id=sample.id, origin="synthetic", judgement=judgement))
                    store.upsert_rationale(
                        db,
                        Rationale(
                            sample_id=sample.id,
                            mode="template",
                            status="valid",
                            think="Candidate A keeps the product intact; the shadow falls with the light.",
                            answer=judgement.answer,
                        ),
                    )


def publish_child(ws_path: Path, version: str) -> dict[str, float]:
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ws_path), version], capture_output=True, text=True, cwd=root, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from aesdata.workspace import Workspace

    tmp = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        ws_path = tmp / "ws"
        Workspace.init(ws_path).close()
        results = []
        have = 0
        for major, size in enumerate(sorted(SIZES), start=1):
            t = time.perf_counter()
            grow(ws_path, have, size)
            have = size
            print(f"workspace: {size} samples ({time.perf_counter() - t:.0f} s to insert)", flush=True)
            res = publish_child(ws_path, f"{major}.0.0")
            out = Path(str(res["out"]))
            res["bytes"] = sum(p.stat().st_size for p in out.rglob("*.parquet"))
            results.append((size, res))
            shutil.rmtree(out)  # keep the disk footprint to one version at a time
        print()
        print(
            f"{'samples':>8} {'rows/s':>8} {'MB/s':>6} {'seconds':>8} {'base RSS MB':>11} {'peak RSS MB':>11}"
            f" {'peak - base':>11}"
        )
        for size, r in results:
            print(
                f"{size:>8} {r['rows'] / r['seconds']:>8.0f} {r['bytes'] / r['seconds'] / 1e6:>6.1f}"
                f" {r['seconds']:>8.1f} {r['base'] / 1e6:>11.0f} {r['peak'] / 1e6:>11.0f}"
                f" {(r['peak'] - r['base']) / 1e6:>11.0f}"
            )
        (small, a), (large, b) = results[0], results[-1]
        print(
            f"\nsize x{large / small:.0f}: peak RSS x{b['peak'] / a['peak']:.2f}, "
            f"throughput x{(b['rows'] / b['seconds']) / (a['rows'] / a['seconds']):.2f}; "
            f"target peak < 1500 MB: {'met' if max(a['peak'], b['peak']) < 1.5e9 else 'NOT met'}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

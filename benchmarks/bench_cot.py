"""cot throughput against the project's OpenAI-compatible server with a fixed latency per request.

The server runs in a subprocess (``tests/openai_server.py``, 1 s per request, correct answers); the
client is the real stage (``run_cot`` in answer-driven mode: prompt building, image encoding, the
openai client, parsing, validation, ledger and rationale writes). For each concurrency the table
shows rationales/s beside the ideal (concurrency / latency) and the client's CPU time per request,
first with a cold image cache (every image decoded, resized and JPEG-encoded in the run) and then
warm (renditions read back from ``cache/cot-images``). Baselines in the same run: at each concurrency the
same request sent by plain aiohttp right after (the transport floor of the machine as loaded then), and at
the two highest the openai client's low-level ``post`` and aesdata's client alone. Figures only: nothing
passes or fails on time.

Environment: BENCH_COT_LATENCY (1.0), BENCH_COT_SIZE (image side, 256; cold costs grow with pixels),
BENCH_COT_LEVELS (1,16,64,256), BENCH_COT_ROUNDS (8 requests per worker, so a run is mostly steady state),
BENCH_COT_MAX_SAMPLES (1024, which caps the rounds at 256: 4 there), BENCH_COT_LONG (256: concurrencies
also run warm for all BENCH_COT_ROUNDS rounds, uncapped, beside the capped row; empty for none) and
BENCH_COT_KEEP (a folder to build the workspace in once and reuse; topped up when it holds too few) and
BENCH_COT_REPEAT (3: runs of each target, warm at 256 and cold at 64; the table shows the median run and
the targets' line every run: one run of these moved by 2 to 3 points between identical runs on 2 cores).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Literal

import aiohttp
import numpy as np
import openai
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aesdata import store  # noqa: E402
from aesdata.cot.prompts import Conversation  # noqa: E402
from aesdata.cot.stage import CotOptions, run_cot  # noqa: E402
from aesdata.cot.validate import Limits  # noqa: E402
from aesdata.llm.client import LLMClient  # noqa: E402
from aesdata.llm.images import ImageEncoder, image_cache  # noqa: E402
from aesdata.schema import SLOTS, Candidate, GenerationProvenance, Label, Layout, Sample, Source, utcnow  # noqa: E402
from aesdata.workspace import Workspace  # noqa: E402
from tests.cot.scripted import ScriptedModel, save_truth  # noqa: E402
from tests.factories import random_judgement  # noqa: E402
from tests.openai_server import spawn  # noqa: E402

LATENCY = float(os.environ.get("BENCH_COT_LATENCY", "1.0"))
SIZE = int(os.environ.get("BENCH_COT_SIZE", "256"))
LEVELS = [int(c) for c in os.environ.get("BENCH_COT_LEVELS", "1,16,64,256").split(",")]
ROUNDS = int(os.environ.get("BENCH_COT_ROUNDS", "8"))  # requests per worker at each concurrency
MAX_SAMPLES = int(os.environ.get("BENCH_COT_MAX_SAMPLES", "1024"))
LONG = [int(c) for c in os.environ.get("BENCH_COT_LONG", "256").split(",") if c]
REPEAT = max(1, int(os.environ.get("BENCH_COT_REPEAT", "3")))
#: The issue's targets: (concurrency, warm) -> the share of ideal a whole run must reach.
TARGETS = {(256, True): 0.90, (64, False): 0.80}
MAX_SIDE = 768
KEY_ENV = "AESDATA_BENCH_COT_KEY"


def samples_for(concurrency: int, *, capped: bool = True) -> int:
    """Enough requests per worker that the run is mostly steady state, within MAX_SAMPLES if ``capped``."""
    return 4 if concurrency == 1 else min(ROUNDS * concurrency, MAX_SAMPLES if capped else ROUNDS * concurrency)


def photo(rng: np.random.Generator) -> Image.Image:
    """A smooth random picture of SIZE pixels (compresses like a photo, unlike noise)."""
    base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((SIZE, SIZE), Image.Resampling.BICUBIC)


def put(ws: Workspace, img: Image.Image) -> str:
    """Store a PNG quickly: low compression, no fsync (building the bench is not what it measures)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    path = ws.blobs.path(sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return sha


def build(ws: Workspace, n: int, start: int = 0) -> None:
    """Labelled samples ``start`` to ``n`` with SIZE-pixel images (the generate stage's output, without it)."""
    rng = np.random.default_rng(start)
    labels = random.Random(start)
    layout = Layout(scale=0.5, offset_x=0.5, offset_y=0.5)
    for i in range(start, n):
        src = photo(rng)
        sha = put(ws, src)
        source = Source(
            id=sha,
            width=SIZE,
            height=SIZE,
            mode="RGB",
            phash=f"{i:016x}",  # not compared here: any distinct value will do
            dhash=f"{i:016x}",
            origin=f"bench/{i}.png",
        )
        sample = Sample(id=store.sample_id_for(sha), source_id=sha, backend="synthetic", signature="bench")
        judgement = random_judgement(labels)
        prov = GenerationProvenance(
            backend="synthetic", model_id="bench", pipeline_class="bench", prompt="p", seed=i, size=SIZE, layout=layout
        )
        candidates = [
            Candidate(
                sample_id=sample.id,
                slot=slot,
                sha256=put(ws, photo(rng)),
                width=SIZE,
                height=SIZE,
                seed=i,
                provenance=prov,
            )
            for slot in SLOTS
        ]
        with ws.transaction() as db:
            store.insert_source(db, source)
            store.insert_sample(db, sample, candidates)
            store.upsert_label(db, Label(sample_id=sample.id, origin="synthetic", judgement=judgement))


def configure(ws: Workspace) -> None:
    cot = ws.settings.cot.model_copy(
        update={
            "model": "bench",
            "api_key_env": KEY_ENV,
            "timeout_s": 60.0,
            "max_side": MAX_SIDE,
            "prices": {"*": {"input": 1.0, "output": 4.0}},
        }
    )
    ws.settings = ws.settings.model_copy(update={"cot": cot})
    os.environ[KEY_ENV] = "bench"


def measure(ws: Workspace, base_url: str, concurrency: int, n: int) -> dict[str, float]:
    """One run over the first ``n`` samples: whole-run and steady-state rationales/s, client CPU per request.

    Steady state leaves out the first round (connections opening, every request leaving at once):
    the completions after the first ``concurrency`` ones, over the time they took.
    """
    opts = CotOptions(mode="answer-driven", base_url=base_url, concurrency=concurrency, limit=n, redo="all")
    began = utcnow().isoformat()
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_cot(ws, opts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rows = ws.db.execute("SELECT created_at FROM rationales WHERE created_at >= ?", (began,)).fetchall()
    done = sorted(datetime.fromisoformat(r[0]).timestamp() for r in rows)
    first = min(concurrency, len(done)) - 1
    later = len(done) - 1 - first
    steady = later / (done[-1] - done[first]) if later > 0 else float("nan")
    cpu_ms = 1000 * cpu / max(1, summary["calls"])
    return {"rate": n / wall, "steady": steady, "cpu_ms": cpu_ms, "valid": summary["valid"]}


def encode_cost(ws: Workspace, k: int = 20) -> float:
    """CPU ms to decode, resize and JPEG-encode one sample's five images, nothing cached."""
    enc = ImageEncoder(ws.blobs, max_side=MAX_SIDE)
    samples = list(store.iter_samples(ws.db))[:k]
    cpu = time.process_time()
    for s in samples:
        enc.url(s.source_id)
        for c in store.get_candidates(ws.db, s.id):
            enc.url(c.sha256)
    return 1000 * (time.process_time() - cpu) / len(samples)


def render(ws: Workspace, n: int) -> None:
    """Every rendition of the first ``n`` samples in the disk cache (a warm run of them), made by the pool."""
    encoder = ImageEncoder(ws.blobs, max_side=MAX_SIDE, cache_dir=image_cache(ws))
    samples = list(store.iter_samples(ws.db))[:n]
    shas = [sha for s in samples for sha in (s.source_id, *store.candidate_shas(ws.db, s.id))]
    try:
        asyncio.run(encoder.render_ahead(shas, ahead=256))
    finally:
        encoder.close()


Transport = Literal["aiohttp", "openai", "aesdata"]


async def _bare(base_url: str, messages: list[dict], concurrency: int, n: int, via: Transport) -> float:
    """Requests/s for the same request body without the stage: plain aiohttp (the floor), the openai
    client's low-level ``post`` over its aiohttp transport, or aesdata's client (its retries, ledger, gate)."""
    gate = asyncio.Semaphore(concurrency)
    body = json.dumps({"model": "bench", "messages": messages})
    if via == "aesdata":
        async with LLMClient(base_url=base_url, model="bench", api_key="bench", concurrency=concurrency) as c:
            start = time.perf_counter()
            await asyncio.gather(*(c.chat(messages) for _ in range(n)))
            return n / (time.perf_counter() - start)
    if via == "openai":
        client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0,
                                    http_client=openai.DefaultAioHttpClient(verify=False))

        async def post() -> None:
            async with gate:
                await client.post("/chat/completions", cast_to=str, content=body.encode(),
                                  options={"headers": {"Content-Type": "application/json"}})

        start = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(n)))
        rate = n / (time.perf_counter() - start)
        await client.close()
        return rate
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency + 8)) as session:

        async def one() -> None:
            async with gate, session.post(f"{base_url}/chat/completions", data=body, headers=headers) as resp:
                resp.raise_for_status()
                await resp.json()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)


def bare_rate(ws: Workspace, base_url: str, concurrency: int, via: Transport, n: int) -> float:
    """:func:`_bare` on one sample's real request (its five images), ``n`` times (as many as a stage run)."""
    sample = next(store.iter_samples(ws.db))
    encoder = ImageEncoder(ws.blobs, max_side=MAX_SIDE)
    urls = [encoder.url(sample.source_id), *(encoder.url(c.sha256) for c in store.get_candidates(ws.db, sample.id))]
    messages = Conversation("automated", Limits()).messages(urls, None)
    return asyncio.run(_bare(base_url, messages, concurrency, n, via))


def measure_runs(ws: Workspace, base_url: str, concurrency: int, warm: bool) -> list[dict[str, float]]:
    """One run, or REPEAT of a target, cold ones each from an emptied image cache; sorted by rate."""
    runs = []
    for _ in range(REPEAT if (concurrency, warm) in TARGETS else 1):
        if not warm:
            shutil.rmtree(image_cache(ws), ignore_errors=True)
        runs.append(measure(ws, base_url, concurrency, samples_for(concurrency)))
    return sorted(runs, key=lambda m: m["rate"])


def row(m: dict[str, float], ideal: float) -> str:
    return f"{m['rate']:>7.1f} {m['rate'] / ideal:>8.0%} {m['steady'] / ideal:>7.0%} {m['cpu_ms']:>7.1f}"


def workspace(tmp: Path, n: int) -> Workspace:
    """The bench's workspace: built in ``tmp``, or in BENCH_COT_KEEP (built there once, then reused, so
    runs of two versions of the code compare on the same samples without paying the build twice)."""
    keep = os.environ.get("BENCH_COT_KEEP")
    path = Path(keep) if keep else tmp / "ws"
    t = time.perf_counter()
    reused = (path / "aesdata.toml").is_file()
    ws = Workspace.open(path) if reused else Workspace.init(path)
    have = ws.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    build(ws, n, have)
    how = "reused" if have >= n else f"built in {time.perf_counter() - t:.1f} s" + (f" ({have} reused)" if have else "")
    print(f"{n} samples of {SIZE}px images (5 per sample) {how}; server latency {LATENCY:g} s; "
          f"{os.cpu_count()} cores; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return ws


def main() -> None:
    n = max([samples_for(max(LEVELS)), *(samples_for(c, capped=False) for c in LONG)])
    with tempfile.TemporaryDirectory() as tmp, workspace(Path(tmp), n) as ws:
        configure(ws)
        truth = Path(tmp) / "truth.json"
        save_truth(ScriptedModel.for_workspace(ws, MAX_SIDE), truth)
        print(f"image encoding, cold: {encode_cost(ws):.1f} ms CPU per sample (5 images, max side {MAX_SIDE})")
        policy = str(ROOT / "tests/cot/scripted.py") + ":from_truth_file"
        proc, base_url = spawn(policy, policy_arg=str(truth), latency=LATENCY, api_key="bench")
        try:
            print(
                f"{'concurrency':>11} {'ideal/s':>8} | {'cold/s':>7} {'of ideal':>8} {'steady':>7} {'cpu ms':>7} |"
                f" {'warm/s':>7} {'of ideal':>8} {'steady':>7} {'cpu ms':>7} | {'aiohttp':>7} {'of ideal':>8}"
            )
            targets = []
            for c in LEVELS:
                colds, warms = measure_runs(ws, base_url, c, warm=False), measure_runs(ws, base_url, c, warm=True)
                cold, warm = colds[len(colds) // 2], warms[len(warms) // 2]
                floor = bare_rate(ws, base_url, c, "aiohttp", samples_for(c))
                ideal = c / LATENCY
                bad = "" if all(m["valid"] == samples_for(c) for m in [*colds, *warms]) else "  (not all valid!)"
                targets += [f"{'warm' if w else 'cold'} >= {TARGETS[c, w]:.0%} at {c}: "
                            + " ".join(f"{m['rate'] / ideal:.0%}" for m in ms)
                            for w, ms in ((True, warms), (False, colds)) if (c, w) in TARGETS]
                print(f"{c:>11} {ideal:>8.1f} | {row(cold, ideal)} | {row(warm, ideal)} | {floor:>7.1f}"
                      f" {floor / ideal:>8.0%}{bad}", flush=True)
            for c in LONG:
                k = samples_for(c, capped=False)
                render(ws, k)
                warm, floor = measure(ws, base_url, c, k), bare_rate(ws, base_url, c, "aiohttp", k)
                bad = "" if warm["valid"] == k else "  (not all valid!)"
                print(f"warm at {c} in flight over {k // c} rounds ({k} samples): {warm['rate']:.1f}/s, "
                      f"{warm['rate'] / c * LATENCY:.0%} of ideal (steady {warm['steady'] / c * LATENCY:.0%}, "
                      f"cpu {warm['cpu_ms']:.1f} ms); aiohttp {floor:.1f}/s ({floor / c * LATENCY:.0%}){bad}",
                      flush=True)
            for c in LEVELS[-2:]:
                rates = {via: bare_rate(ws, base_url, c, via, samples_for(c)) for via in ("openai", "aesdata")}
                print(f"the same request at {c} in flight without the stage: openai client {rates['openai']:.1f}/s "
                      f"({rates['openai'] / c * LATENCY:.0%} of ideal), aesdata client {rates['aesdata']:.1f}/s "
                      f"({rates['aesdata'] / c * LATENCY:.0%})", flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print("cold: images decoded and encoded in the run; warm: read back from cache/cot-images.")
    print("steady: rate after the first round; cpu ms: client CPU per request, all threads.")
    print("aiohttp: the same request sent by plain aiohttp right after (the transport floor of this machine).")
    print(f"targets, of ideal over the whole run (each run, lowest first; the table shows the median): "
          f"{'; '.join(targets) or 'none at these levels'}")


if __name__ == "__main__":
    main()

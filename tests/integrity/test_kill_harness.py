"""Every stage survives SIGKILL at seeded random points: resumed, it ends where an uninterrupted run ends.

ingest, generate (synthetic), cot (scripted server) and publish (with a Hub upload to the local Hub,
killed also between its calls) run as real CLI subprocesses; ``annotate pull`` has its own file next to
the real Label Studio (tests/annotate/test_kill_pull.py). Tiny workloads keep the default cheap;
``AESDATA_KILL_POINTS=50`` tries more points by hand.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aesdata.generate.demo_sources import write_demo_sources
from aesdata.publish import card
from aesdata.workspace import Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE, tune
from tests.cot.scripted import ScriptedModel
from tests.factories import make_samples
from tests.integrity import harness
from tests.integrity.harness import Point
from tests.openai_server import OpenAIServer
from tests.publish.hub_server import FakeHub, fake_hub

REPO = "acme/screening"
#: cot --concurrency 2: what one kill can cost again is the requests without a ledger row at the kill (in
#: flight, or answered and waiting for it), never more than --concurrency and a quarter (at least one); a
#: reply that was ledgered is kept, and the re-run takes it (aesdata.llm.replies)
LOST_AT_A_KILL = 2 + 1
BLOB_PUT = "aesdata.blobs:BlobStore.put"  # every image written is an event: kills land mid-write too


@dataclass
class Stage:
    """One stage under the harness: how to make its starting workspace, run it, and what to compare."""

    args: list[str]
    tables: tuple[str, ...]
    setup: Callable[[Path], None]
    hooks: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def _ingest_setup(ws_path: Path) -> None:
    photos = ws_path.parent.parent / "photos"
    if not photos.exists():
        write_demo_sources(photos, 8, seed=21)
        (photos / "broken.png").write_bytes(b"not an image")  # a rejection
        (photos / "copy.png").write_bytes((photos / "product_0000.png").read_bytes())  # an exact duplicate


def _generate_setup(ws_path: Path) -> None:
    photos = ws_path.parent / "photos"
    write_demo_sources(photos, 6, seed=22)
    harness.run_cli(["ingest", str(photos), "--workers", "1"], ws_path)


def _cot_setup(ws_path: Path) -> None:
    tune(ws_path, api_key_env="AESDATA_COT_KEY", timeout_s=5.0, max_retries=2, backoff_s=0.01, max_side=MAX_SIDE,
         model="scripted", attempts=2)
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 8, seed=23)


def _publish_setup(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 10, seed=24)
    harness.run_cli(["cot", "--mode", "template"], ws_path)


STAGES = {
    "ingest": Stage(["ingest", "{root}/photos", "--workers", "1"],
                    ("sources", "near_duplicates", "rejections", "ingest_log", "source_links", "unlinked_sources"),
                    _ingest_setup,
                    hooks=("aesdata.ingest:_Run.take", BLOB_PUT)),
    "generate": Stage(["generate", "--backend", "synthetic", "--size", "64", "--seed", "3"],
                      ("samples", "candidates", "labels"), _generate_setup, hooks=(BLOB_PUT,)),
    "cot": Stage(["cot", "--mode", "answer-driven", "--base-url", "{base_url}", "--concurrency", "2"],
                 ("rationales",), _cot_setup, env={"AESDATA_COT_KEY": API_KEY}),
    "publish": Stage(["publish", "--version", "1.0.0", "--repo-id", REPO], ("versions", "version_rows"),
                     _publish_setup, hooks=("aesdata.publish.writer:SplitWriter.add",),
                     env={"HF_TOKEN": "hf_harness"}),
}


class Services:
    """Per-run servers: a scripted model for cot, a local Hub for publish (each run gets fresh ones)."""

    def __init__(self, stage: str, ws_path: Path) -> None:
        self.stage, self.ws_path = stage, ws_path
        self.server: OpenAIServer | None = None
        self.hub_cm = fake_hub() if stage == "publish" else None
        self.hub: FakeHub | None = None

    def __enter__(self) -> Services:
        if self.stage == "cot":
            with Workspace.open(self.ws_path) as ws:
                first = next(iter(r[0] for r in ws.db.execute("SELECT id FROM samples ORDER BY id")))
                # one sample never gets a usable reply: its failure is part of the state compared
                model = ScriptedModel.for_workspace(ws, MAX_SIDE, {first: ["malformed"] * 50})
            self.server = OpenAIServer(model, api_key=API_KEY).start()  # type: ignore[arg-type]
        if self.hub_cm is not None:
            self.hub = self.hub_cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self.hub_cm is not None:
            self.hub_cm.__exit__(*exc)

    def env(self) -> dict[str, str]:
        return {"HF_ENDPOINT": self.hub.url} if self.hub else {}

    def fill(self, args: list[str]) -> list[str]:
        url = self.server.base_url if self.server else ""
        return [a.format(root=self.ws_path.parent.parent, base_url=url) for a in args]


def _hub_state(hub: FakeHub | None) -> tuple[object, ...]:
    if hub is None:
        return ()
    repo = hub.repos[REPO]
    files = {k: v for k, v in repo.files.items() if k != "README.md"}
    return (len(repo.commits), sorted(repo.tags), files, card.content_hash_of(repo.files["README.md"].decode()))


def _published(ws_path: Path) -> dict[str, bytes]:
    folder = ws_path / "published"
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.parquet")}


def _try(stage_name: str, seed: int, n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    stage = STAGES[stage_name]
    for key, value in stage.env.items():
        monkeypatch.setenv(key, value)
    init = tmp_path / "init" / "ws"
    Workspace.init(init).close()
    stage.setup(init)

    # 1. the uninterrupted run, counting its events
    base = harness.clone(init, tmp_path / "base" / "ws")
    with Services(stage_name, base) as svc, harness.counting(stage.hooks) as seen:
        for key, value in svc.env().items():
            monkeypatch.setenv(key, value)
        harness.run_cli(svc.fill(stage.args), base)
        want, want_hub = harness.state(base, stage.tables, drop=stage.drop), _hub_state(svc.hub)
        hub_calls = len(svc.hub.calls) if svc.hub else 0
        requests = svc.server.calls if svc.server else 0
    events = seen[0]
    assert events >= 3, f"{stage_name}: only {events} events; the workload is too small to kill inside"

    # 2. killed copies, each resumed
    rng = random.Random(seed)
    figures = {"tried": 0, "killed": 0, "equal": 0}
    for i, point in enumerate(harness.points(seed, events, n)):
        ws_path = harness.clone(init, tmp_path / f"p{i}" / "ws")
        with Services(stage_name, ws_path) as svc:
            for key, value in svc.env().items():
                monkeypatch.setenv(key, value)
            on_start = None
            if svc.hub is not None and rng.random() < 0.5:  # kill between two Hub calls instead
                point = Point(rng.randrange(hub_calls), "hub")
                on_start = _kill_on_hub_call(svc.hub, point.after)
            code = harness.kill_at(point if point.how != "hub" else Point(10**9, "after"),
                                   svc.fill(stage.args), ws_path, hooks=stage.hooks,
                                   env={**stage.env, **svc.env()}, on_start=on_start)
            figures["tried"] += 1
            figures["killed"] += code == -signal.SIGKILL
            harness.run_cli(svc.fill(stage.args), ws_path)
            got = harness.state(ws_path, stage.tables, drop=stage.drop)
            harness.assert_same(got, want, point)
            assert _hub_state(svc.hub) == want_hub, f"{point}: the Hub differs from the uninterrupted run's"
            if svc.server is not None:  # paid requests: only those in flight at the kill are asked again
                assert svc.server.calls <= requests + LOST_AT_A_KILL, f"{point}: {svc.server.calls} requests"
            if stage_name == "publish":
                assert _published(ws_path) == _published(base), f"{point}: published shards differ"
            # a killed run is marked interrupted (or had ended before the kill); the resumed one is done
            assert set(got.runs) <= {"done", "interrupted"} and got.runs[-1] == "done", f"{point}: runs {got.runs}"
            figures["equal"] += 1
    print(f"kill harness {stage_name}: {events} events, {figures}")
    return figures


def _kill_on_hub_call(hub: FakeHub, index: int) -> Callable[[subprocess.Popen[str]], None]:
    """Kill the client once the Hub has taken call ``index`` into effect, before it answers."""

    def start(proc: subprocess.Popen[str]) -> None:
        def on_call(call: object) -> None:
            if len(hub.calls) - 1 == index and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

        hub.on_call = on_call

    return start


@pytest.mark.parametrize("stage", list(STAGES))
def test_kill_at_random_points_then_resume(stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures = _try(stage, seed=10 + list(STAGES).index(stage), n=harness.POINTS, tmp_path=tmp_path,
                   monkeypatch=monkeypatch)
    assert figures["tried"] == figures["equal"] == harness.POINTS
    assert figures["killed"] >= harness.POINTS - 2  # a 'late' kill may come after a tiny run ended

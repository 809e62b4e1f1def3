"""``aesdata mine-hard`` against the project's real HTTP server with a known per-sample pass rate."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.llm.images import data_url, encode_jpeg
from aesdata.schema import SLOTS, DatasetVersion, Judgement, Label
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.openai_server import OpenAIServer, Reply, request_images

K = 4
MAX_SIDE = 64


class Policy:
    """Sample number i answers right in exactly ``i % (K + 1)`` of its K rollouts, wrong ("A,B,C,D" or
    "none", whichever is not the answer) in the others; ``failing`` samples always get HTTP 500."""

    def __init__(self, ws: Workspace, failing: set[str] = frozenset()) -> None:
        self.ws, self.failing = ws, failing
        self.by_url: dict[str, tuple[int, str]] = {}
        for i, sample in enumerate(store.iter_samples(ws.db)):
            img = ws.blobs.open(sample.source_id)
            self.by_url[data_url(encode_jpeg(img, max_side=MAX_SIDE))] = (i, sample.id)
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()

    def answer(self, sample_id: str) -> frozenset[str]:
        label = store.get_label(self.ws.db, sample_id)
        assert label is not None
        return frozenset(label.judgement.answer)

    def __call__(self, body: dict, call_index: int) -> Reply | str:
        i, sid = self.by_url[request_images(body)[0]]
        if sid in self.failing:
            return Reply.fail(500)
        with self.lock:
            j = self.seen[sid]
            self.seen[sid] += 1
        answer = self.answer(sid)
        if j % K < i % (K + 1):
            return f"<answer>{','.join(s for s in SLOTS if s in answer) or 'none'}</answer>"
        return "<answer>none</answer>" if answer else "<answer>A,B,C,D</answer>"


@pytest.fixture
def setup(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], str]:
    """Eight labelled samples, the first one in the test split of a published version."""
    ids = make_samples(ws, 8, seed=5)
    path = ws.root / "aesdata.toml"
    text = path.read_text()
    for key, value in {"backoff_s": 0.01, "max_side": MAX_SIDE, "max_retries": 1, "timeout_s": 5}.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    path.write_text(text)
    with ws.transaction() as db:
        store.insert_version(db, DatasetVersion(version="1.0.0", content_hash="h", counts={"test": 1}))
        db.execute("INSERT INTO version_rows (version, sample_id, split, label_hash, row_hash)"
                   " VALUES ('1.0.0', ?, 'test', 'l', 'r')", (ids[0],))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return ids, ids[0]


def mine(cli: CliRunner, server: OpenAIServer, *extra: str, rollouts: int = K) -> dict:
    res = cli.invoke(app, ["mine-hard", "--model", "m", "--base-url", server.base_url, "--rollouts", str(rollouts),
                           "--concurrency", "8", "--json", *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_pass_rates_are_stored_and_resumed(setup: tuple[list[str], str], ws: Workspace, ws_path: Path,
                                           cli: CliRunner) -> None:
    ids, test_id = setup
    policy = Policy(ws, failing={ids[3]})
    with OpenAIServer(policy, api_key="sk-test") as server:
        first = mine(cli, server)
        assert first["mined_now"] == 6 and first["failed"] == 1 and first["skipped_test_split"] == 1
        asked = len(server.requests)

        # the rows say what the policy did: sample i passes i % 5 of 4 rollouts
        rows = {r["sample_id"]: r for r in ws.db.execute("SELECT * FROM difficulty WHERE model = 'm'")}
        assert test_id not in rows and ids[3] not in rows
        for i, sid in enumerate(ids[1:], start=1):
            if sid == ids[3]:
                continue
            want = (i % (K + 1)) / K
            assert rows[sid]["pass_rate"] == pytest.approx(want)
            assert rows[sid]["passes"] == i % (K + 1) and rows[sid]["rollouts"] == K
            assert rows[sid]["temperature"] == 1.0 and len(json.loads(rows[sid]["predictions"])) == K
        assert all(r.body["temperature"] == 1.0 for r in server.requests)

        diff = store.difficulties(ws.db)
        assert {sid: d.difficulty for sid, d in diff.items()} == {
            sid: 1 - r["pass_rate"] for sid, r in rows.items()}
        assert first["hard"] == sum(r["pass_rate"] < 0.5 for r in rows.values())

        # a re-run asks only what is missing: the sample that failed
        policy.failing.clear()
        second = mine(cli, server)
        assert second["mined_now"] == 1 and second["already_mined"] == 6
        assert len(server.requests) - asked == K
        asked = len(server.requests)

        # a relabelled sample is stale: left out of difficulties() and mined again
        relabel = ids[1]
        old = store.get_label(ws.db, relabel)
        assert old is not None
        flipped = Judgement.from_defects({s: [] if old.judgement.defects[s] else ["physical_shadow"] for s in SLOTS})
        with ws.transaction() as db:
            store.upsert_label(db, Label(sample_id=relabel, origin="human", judgement=flipped))
        assert relabel not in store.difficulties(ws.db)
        third = mine(cli, server)
        assert third["mined_now"] == 1 and len(server.requests) - asked == K
        assert relabel in store.difficulties(ws.db)

    with Workspace.open(ws_path) as again:
        runs = again.db.execute("SELECT status, summary FROM runs WHERE stage = 'mine-hard' ORDER BY id").fetchall()
    assert [r["status"] for r in runs] == ["done"] * 3
    assert json.loads(runs[0]["summary"])["failed"] == 1


def test_mining_needs_sampling(setup: tuple[list[str], str], cli: CliRunner) -> None:
    res = cli.invoke(app, ["mine-hard", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--temperature", "0"])
    assert res.exit_code == 1 and "temperature > 0" in res.output


def test_publish_carries_difficulty_and_the_hard_config(published: tuple[Path, dict], ws: Workspace, cli: CliRunner,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mine-hard -> publish -> export --config hard: the samples the model fails are the ones trainers get."""
    _, ids = published
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    policy = Policy(ws)
    fails = {sid for i, sid in policy.by_url.values() if i % 2 == 0}

    def wrong_on_even(body: dict, call_index: int) -> str:
        _, sid = policy.by_url[request_images(body)[0]]
        answer = policy.answer(sid)
        if sid in fails:
            return "<answer>none</answer>" if answer else "<answer>A</answer>"
        return f"<answer>{','.join(s for s in SLOTS if s in answer) or 'none'}</answer>"

    with OpenAIServer(wrong_on_even) as server:
        summary = mine(cli, server, "--max-side", str(MAX_SIDE))
    assert summary["mined_now"] == len(ids["train"]) and summary["skipped_test_split"] == len(ids["test"])
    hard = fails & set(ids["train"])
    assert summary["hard"] == len(hard) > 0

    out = tmp_path / "v1.1.0"
    res = cli.invoke(app, ["publish", "--version", "1.1.0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    export = tmp_path / "hard-grpo"
    res = cli.invoke(app, ["export", "--format", "grpo", "--version", "1.1.0", "--config", "hard", "--split", "train",
                           "--out", str(export)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (export / "train.jsonl").read_text().splitlines()]
    assert {r["sample_id"] for r in rows} == hard
    assert all(r["difficulty"] == 1.0 for r in rows)


@pytest.mark.slow
def test_a_killed_mine_hard_resumes(setup: tuple[list[str], str], ws: Workspace, ws_path: Path, cli: CliRunner) -> None:
    """SIGKILL mid-run: the samples committed stay, a re-run asks only the others, nothing is duplicated."""
    ids, test_id = setup
    policy = Policy(ws)
    with OpenAIServer(policy, latency=0.3) as server:
        args = ["mine-hard", "--model", "m", "--base-url", server.base_url, "--rollouts", "2", "--concurrency", "2",
                "-w", str(ws_path), "--json"]
        env = {**os.environ, "AESDATA_WORKSPACE": str(ws_path)}
        proc = subprocess.Popen([sys.executable, "-m", "aesdata.cli.main", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if ws.db.execute("SELECT COUNT(*) FROM difficulty").fetchone()[0] >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kept = ws.db.execute("SELECT COUNT(*) FROM difficulty").fetchone()[0]
        assert 2 <= kept < len(ids) - 1
        before = len(server.requests)
        summary = mine(cli, server, rollouts=2)
    assert summary["already_mined"] == kept and summary["mined_now"] == len(ids) - 1 - kept
    assert len(server.requests) - before == 2 * (len(ids) - 1 - kept)
    rows = ws.db.execute("SELECT sample_id, rollouts FROM difficulty").fetchall()
    assert sorted(r["sample_id"] for r in rows) == sorted(set(ids) - {test_id})
    assert {r["rollouts"] for r in rows} == {2}

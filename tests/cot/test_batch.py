"""``aesdata cot --batch``: the real openai client against the project's server speaking files and batches.

Replies are validated and repaired as online; repairs, further attempts and retries go into follow-up
batches; the ledger prices at batch rates; ``--max-cost`` holds back what it cannot pay before a batch is
submitted; a run killed at any point (even between the endpoint creating a batch and the run recording
it) is continued by the next one without submitting anything twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.llm.images import ImageEncoder
from aesdata.workspace import DB_FILE, Workspace
from tests.cot.conftest import MAX_SIDE, tune
from tests.cot.test_stage import rationales, serve
from tests.factories import make_samples
from tests.openai_server import BatchPlan, request_images


@pytest.fixture(autouse=True)
def fast_polls(cot_ws_path: Path) -> None:
    tune(cot_ws_path, batch_poll_s=0.02)


def cot_batch(cli: CliRunner, base_url: str, *more: str, mode: str = "answer-driven") -> dict:
    result = cli.invoke(app, ["cot", "--mode", mode, "--batch", "--base-url", base_url, "--json", *more])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_answer_driven_batch_validates_repairs_and_retries_in_follow_up_batches(
    cot_ws_path: Path, cli: CliRunner
) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 8)
        scripts = {
            ids[1]: ["wrong", "correct"],  # repaired in batch 2
            ids[2]: ["leak", "leak"],  # failed after its repair
            ids[3]: ["429", "correct"],  # in batch 1's error file, retried in batch 2
            ids[4]: ["400"],  # refused: stored as failed
            ids[5]: ["malformed", "fenced"],  # repaired
        }
        url = ImageEncoder(ws.blobs, max_side=MAX_SIDE).url(store.get_sample(ws.db, ids[6]).source_id)
        plan = BatchPlan(malformed=lambda n, line: request_images(line["body"])[0] == url)  # cut: sent again
        server, _ = serve(ws, scripts, batch_plan=lambda n: plan if n == 0 else BatchPlan())
    with server:
        summary = cot_batch(cli, server.base_url, "--min-chars", "100")
        again = cot_batch(cli, server.base_url)
    assert summary["valid"] == 6 and summary["failed"] == 2, summary
    assert summary["batch_submitted"] == 2 and summary["batch_bad_lines"] == 1 and summary["batch_rejected"] == 1
    assert again["selected"] == 0 and len(server.batch_api.created) == 2  # nothing asked twice
    first, second = (server.batch_api.lines[b] for b in server.batch_api.created)
    assert len(first) == 8 and len(second) == 5  # 3 repairs, the 429 and the cut line
    assert not server.requests or all(not r.headers for r in server.requests)  # no online request was made
    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "answer-driven")
        assert {sid for sid, r in got.items() if r.status == "failed"} == {ids[2], ids[4]}
        assert got[ids[1]].attempts == 2 and got[ids[1]].status == "valid"
        assert "too large" in got[ids[4]].errors[0]
        calls = ws.db.execute("SELECT * FROM cot_calls").fetchall()
        assert len(calls) == summary["calls"] == 10  # answered replies, each once, though replayed
        assert Counter(c["kind"] for c in calls) == {"first": 7, "repair": 3}
        for c in calls:  # batch prices: half of cot.prices (2.0 / 8.0 per million tokens)
            assert c["cost_usd"] == pytest.approx((c["prompt_tokens"] * 1.0 + c["completion_tokens"] * 4.0) / 1e6)
        assert ws.db.execute("SELECT COUNT(*) FROM llm_batch_requests").fetchone()[0] == 0


def test_automated_attempts_go_into_follow_up_batches_with_their_states_shown(
    cot_ws_path: Path, cli: CliRunner
) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 3)
        server, _ = serve(ws, {ids[0]: ["wrong", "wrong", "correct"], ids[1]: ["wrong"] * 3})
    with server:
        shown = cli.invoke(app, ["cot", "--mode", "automated", "--batch", "--base-url", server.base_url])
    assert shown.exit_code == 0, shown.output
    for line in ("batch batch_0: submitted 3 request(s)", "batch batch_0: in_progress (0/3 done, 0 failed)",
                 "batch batch_0: completed (3/3 done, 0 failed)", "batch batch_2: completed (2/2 done, 0 failed)"):
        assert line in shown.stderr
    assert re.search(r"agreement_rate +│ 0.2857 ", shown.stdout)  # 7 tries judged, 2 agreed
    assert [len(server.batch_api.lines[b]) for b in server.batch_api.created] == [3, 2, 2]
    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "automated")
        assert {sid for sid, r in got.items() if r.status == "valid"} == {ids[0], ids[2]}
        assert got[ids[0]].attempts == 3 and got[ids[1]].status == "failed"


def test_max_cost_holds_back_what_it_cannot_pay_before_submitting(cot_ws_path: Path, cli: CliRunner) -> None:
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 6)
        server, _ = serve(ws, {})
    with server:
        # a request is estimated generously (its text, image tiles, 1000 reply tokens) at batch prices
        held = cot_batch(cli, server.base_url, "--max-cost", "0.02")
        (sent, estimate), = _db(cot_ws_path, "SELECT requests, estimated_cost FROM llm_batches")
        assert held["stopped"] == "max-cost" and 0 < sent < 6 and held["batch_held"] == 6 - sent
        assert held["valid"] == sent and held["cost_usd"] <= estimate <= 0.02 < estimate * (sent + 1) / sent * 1.01
        assert [len(server.batch_api.lines[b]) for b in server.batch_api.created] == [sent]
        rest = cot_batch(cli, server.base_url, "--max-cost", "1")
    assert rest["selected"] == 6 - sent and rest["valid"] == 6 - sent and "stopped" not in rest
    assert sum(len(lines) for lines in server.batch_api.lines.values()) == 6


def _db(ws_path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(ws_path / DB_FILE, timeout=30)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _kill_when(proc: subprocess.Popen, ready: callable) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + 60
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    assert ready()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.slow
def test_killed_while_creating_and_while_polling_then_resumed_without_resubmitting(
    cot_ws_path: Path, cli: CliRunner
) -> None:
    n = 6
    tune(cot_ws_path, batch_poll_s=0.02, timeout_s=30.0)  # the stalled create must outlast the kill
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, n)
        server, _ = serve(ws, {ids[0]: ["wrong", "correct"]})
    batches = server.batch_api
    exe = Path(sys.executable).with_name("aesdata")
    with server:
        args = [str(exe), "cot", "--mode", "answer-driven", "--batch", "--base-url", server.base_url]
        # 1. killed after the endpoint created the batch, before the run could record its id
        batches.create_delay = 30
        proc = subprocess.Popen(args, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _kill_when(proc, lambda: len(batches.created) == 1)
        assert _db(cot_ws_path, "SELECT batch_id, status FROM llm_batches") == [(None, "submitting")]

        # 2. the next run finds that batch by its nonce; killed while the batch is in progress
        batches.create_delay, _ = 0, batches.hold.clear()
        proc = subprocess.Popen(args, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _kill_when(proc, lambda: _db(cot_ws_path, "SELECT status FROM llm_batches") == [("in_progress",)])
        assert len(batches.created) == 1

        # 3. the third run polls it to the end, sends the one repair in a follow-up batch, and is done
        batches.hold.set()
        summary = cot_batch(cli, server.base_url)
    assert summary["valid"] == n and summary["batch_submitted"] == 1  # the repair's batch only
    assert len(batches.created) == 2 and [len(batches.lines[b]) for b in batches.created] == [n, 1]
    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "answer-driven")
        assert set(got) == set(ids) and all(r.status == "valid" for r in got.values())
        assert ws.db.execute("SELECT COUNT(*) FROM cot_calls").fetchone()[0] == n + 1

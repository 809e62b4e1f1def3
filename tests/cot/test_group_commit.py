"""Group commit (aesdata.llm.commits) under the real CLI: a run SIGKILLed with many requests in flight.

The ledger and the results stay in step (every stored rationale has its ledger rows, and the paid
replies missing from the ledger are no more than a quarter over the requests in flight), and the re-run asks the
endpoint for no sample whose result was stored, nor again for a reply that was ledgered (it was kept). Then the
committer on its own: order, a failing unit fails alone, units submitted together commit together, ``close``
commits what is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aesdata.llm.commits import Committer
from aesdata.llm.images import ImageEncoder
from aesdata.store import iter_labelled
from aesdata.workspace import DB_FILE, Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE, query
from tests.cot.scripted import ScriptedModel
from tests.factories import make_samples
from tests.openai_server import OpenAIServer, image_digest, request_images

EXE = str(Path(sys.executable).with_name("aesdata"))
N = 48
CONCURRENCY = 16
REPAIRED = 6  # samples whose first reply is wrong: two requests each


def cot(server: OpenAIServer) -> list[str]:
    return [EXE, "cot", "--mode", "answer-driven", "--base-url", server.base_url, "--concurrency",
            str(CONCURRENCY), "--json"]


def test_a_killed_run_keeps_ledger_and_results_in_step_and_the_rerun_pays_nothing_twice(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, N, seed=31)
        model = ScriptedModel.for_workspace(ws, MAX_SIDE, {sid: ["wrong", "correct"] for sid in ids[:REPAIRED]})
        encoder = ImageEncoder(ws.blobs, max_side=MAX_SIDE)
        sample_of = {image_digest(encoder.url(s.source_id)): s.id for s, _ in iter_labelled(ws.db)}
    with OpenAIServer(model, api_key=API_KEY, latency=0.2) as server:
        # 1. killed once a third of the results are stored: a round of requests is in flight then
        proc = subprocess.Popen(cot(server), env=os.environ.copy(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while query(cot_ws_path, "SELECT COUNT(*) FROM rationales")[0][0] < N // 3:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        asked = server.calls
        stored = {r[0] for r in query(cot_ws_path, "SELECT sample_id FROM rationales")}
        assert N // 3 <= len(stored) < N
        ledger = dict(query(cot_ws_path, "SELECT sample_id, COUNT(*) FROM cot_calls GROUP BY sample_id"))
        for sid, record in query(cot_ws_path, "SELECT sample_id, record FROM rationales"):
            assert ledger.get(sid) == json.loads(record)["attempts"], sid  # each reply of it is in the ledger
        rows = sum(ledger.values())
        # in flight, or answered and not yet ledgered: a quarter over the requests in flight at most
        assert asked - rows <= CONCURRENCY + CONCURRENCY // 4, (asked, rows)

        # 2. the re-run does the rest and asks again for nothing stored
        before = len(server.requests)
        done = subprocess.run(cot(server), env=os.environ.copy(), capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        again = {sample_of[image_digest(request_images(r.body)[0])] for r in server.requests[before:]}
    assert not again & stored
    assert again <= set(ids) - stored  # a sample whose replies were all kept is stored without a request
    # what the re-run asked again is at most what had no ledger row at the kill: every reply ledgered was kept
    assert server.calls <= N + REPAIRED + (asked - rows), (server.calls, asked, rows)
    assert json.loads(done.stdout)["valid"] == N - len(stored)
    assert query(cot_ws_path, "SELECT COUNT(*), SUM(status = 'valid') FROM rationales") == [(N, N)]
    ledgered = query(cot_ws_path, "SELECT COUNT(*) FROM cot_calls")[0][0]
    assert ledgered == server.calls - (asked - rows)  # the re-run ledgered every request it made
    assert query(cot_ws_path, "SELECT COUNT(*) FROM work_claims") == [(0,)]


def test_the_committer_keeps_order_fails_a_unit_alone_and_groups(tmp_path: Path) -> None:
    Workspace.init(tmp_path / "ws").close()
    path = tmp_path / "ws" / DB_FILE
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")

    def put(k: int) -> Any:
        return lambda db: db.execute("INSERT INTO t VALUES (?, ?)", (k, "x")).lastrowid

    async def scenario(committer: Committer) -> list[Any]:
        futures = [committer.submit(put(k)) for k in range(100)]
        futures.append(committer.submit(put(5)))  # a duplicate key: this one fails, alone
        futures.append(committer.submit(lambda db: db.execute("SELECT COUNT(*) FROM t").fetchone()[0]))
        return await asyncio.gather(*futures, return_exceptions=True)

    committer = Committer(path)
    try:
        outcomes = asyncio.run(scenario(committer))
        assert outcomes[:100] == list(range(100))
        assert isinstance(outcomes[100], sqlite3.IntegrityError)
        assert outcomes[101] == 100  # it saw every unit submitted before it, and not the failed one
        assert committer.groups < 50  # submitted together, committed together
        left = committer.groups

        async def pending() -> None:
            committer.submit(put(1000))  # not awaited: close() commits it

        asyncio.run(pending())
    finally:
        committer.close()
    assert committer.groups == left + 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 101


def test_a_committer_that_cannot_open_its_database_says_so(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        Committer(tmp_path / "missing" / DB_FILE)


def test_then_runs_once_per_unit_as_its_commit_is_known_even_for_a_cancelled_caller(tmp_path: Path) -> None:
    """``then`` sees its future already resolved (or cancelled by its caller), once, failed units too."""
    Workspace.init(tmp_path / "ws").close()
    seen: list[tuple[int, str]] = []

    def then(k: int) -> Any:
        def look(future: asyncio.Future[Any]) -> None:
            state = "cancelled" if future.cancelled() else "failed" if future.exception() else "done"
            seen.append((k, state))
        return look

    def fail(db: sqlite3.Connection) -> None:
        raise ValueError("no")

    async def scenario(committer: Committer) -> None:
        futures = [committer.submit(lambda db: None, then=then(k)) for k in range(3)]
        futures.append(committer.submit(fail, then=then(3)))
        futures[1].cancel()  # its caller gave up: the unit commits all the same, and then still runs
        await asyncio.gather(*futures, return_exceptions=True)
        await committer.run(lambda db: None)  # after the four resolved

    with Committer(tmp_path / "ws" / DB_FILE) as committer:
        asyncio.run(scenario(committer))
    assert sorted(seen) == [(0, "done"), (1, "cancelled"), (2, "done"), (3, "failed")]

"""Two ``aesdata cot`` processes at once on one workspace, against the scripted server.

They split the work (claims), never pay twice for one sample, and share one ``--max-cost`` (holds in
the workspace). The server holds its first reply until both processes are registered, so they are
certain to overlap however slowly each one starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aesdata import claims
from aesdata.llm import ledger
from aesdata.llm.client import BudgetExceeded
from aesdata.schema import Usage
from aesdata.workspace import Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE, query, tune
from tests.cot.scripted import ScriptedModel
from tests.factories import box_image, make_samples
from tests.openai_server import OpenAIServer, Reply

EXE = str(Path(sys.executable).with_name("aesdata"))
N = 40
REPAIRED = 5  # samples whose first reply is wrong: one repair each
N_PHOTOS = 250


class Gated:
    """The scripted model, but no reply before ``gate`` is set (both runs have started)."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model, self.gate = model, threading.Event()

    def __call__(self, body: dict[str, Any], index: int) -> Reply | str:
        self.gate.wait(120)
        return self.model(body, index)


def run_pair(ws_path: Path, server: OpenAIServer, gated: Gated, *extra: str) -> list[dict[str, Any]]:
    """Start two cot processes, open the gate once both are registered, return their summaries."""
    gated.gate.clear()
    args = [EXE, "cot", "--mode", "answer-driven", "--base-url", server.base_url, "--concurrency", "2", "--json"]
    procs = [
        subprocess.Popen([*args, *extra], env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    deadline = time.monotonic() + 120
    while query(ws_path, "SELECT COUNT(*) FROM work_owners WHERE stage = 'cot'")[0][0] < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    gated.gate.set()
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0 and "database is locked" not in err, err
        summaries.append(json.loads(out))
    return summaries


def duplicates(ws_path: Path, session: str) -> list[tuple[Any, ...]]:
    return query(
        ws_path,
        "SELECT sample_id, attempt, kind, COUNT(*) FROM cot_calls WHERE session = ?"
        " GROUP BY sample_id, attempt, kind HAVING COUNT(*) > 1",
        session,
    )


@pytest.mark.slow
def test_two_cot_processes_split_the_work_and_share_the_budget(cot_ws_path: Path) -> None:
    tune(cot_ws_path, timeout_s=120.0)  # the gate holds the first reply while the second run starts
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, N)
        model = ScriptedModel.for_workspace(ws, MAX_SIDE, {sid: ["wrong", "correct"] for sid in ids[:REPAIRED]})
    gated = Gated(model)
    with OpenAIServer(gated, api_key=API_KEY, latency=0.05) as server:
        # 1. both capped: together they spend no more than the cap, one session, no request twice
        cap = 0.08
        capped = run_pair(cot_ws_path, server, gated, "--max-cost", str(cap))
        first_calls = server.calls
        sessions = query(cot_ws_path, "SELECT session, COUNT(*), SUM(cost_usd) FROM cot_calls GROUP BY session")
        assert len(sessions) == 1, sessions  # the two runs shared one budget session
        session, rows, spent = sessions[0]
        assert all(s.get("stopped") == "max-cost" for s in capped), capped
        assert 0 < spent <= cap, (spent, cap)
        assert rows == first_calls  # every answered request is in the ledger, once
        assert duplicates(cot_ws_path, session) == []
        done_first = sum(s["valid"] + s["failed"] for s in capped)
        assert 0 < done_first < N

        # 2. both uncapped: they finish the rest between them, each sample requested once (plus repairs)
        rest = run_pair(cot_ws_path, server, gated)
        second_calls = server.calls - first_calls
    assert sum(s["valid"] for s in rest) == N - done_first
    assert all(s["valid"] > 0 for s in rest), rest  # both did a share
    assert sum(s.get("elsewhere", 0) for s in rest) > 0  # and each left the other's claims alone
    later = query(cot_ws_path, "SELECT DISTINCT session FROM cot_calls WHERE session != ?", session)
    assert len(later) == 1
    assert duplicates(cot_ws_path, later[0][0]) == []
    ledgered = query(cot_ws_path, "SELECT COUNT(*) FROM cot_calls WHERE session = ?", later[0][0])[0][0]
    assert second_calls == ledgered <= (N - done_first) + REPAIRED
    assert query(cot_ws_path, "SELECT COUNT(*), SUM(status = 'valid') FROM rationales") == [(N, N)]
    assert query(cot_ws_path, "SELECT COUNT(*) FROM work_claims") == [(0,)]  # nothing left claimed
    print(f"capped: {first_calls} requests, ${spent:.4f} of ${cap}; uncapped: {second_calls} requests for"
          f" {N - done_first} samples; summaries {capped + rest}")


@pytest.mark.slow
def test_ingest_next_to_cot_never_locks_it_out(cot_ws_path: Path, tmp_path: Path) -> None:
    """cot keeps storing while an ingest runs (no writer starves the other), and neither sees a lock error."""
    tune(cot_ws_path, timeout_s=120.0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(N_PHOTOS):
        box_image(50_000 + i, size=256).save(photos / f"p{i:03d}.png")
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 12)
        gated = Gated(ScriptedModel.for_workspace(ws, MAX_SIDE))
    with OpenAIServer(gated, api_key=API_KEY, latency=0.1) as server:
        env = os.environ.copy()
        cot = subprocess.Popen([EXE, "cot", "--mode", "answer-driven", "--base-url", server.base_url,
                                "--concurrency", "1", "--json"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while server.calls == 0:  # cot is up and waits for its first reply
            assert time.monotonic() < deadline and cot.poll() is None, cot.communicate()
            time.sleep(0.02)
        ingest = subprocess.Popen([EXE, "ingest", str(photos), "--workers", "1", "--json"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not query(cot_ws_path, "SELECT 1 FROM runs WHERE stage = 'ingest' AND status = 'running'"):
            assert time.monotonic() < deadline and ingest.poll() is None, ingest.communicate()
            time.sleep(0.02)
        gated.gate.set()  # cot's replies come while ingest is writing
        results = [(p, *p.communicate(timeout=180)) for p in (ingest, cot)]
    for proc, _out, err in results:
        assert proc.returncode == 0 and "database is locked" not in err, err
    ingested = json.loads(results[0][1])
    assert ingested["added"] + ingested["near_duplicates"] == N_PHOTOS and ingested["rejected"] == 0
    assert json.loads(results[1][1])["valid"] == 12
    started, finished = query(cot_ws_path, "SELECT started_at, finished_at FROM runs WHERE stage = 'ingest'")[0]
    during = query(
        cot_ws_path, "SELECT COUNT(*) FROM rationales WHERE created_at BETWEEN ? AND ?", started, finished
    )[0][0]
    print(f"ingest {started} .. {finished}; rationales stored meanwhile: {during} of 12")
    assert during > 0  # cot's transactions got through while ingest was writing


def test_budget_holds_wait_settle_and_stop(ws_path: Path) -> None:
    """The workspace budget on its own: an unknown cost goes alone, holds wait for settlements, a cap stops."""
    with Workspace.open(ws_path) as a_ws, Workspace.open(ws_path) as b_ws:
        ids = make_samples(a_ws, 4)
        with claims.owner(a_ws.db, "cot") as a, claims.owner(b_ws.db, "cot") as b:
            budgets = [
                ledger.Budget(w.db, owner=o.id, session=o.session, max_cost=1.0, model="m", mode="answer-driven")
                for w, o in ((a_ws, a), (b_ws, b))
            ]

            def settle(i: int, ws: Workspace, sid: str, cost: float) -> None:
                with ws.transaction() as db:
                    call = ledger.Call(None, sid, "answer-driven", "m", 1, "first", Usage(cost_usd=cost),
                                       session=a.session)
                    ledger.record(db, call)
                    budgets[i].settle(db, sid, "first", call.usage)

            async def scenario() -> None:
                await budgets[0].hold(ids[0], "first")  # no cost known yet: it holds all that is left
                waiting = asyncio.create_task(budgets[1].hold(ids[1], "first"))
                await asyncio.sleep(0.2)
                assert not waiting.done()  # the other process waits for that reply
                settle(0, a_ws, ids[0], 0.3)
                await asyncio.wait_for(waiting, 5)  # now 0.3 spent + 1.25 x 0.3 fits
                third = asyncio.create_task(budgets[0].hold(ids[2], "first"))
                await asyncio.sleep(0.2)
                assert not third.done()  # 0.3 + 0.375 held + 0.375 > 1.0: waits
                with b_ws.transaction() as db:
                    budgets[1].release(db, ids[1])  # that request got no reply
                await asyncio.wait_for(third, 5)
                settle(0, a_ws, ids[2], 0.6)
                with pytest.raises(BudgetExceeded, match=r"spent \$0.9000 of the --max-cost \$1.0000"):
                    await budgets[1].hold(ids[3], "first")  # 0.9 + 0.75 > 1.0 and nothing in flight

            asyncio.run(scenario())
        assert a_ws.db.execute("SELECT COUNT(*) FROM cot_holds").fetchone()[0] == 0


def test_claims_of_one_moment_in_one_transaction_split_as_one_by_one(ws_path: Path) -> None:
    """claim_all_in (the stage's claims of one loop step): the outcome of each key as claim_in gives it."""
    with (
        Workspace.open(ws_path) as a_ws,
        Workspace.open(ws_path) as b_ws,
        claims.owner(a_ws.db, "cot") as a,
        claims.owner(b_ws.db, "cot") as b,
    ):
        assert b.claim("cot:x", "theirs")
        with a_ws.transaction() as db:
            got = a.claim_all_in(db, "cot:x", [("free", None), ("theirs", None), ("done", lambda db: False),
                                               ("free", None)])
        assert got == [True, False, False, True]  # its own claim met again: still held
        assert not b.claim("cot:x", "free") and b.claim("cot:x", "done")

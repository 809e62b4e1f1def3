"""The cost ledger's table (migration m300) and its totals."""

from __future__ import annotations

import pytest

from aesdata.llm import ledger
from aesdata.schema import Usage
from aesdata.workspace import Workspace
from tests.factories import make_samples


def test_cot_calls_schema(ws: Workspace) -> None:
    columns = [r["name"] for r in ws.db.execute("PRAGMA table_info(cot_calls)")]
    assert columns == [
        "id",
        "run_id",
        "sample_id",
        "mode",
        "model",
        "attempt",
        "kind",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "agreed",
        "created_at",
        "session",  # m310: the claims session whose --max-cost the call counts toward
    ]
    applied = {r[0] for r in ws.db.execute("SELECT name FROM _migrations")}
    assert {"m300_cot_calls", "m310_cot_budget"} <= applied


def test_totals_by_run_and_mode(ws: Workspace) -> None:
    (sid,) = make_samples(ws, 1)
    for _ in range(2):
        with ws.run("cot", {}):
            pass
    calls = [
        ledger.Call(
            1,
            sid,
            "automated",
            "m",
            1,
            "first",
            Usage(prompt_tokens=10, completion_tokens=5, cost_usd=0.5),
            agreed=False,
        ),
        ledger.Call(
            1,
            sid,
            "automated",
            "m",
            2,
            "first",
            Usage(prompt_tokens=20, completion_tokens=5, cost_usd=1.0),
            agreed=True,
        ),
        ledger.Call(
            2, sid, "answer-driven", "m", 1, "repair", Usage(prompt_tokens=1, completion_tokens=1, cost_usd=0.25)
        ),
    ]
    with ws.transaction() as db:
        for call in calls:
            ledger.record(db, call)
    assert ledger.totals(ws.db) == {
        "calls": 3,
        "prompt_tokens": 31,
        "completion_tokens": 11,
        "cost_usd": pytest.approx(1.75),
    }
    assert ledger.totals(ws.db, run_id=1)["cost_usd"] == pytest.approx(1.5)
    assert ledger.totals(ws.db, mode="answer-driven")["calls"] == 1
    agreed = [r[0] for r in ws.db.execute("SELECT agreed FROM cot_calls ORDER BY id")]
    assert agreed == [0, 1, None]

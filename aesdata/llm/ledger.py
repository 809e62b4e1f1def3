"""The cost ledger in the manifest (``cot_calls``): one row per answered model request.

Rows are written as requests return, in their own small transaction, so the ledger counts money
spent on samples a killed or budget-stopped run never finished. A rationale's own ``usage`` covers only
the requests that produced it; the ledger is the total spend.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from aesdata.schema import Usage, utcnow


@dataclass(frozen=True)
class Call:
    run_id: int | None
    sample_id: str
    mode: str
    model: str
    attempt: int
    kind: str  # "first" | "repair"
    usage: Usage
    agreed: bool | None = None
    request_id: str | None = None  # batch mode: the batch request that answered it


def record(db: sqlite3.Connection, call: Call) -> None:
    """One row per answered request; a batch reply met again when its sample is replayed is not counted twice."""
    db.execute(
        "INSERT OR IGNORE INTO cot_calls (run_id, sample_id, mode, model, attempt, kind, prompt_tokens,"
        " completion_tokens, cost_usd, agreed, created_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            call.run_id,
            call.sample_id,
            call.mode,
            call.model,
            call.attempt,
            call.kind,
            call.usage.prompt_tokens,
            call.usage.completion_tokens,
            call.usage.cost_usd,
            None if call.agreed is None else int(call.agreed),
            utcnow().isoformat(),
            call.request_id,
        ),
    )


def totals(db: sqlite3.Connection, *, run_id: int | None = None, mode: str | None = None) -> dict[str, float]:
    """Calls, tokens and cost, over everything or one run / mode."""
    where, args = [], []
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if mode is not None:
        where.append("mode = ?")
        args.append(mode)
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
        " COALESCE(SUM(cost_usd), 0.0) FROM cot_calls" + (" WHERE " + " AND ".join(where) if where else "")
    )
    calls, prompt, completion, cost = db.execute(sql, args).fetchone()
    return {"calls": calls, "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost}

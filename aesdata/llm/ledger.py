"""The cost ledger in the manifest (``cot_calls``): one row per answered model request.

Rows are written as requests return, in their own small transaction, so the ledger counts money
spent on samples a killed or budget-stopped run never finished. A rationale's own ``usage`` covers only
the requests that produced it; the ledger is the total spend.

:class:`Budget` makes ``--max-cost`` hold per workspace: the cot runs alive on it at the same time (one
claims session, :mod:`aesdata.claims`) share one cap. Before a request is sent it holds an estimate of
its cost (``cot_holds``), in a transaction that first checks what the session has spent and holds; the
reply's ledger row settles it in the transaction that records it. A killed run's holds die with it.
A stage that commits in groups (:mod:`aesdata.llm.commits`) passes its committer as ``run``: a hold is
then one unit of a group transaction, still checked and written atomically.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aesdata.db import transaction
from aesdata.llm.client import BudgetExceeded
from aesdata.schema import Usage, utcnow

T = TypeVar("T")
#: Runs a function of the connection in a write transaction: inline, or by the stage's committer.
Run = Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]


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
    session: str | None = None  # the claims session the request's cost counts toward
    request_id: str | None = None  # batch mode: the batch request that answered it


def record(db: sqlite3.Connection, call: Call) -> None:
    """One row per answered request; a batch reply met again when its sample is replayed is not counted twice."""
    db.execute(
        "INSERT OR IGNORE INTO cot_calls (run_id, sample_id, mode, model, attempt, kind, prompt_tokens,"
        " completion_tokens, cost_usd, agreed, created_at, session, request_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            call.session,
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


class Budget:
    """``--max-cost`` over one claims session: what its runs spent plus what their requests in flight hold.

    A request holds ``HEADROOM`` times the dearest request of its kind (``first``/``repair``) seen for
    this model and mode (of a kind not seen yet, ``UNSEEN`` times the dearest of another kind); before
    any is seen at all, all that is left (so the first request goes alone). The
    cap holds exactly unless a request costs more than its hold, and then by that difference at most.
    A request that does not fit waits while others are in flight (their replies may cost less than they
    hold), and stops the run when none are.
    """

    HEADROOM = 1.25
    #: A kind not seen yet is estimated at this many times the dearest request seen of another kind (a
    #: repair carries the first request and its reply). Before, it held all that was left and went alone:
    #: it then waited behind every other request until little was left, and overshot the cap by its cost.
    UNSEEN = 2.0
    POLL_S = 0.05

    def __init__(
        self,
        db: sqlite3.Connection,
        *,
        owner: str,
        session: str,
        max_cost: float,
        model: str,
        mode: str,
        run: Run | None = None,
    ) -> None:
        self.db, self.owner, self.session, self.max_cost = db, owner, session, max_cost
        self.model, self.mode = model, mode
        self.dearest: dict[str, float] = {}
        self._run = run or self._inline

    async def _inline(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        with transaction(self.db) as db:
            return unit(db)

    def spent(self, db: sqlite3.Connection) -> tuple[float, float]:
        """(settled, held) over the session."""
        settled = db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0.0) FROM cot_calls WHERE session = ?", (self.session,)
        ).fetchone()[0]
        held = db.execute(
            "SELECT COALESCE(SUM(amount), 0.0) FROM cot_holds WHERE session = ?", (self.session,)
        ).fetchone()[0]
        return settled, held

    def _estimate(self, db: sqlite3.Connection, kind: str) -> float | None:
        if kind not in self.dearest:
            row = db.execute(
                "SELECT MAX(cost_usd) FROM cot_calls WHERE model = ? AND mode = ? AND kind = ?",
                (self.model, self.mode, kind),
            ).fetchone()
            if row[0] is not None:
                self.dearest[kind] = row[0]
        return self.dearest.get(kind)

    def _exceeded(self, settled: float, why: str) -> BudgetExceeded:
        return BudgetExceeded(
            f"the cot runs on this workspace spent ${settled:.4f} of the --max-cost ${self.max_cost:.4f}"
            f"{why}: no new requests",
            hint="work done so far is stored; raise --max-cost and run again to continue",
        )

    async def hold(self, sample_id: str, kind: str) -> None:
        """Hold the next request's estimated cost; :class:`BudgetExceeded` when the session cannot afford it."""
        while not await self._run(lambda db: self._hold(db, sample_id, kind)):
            await asyncio.sleep(self.POLL_S)

    def _hold(self, db: sqlite3.Connection, sample_id: str, kind: str) -> bool:
        """Hold it if it fits (True); False to wait for the requests in flight; raise if none are."""
        settled, held = self.spent(db)
        if settled >= self.max_cost:
            raise self._exceeded(settled, "")
        estimate = self._estimate(db, kind)
        if estimate is None and self.dearest:  # a new kind (the first repair): bounded by what is known
            estimate = self.UNSEEN * max(self.dearest.values())
        amount = self.max_cost - settled if estimate is None else estimate * self.HEADROOM
        if settled + held + amount <= self.max_cost or (estimate is None and held == 0):
            db.execute(
                "INSERT OR REPLACE INTO cot_holds (owner, sample_id, session, amount) VALUES (?, ?, ?, ?)",
                (self.owner, sample_id, self.session, amount),
            )
            return True
        if held == 0:
            raise self._exceeded(settled, f" (the next request would cost about ${amount:.4f})")
        return False

    def settle(self, db: sqlite3.Connection, sample_id: str, kind: str, usage: Usage) -> None:
        """Drop the request's hold; call inside the transaction that records its ledger row."""
        self.dearest[kind] = max(self.dearest.get(kind, 0.0), usage.cost_usd)
        self.release(db, sample_id)

    def release(self, db: sqlite3.Connection, sample_id: str) -> None:
        """Drop a hold whose request got no reply (call inside a transaction)."""
        db.execute("DELETE FROM cot_holds WHERE owner = ? AND sample_id = ?", (self.owner, sample_id))

"""Replies received for items not finished yet, kept so that a resumed run does not buy them again.

An online reply is kept (``llm_replies``) in the transaction that ledgers it, and the item's result goes
in a later one: a run killed in between (a sample answered and waiting to be stored, or one waiting on
its repair) leaves paid replies that a re-run would otherwise ask for again. The re-run takes them from
here and asks only for what had no reply yet (the requests in flight at the kill, and the replies still
waiting for their ledger row). An item's rows go with its result.

A kept reply answers only the same request: the same scope (stage and mode), item, attempt and kind, and
the same ``guard``, a hash the stage makes of everything else the request was built from (model, prompt
templates, label, image settings). Batch mode keeps its replies with its batches (:mod:`aesdata.llm.batch`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from aesdata.llm.client import ChatResult
from aesdata.schema import Usage


def guard(*parts: object) -> str:
    """The hash a kept reply is taken for: ``parts`` are what its request was built from."""
    return hashlib.sha256("\n".join(map(str, parts)).encode()).hexdigest()[:32]


def keep(db: sqlite3.Connection, scope: str, item: str, attempt: int, kind: str, guard: str,
         result: ChatResult) -> None:
    """Keep a reply (one per request of the item: a newer one, for another guard, replaces it)."""
    db.execute(
        "INSERT OR REPLACE INTO llm_replies (scope, item, attempt, kind, guard, content, finish_reason, model,"
        " prompt_tokens, completion_tokens, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (scope, item, attempt, kind, guard, result.text, result.finish_reason, result.model,
         result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cost_usd),
    )


def forget(db: sqlite3.Connection, scope: str, item: str) -> None:
    """The item is finished: its kept replies go."""
    db.execute("DELETE FROM llm_replies WHERE scope = ? AND item = ?", (scope, item))


@dataclass(frozen=True)
class Kept:
    """The replies a run found kept for its scope (read once, when the run starts)."""

    scope: str
    items: frozenset[str]

    @classmethod
    def read(cls, db: sqlite3.Connection, scope: str) -> Kept:
        rows = db.execute("SELECT DISTINCT item FROM llm_replies WHERE scope = ?", (scope,))
        return cls(scope, frozenset(r[0] for r in rows))

    def take(self, db: sqlite3.Connection, item: str, attempt: int, kind: str, guard: str) -> ChatResult | None:
        """The kept reply to this request, or None (ask the endpoint). An item without any costs no query."""
        if item not in self.items:
            return None
        row = db.execute(
            "SELECT content, finish_reason, model, prompt_tokens, completion_tokens, cost_usd FROM llm_replies"
            " WHERE scope = ? AND item = ? AND attempt = ? AND kind = ? AND guard = ?",
            (self.scope, item, attempt, kind, guard),
        ).fetchone()
        if row is None:
            return None
        usage = Usage(prompt_tokens=row[3], completion_tokens=row[4], cost_usd=row[5])
        return ChatResult(text=row[0], usage=usage, model=row[2], finish_reason=row[1], tries=0)

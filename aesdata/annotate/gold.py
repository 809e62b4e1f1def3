"""Gold tasks: samples whose answer is known, mixed unseen into what annotators label.

A known answer is either a synthetic label (the defects the synthetic generator drew in on purpose)
or a human label a reviewer settled. :func:`choose_gold` picks a share of the samples about to be
pushed among those, by a hash of the sample id (so the choice is the same on a re-run and spread over
the push), and records the answer in ``ls_gold`` *before* the import: the answer never leaves the
workspace, and the task looks like every other one (same data keys, no prediction, same batch).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence

from aesdata.schema import Judgement, utcnow
from aesdata.workspace import Workspace


def known_answers(db: sqlite3.Connection, sample_ids: Sequence[str]) -> dict[str, tuple[Judgement, str]]:
    """Known answers (judgement, origin) of the given samples: a reviewer's label wins over a synthetic one."""
    wanted = set(sample_ids)
    out: dict[str, tuple[Judgement, str]] = {}
    for row in db.execute(
        "SELECT sample_id, judgement, origin, reviewed_by FROM labels"
        " WHERE origin = 'synthetic' OR reviewed_by IS NOT NULL ORDER BY origin = 'human'"
    ):
        if row["sample_id"] in wanted:
            origin = "reviewed" if row["origin"] == "human" else "synthetic"
            out[row["sample_id"]] = (Judgement.model_validate_json(row["judgement"]), origin)
    return out


def choose_gold(ws: Workspace, pending: Sequence[str], fraction: float) -> list[str]:
    """Make ``fraction`` of ``pending`` (rounded, at least one when asked for) gold; return the gold ones.

    Samples an interrupted push already chose count towards the share, so a re-run chooses no more.
    """
    if fraction <= 0 or not pending:
        return []
    already = {r[0] for r in ws.db.execute("SELECT sample_id FROM ls_gold")} & set(pending)
    known = known_answers(ws.db, [sid for sid in pending if sid not in already])
    want = max(1, round(fraction * len(pending))) - len(already)
    chosen = sorted(known, key=lambda sid: hashlib.sha256(f"gold|{sid}".encode()).hexdigest())[: max(want, 0)]
    now = utcnow().isoformat()
    with ws.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO ls_gold (sample_id, judgement, origin, created_at) VALUES (?, ?, ?, ?)",
            [(sid, known[sid][0].model_dump_json(), known[sid][1], now) for sid in chosen],
        )
    return sorted(already) + chosen


def gold_answers(db: sqlite3.Connection) -> dict[str, Judgement]:
    """Every gold sample's known answer."""
    return {r[0]: Judgement.model_validate_json(r[1]) for r in db.execute("SELECT sample_id, judgement FROM ls_gold")}

"""Counts per stage, derived from rows: the numbers ``aesdata status`` prints, and the interrupted runs."""

from __future__ import annotations

from typing import Any

from aesdata.workspace import Workspace

#: Key -> SQL returning one integer. Scripts rely on these key names (DESIGN.md).
_COUNTS: dict[str, str] = {
    "sources": "SELECT COUNT(*) FROM sources",
    "near_duplicates": "SELECT COUNT(*) FROM near_duplicates",
    "rejected": "SELECT COUNT(*) FROM rejections",
    "candidates": "SELECT COUNT(*) FROM candidates",
    "samples": "SELECT COUNT(*) FROM samples",
    "labelled": "SELECT COUNT(DISTINCT sample_id) FROM labels",
    "rationales_valid": "SELECT COUNT(*) FROM rationales WHERE status = 'valid'",
    "rationales_failed": "SELECT COUNT(*) FROM rationales WHERE status = 'failed'",
    "versions": "SELECT COUNT(*) FROM versions",
    "interrupted_runs": "SELECT COUNT(*) FROM runs WHERE status = 'interrupted'",
}


def counts(ws: Workspace) -> dict[str, int]:
    return {key: int(ws.db.execute(sql).fetchone()[0]) for key, sql in _COUNTS.items()}


def interrupted(ws: Workspace) -> list[dict[str, Any]]:
    """Runs that were killed (or lost their machine) before they could record an ending, oldest first.

    Their finished work is kept (stages commit as they go); running the stage again does the rest.
    """
    rows = ws.db.execute(
        "SELECT id, stage, started_at, finished_at FROM runs WHERE status = 'interrupted' ORDER BY id"
    )
    return [{"run": r["id"], "stage": r["stage"], "started_at": r["started_at"], "found_at": r["finished_at"]}
            for r in rows]


def report(ws: Workspace) -> dict[str, Any]:
    """``aesdata status --json``: the counts, then ``interrupted`` (see :func:`interrupted`)."""
    return {**counts(ws), "interrupted": interrupted(ws)}

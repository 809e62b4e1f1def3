"""Counts per stage, derived from rows: the numbers ``aesdata status`` prints."""

from __future__ import annotations

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
}


def counts(ws: Workspace) -> dict[str, int]:
    return {key: int(ws.db.execute(sql).fetchone()[0]) for key, sql in _COUNTS.items()}

"""Near-duplicate groups, from the links ingest recorded.

Two kinds of link, both found with :class:`aesdata.nearindex.HashIndex` at ingest:
``near_duplicates`` (an image within ``near_duplicate_threshold`` of a source: not a source itself)
and ``source_links`` (two sources within ``group_threshold``: related, both kept). Publish puts every
source of a group in the same split so no near-duplicate crosses splits.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field


def source_groups(db: sqlite3.Connection) -> dict[str, str]:
    """Source id -> group id (the smallest source id of its connected component of links)."""
    parent: dict[str, str] = {row[0]: row[0] for row in db.execute("SELECT id FROM sources")}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in db.execute("SELECT a, b FROM source_links"):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {sid: find(sid) for sid in parent}


@dataclass
class DuplicateGroup:
    source_id: str
    origin: str
    duplicates: list[tuple[str, int]] = field(default_factory=list)  # (origin, distance)
    related: list[tuple[str, int]] = field(default_factory=list)  # (source origin, distance)


def duplicate_groups(db: sqlite3.Connection) -> list[DuplicateGroup]:
    """Every source that has near-duplicates or related sources, with them, for ``aesdata dupes``."""
    groups: dict[str, DuplicateGroup] = {}

    def group(source_id: str) -> DuplicateGroup:
        if source_id not in groups:
            origin = db.execute("SELECT origin FROM sources WHERE id = ?", (source_id,)).fetchone()[0]
            groups[source_id] = DuplicateGroup(source_id, origin)
        return groups[source_id]

    for dup_of, origin, distance in db.execute(
        "SELECT duplicate_of, origin, distance FROM near_duplicates ORDER BY duplicate_of, distance, origin"
    ).fetchall():
        group(dup_of).duplicates.append((origin, distance))
    for a, b, distance in db.execute(
        "SELECT l.a, s.origin, l.distance FROM source_links l JOIN sources s ON s.id = l.b ORDER BY l.a, l.distance"
    ).fetchall():
        group(a).related.append((b, distance))
    return sorted(groups.values(), key=lambda g: g.origin)

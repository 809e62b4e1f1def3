"""Near-duplicate links and groups: the workspace side of :mod:`aesdata.nearindex`.

Two kinds of link: ``near_duplicates`` (an image within ``near_duplicate_threshold`` of a source: not a
source itself) and ``source_links`` (two sources within ``group_threshold``: related, both kept). Publish
puts every source of a group in the same split so no near-duplicate crosses splits.

Ingest decides each batch of a few hundred images at once (:meth:`SourceIndex.assign`: a search within the
near-duplicate radius) and records its new sources in ``unlinked_sources``; their links, a search within
the wider group radius, are found ``LINK_BATCH`` sources at a time (:meth:`SourceIndex.link`), where the
search's join kernel pays. A kill leaves the unlinked rows behind: the next ingest links them, and publish
and ``aesdata dupes`` link any left before they read the groups (:func:`link_unlinked`).
``aesdata dupes --rebuild`` decides and links everything again in batches of ``BATCH``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import imagehash
import numpy as np

from aesdata.blobs import BlobStore
from aesdata.config import IngestSettings
from aesdata.db import to_signed64, to_unsigned64, transaction
from aesdata.imageio import flatten
from aesdata.nearindex import JOIN_BATCH, Assignment, NearIndex
from aesdata.progress import LogReporter, Reporter

FETCH = 65536  # rows per fetch when loading hashes: no list of 10M tuples in memory
LINK_BATCH = JOIN_BATCH  # new sources per link search: as many as a rebuild's calls, where the join pays most


def _fetch_columns(cursor: sqlite3.Cursor) -> tuple[np.ndarray, np.ndarray]:
    """(int64 first column, uint64 second column) of a two-integer-column query, fetched in slices."""
    firsts, seconds = [np.empty(0, np.int64)], [np.empty(0, np.uint64)]
    while rows := cursor.fetchmany(FETCH):
        a = np.array(rows, dtype=np.int64).reshape(-1, 2)
        firsts.append(a[:, 0])
        seconds.append(a[:, 1].view(np.uint64))  # stored signed: the same 64 bits
    return np.concatenate(firsts), np.concatenate(seconds)


class SourceIndex:
    """The workspace's sources in a :class:`NearIndex`; index positions map to ``sources`` rowids.
    ``unlinked``: position -> id of the sources whose links are not written yet."""

    def __init__(self, db: sqlite3.Connection, settings: IngestSettings) -> None:
        self.db = db
        self.near_radius = settings.near_duplicate_threshold
        rowids, hashes = _fetch_columns(db.execute("SELECT rowid, phash FROM sources ORDER BY rowid"))
        self.index = NearIndex(settings.group_threshold, hashes)
        self._rowids = rowids
        waiting = db.execute(
            "SELECT s.rowid, u.source_id FROM unlinked_sources u JOIN sources s ON s.id = u.source_id").fetchall()
        at = np.searchsorted(rowids, np.array([r for r, _ in waiting], dtype=np.int64)).tolist()
        self.unlinked: dict[int, str] = dict(zip(at, (sid for _, sid in waiting), strict=True))

    def assign(self, phashes: list[int]) -> Assignment:
        """Which hashes are near-duplicates and which new sources (no links: :meth:`link` finds them)."""
        return self.index.assign(np.array(phashes, dtype=np.uint64), self.near_radius, links=False)

    def added(self, rows: list[tuple[int, str]]) -> None:
        """(rowid, id) of the sources just inserted (each with :func:`mark_unlinked`) for the last
        assignment's new positions, in order."""
        self.unlinked.update((len(self._rowids) + k, sid) for k, (_, sid) in enumerate(rows))
        self._rowids = np.concatenate([self._rowids, np.array([r for r, _ in rows], dtype=np.int64)])

    def source_id(self, position: int) -> str:
        return self.db.execute("SELECT id FROM sources WHERE rowid = ?", (int(self._rowids[position]),)).fetchone()[0]

    def link(self) -> int:
        """Search the unlinked sources' links and write them, with the end of their ``unlinked_sources``
        rows, in one transaction; returns the number of links written."""
        if not self.unlinked:
            return 0
        mine, other, distance = self.index.links_of(np.fromiter(self.unlinked, np.int64, len(self.unlinked)))
        ids = dict(self.unlinked)
        ids.update((p, self.source_id(p)) for p in set(other.tolist()) - ids.keys())  # older partners: few
        rows = [(min(ids[a], ids[b]), max(ids[a], ids[b]), d)
                for a, b, d in zip(mine.tolist(), other.tolist(), distance.tolist(), strict=True)]
        with transaction(self.db):
            self.db.executemany("INSERT OR IGNORE INTO source_links (a, b, distance) VALUES (?, ?, ?)", rows)
            self.db.executemany("DELETE FROM unlinked_sources WHERE source_id = ?",
                                [(sid,) for sid in self.unlinked.values()])
        self.unlinked = {}
        return len(rows)


def mark_unlinked(db: sqlite3.Connection, source_id: str) -> None:
    """Record a new source as waiting for its links (in the transaction that inserts it)."""
    db.execute("INSERT INTO unlinked_sources (source_id) VALUES (?)", (source_id,))


def link_unlinked(db: sqlite3.Connection, settings: IngestSettings) -> int:
    """Link the sources an interrupted ingest left unlinked, before anything reads the groups."""
    if db.execute("SELECT 1 FROM unlinked_sources LIMIT 1").fetchone() is None:
        return 0
    return SourceIndex(db, settings).link()


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


# --------------------------------------------------------------------------- rebuild


@dataclass
class RebuildSummary:
    images: int = 0
    sources: int = 0
    near_duplicates: int = 0
    links: int = 0
    promoted: int = 0  # near-duplicates that became sources
    demoted: int = 0  # sources that became near-duplicates
    kept_with_samples: int = 0  # sources that would be near-duplicates but already have a sample

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


BATCH = JOIN_BATCH  # hashes per assign() call in a rebuild: enough for the search's join kernel


def _missing_phashes(db: sqlite3.Connection, blobs: BlobStore) -> None:
    """Near-duplicates ingested before their pHash was recorded get it from their blob (lossless PNG:
    the same pixels ingest hashed)."""
    for (sha,) in db.execute("SELECT sha256 FROM near_duplicates WHERE phash IS NULL").fetchall():
        value = int(str(imagehash.phash(flatten(blobs.open(sha)))), 16)
        db.execute("UPDATE near_duplicates SET phash = ? WHERE sha256 = ?", (to_signed64(value), sha))


def rebuild(db: sqlite3.Connection, blobs: BlobStore, settings: IngestSettings,
            reporter: Reporter | None = None) -> RebuildSummary:
    """Decide again, with the current thresholds, which images are sources and which near-duplicates,
    and every link between sources, exactly as an ingest of the same images in the same order would.

    Images are taken in the order ingest first saw them. A source that already has a sample stays a
    source. Everything is written in one transaction: an interrupted rebuild changes nothing, and a
    rebuild run again (or after an ingest with the same thresholds) changes nothing either.
    """
    reporter = reporter or LogReporter()
    db.execute("BEGIN IMMEDIATE")
    try:
        _missing_phashes(db, blobs)
        images = db.execute(
            "SELECT sha, phash FROM ("
            "  SELECT id AS sha, phash FROM sources UNION ALL SELECT sha256, phash FROM near_duplicates"
            ") LEFT JOIN (SELECT sha256, MIN(rowid) AS first FROM ingest_log GROUP BY sha256) ON sha256 = sha "
            "ORDER BY first IS NULL, first, sha"
        ).fetchall()
        shas = [sha for sha, _ in images]
        hashes = np.array([to_unsigned64(p) for _, p in images], dtype=np.uint64)
        pinned_ids = {row[0] for row in db.execute("SELECT source_id FROM samples")}
        pinned = np.array([sha in pinned_ids for sha in shas], dtype=bool)
        index = NearIndex(settings.group_threshold)
        positions, near_of, distance, links = [], [], [], []
        with reporter.task("dupes --rebuild", len(shas)) as task:
            for start in range(0, len(shas), BATCH):
                a = index.assign(hashes[start : start + BATCH], settings.near_duplicate_threshold,
                                 pinned[start : start + BATCH])
                positions.append(a.position)
                near_of.append(a.near_of)
                distance.append(a.distance)
                links.append((a.links[0] + start, a.links[1], a.links[2]))
                task.advance(len(a.position))
        summary = _apply(db, blobs, shas, positions, near_of, distance, links, pinned,
                         settings.near_duplicate_threshold)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return summary


def _apply(db: sqlite3.Connection, blobs: BlobStore, shas: list[str], positions: list[np.ndarray],
           near_of: list[np.ndarray], distance: list[np.ndarray],
           links: list[tuple[np.ndarray, np.ndarray, np.ndarray]], pinned: np.ndarray,
           near_radius: int) -> RebuildSummary:
    """Write the decisions as differences from the current rows (unchanged rows are left alone;
    moved rows keep their origin and ``created_at``: the image was ingested then, not now)."""
    position = np.concatenate(positions) if positions else np.empty(0, np.int64)
    source_of_position = np.array(shas, dtype=object)[position >= 0] if len(shas) else np.empty(0, object)
    near = np.concatenate(near_of) if near_of else np.empty(0, np.int64)
    dist = np.concatenate(distance) if distance else np.empty(0, np.int64)
    is_source = {sha: True for sha, in db.execute("SELECT id FROM sources")}
    summary = RebuildSummary(images=len(shas), sources=int((position >= 0).sum()))
    # 1. promoted near-duplicates become sources first, so every near-duplicate row can point at its source
    for k in np.nonzero(position >= 0)[0]:
        sha = shas[k]
        if sha not in is_source:
            origin, created, phash = db.execute(
                "SELECT origin, created_at, phash FROM near_duplicates WHERE sha256 = ?", (sha,)).fetchone()
            img = blobs.open(sha)
            db.execute(
                "INSERT INTO sources (id, width, height, mode, phash, dhash, origin, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sha, img.width, img.height, img.mode, phash,
                 to_signed64(int(str(imagehash.dhash(flatten(img))), 16)), origin, created))
            db.execute("DELETE FROM near_duplicates WHERE sha256 = ?", (sha,))
            summary.promoted += 1
    # 2. near-duplicates: updated in place, or made from a demoted source
    demoted = []
    for k in np.nonzero(position < 0)[0]:
        sha, of, d = shas[k], str(source_of_position[near[k]]), int(dist[k])
        if sha in is_source:
            origin, created, phash = db.execute(
                "SELECT origin, created_at, phash FROM sources WHERE id = ?", (sha,)).fetchone()
            db.execute("INSERT INTO near_duplicates (sha256, duplicate_of, distance, origin, created_at, phash)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (sha, of, d, origin, created, phash))
            demoted.append(sha)
        else:
            db.execute("UPDATE near_duplicates SET duplicate_of = ?, distance = ? WHERE sha256 = ?"
                       " AND (duplicate_of != ? OR distance != ?)", (of, d, sha, of, d))
    summary.near_duplicates = int((position < 0).sum())
    # 3. links between sources, then the demoted sources themselves (nothing points at them any more)
    db.execute("DELETE FROM source_links")
    db.execute("DELETE FROM unlinked_sources")  # every source is linked below
    kept = set()
    for (q, p, d) in links:
        for i, j, dd in zip(q.tolist(), p.tolist(), d.tolist(), strict=True):
            if pinned[i] and dd <= near_radius:  # a pinned source with a source close enough to be its original
                kept.add(i)
            a, b = shas[i], str(source_of_position[j])
            db.execute("INSERT OR IGNORE INTO source_links (a, b, distance) VALUES (?, ?, ?)",
                       (min(a, b), max(a, b), dd))
            summary.links += 1
    for sha in demoted:
        db.execute("DELETE FROM sources WHERE id = ?", (sha,))
    summary.demoted = len(demoted)
    summary.kept_with_samples = len(kept)
    # 4. each input's outcome as ingest would log it now: the first input of a source "added", later copies
    # of it "exact", every input of a near-duplicate "near"
    db.execute("CREATE TEMP TABLE IF NOT EXISTS first_input (sha256 TEXT PRIMARY KEY, first INTEGER)")
    db.execute("DELETE FROM first_input")
    db.execute("INSERT INTO first_input SELECT sha256, MIN(rowid) FROM ingest_log WHERE sha256 IS NOT NULL"
               " GROUP BY sha256")
    db.execute(
        "UPDATE ingest_log SET outcome = CASE WHEN sha256 NOT IN (SELECT id FROM sources) THEN 'near'"
        " WHEN rowid = (SELECT first FROM first_input f WHERE f.sha256 = ingest_log.sha256) THEN 'added'"
        " ELSE 'exact' END WHERE sha256 IS NOT NULL")
    return summary

"""Published versions: their rows, the changelog between two of them, and the rules for a new one.

A version is recorded (its ``versions`` row and every ``version_rows`` row) in one transaction, only
after its folder is complete and in place, so a kill at any point leaves either a whole version or
none. A recorded version is never rewritten; only its Hub upload (repo id and commit) is added later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from aesdata import store
from aesdata.errors import AesdataError
from aesdata.schema import DatasetVersion, Split


@dataclass(frozen=True, slots=True)
class VersionRow:
    sample_id: str
    split: Split
    label_hash: str
    rationale_mode: str | None
    row_hash: str


@dataclass(frozen=True)
class Changelog:
    """What changed from ``old`` to ``new`` (``old`` None: the first version)."""

    old: str | None
    new: str
    added: list[str]
    removed: list[str]
    relabelled: list[str]
    rationale_changed: list[str]
    moved_to_test: list[str]

    def summary(self) -> dict[str, int | str | None]:
        return {
            "from": self.old,
            "to": self.new,
            "added": len(self.added),
            "removed": len(self.removed),
            "relabelled": len(self.relabelled),
            "rationale_changed": len(self.rationale_changed),
            "moved_to_test": len(self.moved_to_test),
        }


def semver(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def get_version(db: sqlite3.Connection, version: str) -> DatasetVersion | None:
    return next((v for v in store.get_versions(db) if v.version == version), None)


def with_content(db: sqlite3.Connection, content_hash: str) -> DatasetVersion | None:
    """A recorded version with exactly this content, if any."""
    return next((v for v in store.get_versions(db) if v.content_hash == content_hash), None)


def latest_below(db: sqlite3.Connection, version: str) -> DatasetVersion | None:
    """The newest recorded version older than ``version``: the one a changelog compares against."""
    older = [v for v in store.get_versions(db) if semver(v.version) < semver(version)]
    return max(older, key=lambda v: semver(v.version), default=None)


def check_new(db: sqlite3.Connection, version: str) -> None:
    """A new version must be newer than every recorded one (history is never rewritten)."""
    newest = max(store.get_versions(db), key=lambda v: semver(v.version), default=None)
    if newest is not None and semver(version) <= semver(newest.version):
        raise AesdataError(
            f"version {version}: not newer than the latest published version {newest.version}",
            hint="pick a higher version; published versions are never overwritten",
        )


def rows(db: sqlite3.Connection, version: str) -> dict[str, VersionRow]:
    cur = db.execute(
        "SELECT sample_id, split, label_hash, rationale_mode, row_hash FROM version_rows WHERE version = ?",
        (version,),
    )
    return {r[0]: VersionRow(*r) for r in cur}


def previous_splits(db: sqlite3.Connection) -> dict[str, Split]:
    """Every sample's split in earlier versions; a sample ever in test counts as test."""
    cur = db.execute("SELECT sample_id, MAX(split = 'test') FROM version_rows GROUP BY sample_id")
    return {sample_id: "test" if in_test else "train" for sample_id, in_test in cur}


def changelog(old: dict[str, VersionRow], new: dict[str, VersionRow], old_name: str | None, new_name: str) -> Changelog:
    both = sorted(old.keys() & new.keys())
    return Changelog(
        old=old_name,
        new=new_name,
        added=sorted(new.keys() - old.keys()),
        removed=sorted(old.keys() - new.keys()),
        relabelled=[s for s in both if old[s].label_hash != new[s].label_hash],
        rationale_changed=[
            s for s in both if old[s].label_hash == new[s].label_hash and old[s].row_hash != new[s].row_hash
        ],
        moved_to_test=[s for s in both if old[s].split == "train" and new[s].split == "test"],
    )


def diff(db: sqlite3.Connection, a: str, b: str) -> Changelog:
    """Changelog from recorded version ``a`` to recorded version ``b``."""
    for v in (a, b):
        if get_version(db, v) is None:
            raise AesdataError(f"version {v}: not published in this workspace", hint="see `aesdata versions`")
    return changelog(rows(db, a), rows(db, b), a, b)


def record(db: sqlite3.Connection, version: DatasetVersion, version_rows: Iterable[VersionRow]) -> None:
    """Record a complete version (call inside one transaction)."""
    store.insert_version(db, version)
    db.executemany(
        "INSERT INTO version_rows (version, sample_id, split, label_hash, rationale_mode, row_hash)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ((version.version, r.sample_id, r.split, r.label_hash, r.rationale_mode, r.row_hash) for r in version_rows),
    )


def record_upload(db: sqlite3.Connection, version: DatasetVersion, repo_id: str, commit_id: str) -> DatasetVersion:
    """Add the Hub upload of an already recorded version (the only change a version ever gets)."""
    updated = version.model_copy(update={"repo_id": repo_id, "commit_id": commit_id})
    db.execute("UPDATE versions SET record = ? WHERE version = ?", (updated.model_dump_json(), version.version))
    return updated

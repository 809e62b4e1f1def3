"""A workspace: ``aesdata.toml`` settings, ``aesdata.db`` manifest and ``blobs/`` image store.

Found through an explicit path (``-w``), then ``AESDATA_WORKSPACE``, then the current folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aesdata import db as dbmod
from aesdata.blobs import BlobStore, open_store
from aesdata.clock import utcnow
from aesdata.config import TEMPLATE, Settings, load_settings
from aesdata.errors import AesdataError, WorkspaceNotFound
from aesdata.runowner import Owner

ENV_VAR = "AESDATA_WORKSPACE"
SETTINGS_FILE = "aesdata.toml"
DB_FILE = "aesdata.db"
BLOBS_DIR = "blobs"


@dataclass
class RunRecorder:
    """Counts what a stage did; saved to the ``runs`` row when the stage ends, however it ends."""

    id: int
    stage: str
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.settings: Settings = load_settings(self.root / SETTINGS_FILE)
        self.db: sqlite3.Connection = dbmod.connect(self.root / DB_FILE)
        dbmod.apply_migrations(self.db)
        self.blobs: BlobStore = open_store(self.settings.blobs.url, self.root / BLOBS_DIR, base=self.root)
        self.mark_interrupted()
        self.blobs.sweep_temporary()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: Path | str | None = None) -> Workspace:
        """Open the workspace at ``path``, else ``$AESDATA_WORKSPACE``, else the current folder."""
        if path is not None:
            root, how = Path(path), "given with -w/--workspace"
        elif os.environ.get(ENV_VAR):
            root, how = Path(os.environ[ENV_VAR]), f"from {ENV_VAR}"
        else:
            root, how = Path.cwd(), "the current folder"
        if not (root / SETTINGS_FILE).is_file() or not (root / DB_FILE).is_file():
            raise WorkspaceNotFound(
                f"{root}: not an aesdata workspace ({how}; no {SETTINGS_FILE} / {DB_FILE})",
                hint=f"create one with `aesdata init DIR`, then pass -w DIR or set {ENV_VAR}",
            )
        return cls(root)

    @classmethod
    def init(cls, path: Path | str) -> Workspace:
        """Create a workspace (idempotent: an existing one is opened and migrated, never reset)."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise AesdataError(f"{root}: exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        settings = root / SETTINGS_FILE
        if not settings.exists():
            settings.write_text(TEMPLATE, encoding="utf-8")
        (root / BLOBS_DIR).mkdir(exist_ok=True)
        dbmod.connect(root / DB_FILE).close()
        return cls(root)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

    def transaction(self) -> Any:
        """``with ws.transaction() as db:`` — one committed unit of work."""
        return dbmod.transaction(self.db)

    def mark_interrupted(self) -> list[int]:
        """Mark ``interrupted`` the ``running`` runs whose process is gone (killed, or the machine rebooted).

        A kill leaves no chance to record an ending, so the next opening of the workspace does it. Runs
        started on another host, and runs from before owners were recorded, are left as they are.
        """
        here = Owner.current()
        rows = self.db.execute(
            "SELECT id, pid, host, boot_id, proc_start FROM runs WHERE status = 'running' AND pid IS NOT NULL"
        ).fetchall()
        gone = [r["id"] for r in rows if Owner(r["pid"], r["host"], r["boot_id"], r["proc_start"]).is_gone(here)]
        if gone:
            with self.transaction():
                self.db.executemany(
                    "UPDATE runs SET status = 'interrupted', finished_at = ? WHERE id = ? AND status = 'running'",
                    [(utcnow().isoformat(), run_id) for run_id in gone],
                )
        return gone

    @contextmanager
    def run(self, stage: str, params: dict[str, Any]) -> Iterator[RunRecorder]:
        """Record one stage invocation in ``runs``; its status says how it ended.

        The row names its process (see :mod:`aesdata.runowner`), so a run that was killed is marked
        ``interrupted`` when the workspace is next opened. Secrets must never be in ``params``:
        callers pass settings, not credentials.
        """
        me = Owner.current()
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO runs (stage, params, status, started_at, pid, host, boot_id, proc_start)"
                " VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (stage, json.dumps(params, default=str, sort_keys=True), utcnow().isoformat(),
                 me.pid, me.host, me.boot_id, me.started),
            )
        rec = RunRecorder(id=int(cur.lastrowid or 0), stage=stage)
        status = "failed"
        try:
            yield rec
            status = "done"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            with self.transaction():
                self.db.execute(
                    "UPDATE runs SET status=?, summary=?, finished_at=? WHERE id=?",
                    (status, json.dumps(rec.counts, sort_keys=True), utcnow().isoformat(), rec.id),
                )

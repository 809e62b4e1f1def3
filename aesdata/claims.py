"""Work claims: which process works on which item of a workspace, so concurrent runs split the work.

A process registers as an *owner* (``work_owners``: pid, host, boot id, a lease it renews from a
heartbeat thread) and claims items (``work_claims``: one row per scope and key, one owner each) in
``BEGIN IMMEDIATE`` transactions, so two processes can never both hold one item. An owner is dead when
its lease ran out, or at once when it ran on this host and boot and its pid is gone (a SIGKILL); the
next claim on the workspace deletes dead owners, and their claims with them.

Owners of one stage alive at the same time share a *session*: the first one opens it, later ones join
it, and it ends with the last. The cot budget is counted per session (``aesdata.llm.ledger``).

A lock is a claim on a name in scope ``lock``: ``with owner.lock("publish"):``. A claim does not keep
a database transaction open: the work happens outside it, and results commit in their own.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aesdata import db as dbmod
from aesdata.clock import utcnow
from aesdata.errors import AesdataError

#: Seconds an owner stays alive without renewing; the heartbeat renews three times per lease.
LEASE_S = 30.0


class Busy(AesdataError):
    """Another live process holds the lock asked for."""


class ClaimLost(AesdataError):
    """This process's owner row was reaped (it stopped renewing its lease): its claims may be taken."""


@cache
def boot_id() -> str:
    """This boot of this machine (a pid is only meaningful within one)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def reap(db: sqlite3.Connection, now: float | None = None) -> int:
    """Delete dead owners (their claims and holds cascade); call inside a write transaction."""
    now = time.time() if now is None else now
    host, boot = socket.gethostname(), boot_id()
    dead = [
        r[0]
        for r in db.execute("SELECT id, pid, host, boot_id, expires_at FROM work_owners").fetchall()
        if r[4] < now or (r[2] == host and r[3] == boot and not _pid_alive(r[1]))
    ]
    db.executemany("DELETE FROM work_owners WHERE id = ?", [(i,) for i in dead])
    return len(dead)


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, for the one-line message a refused process prints."""

    pid: int
    host: str
    started_at: str

    def describe(self) -> str:
        where = "this machine" if self.host == socket.gethostname() else "another machine"
        return f"pid {self.pid} on {where}, since {self.started_at[:19].replace('T', ' ')} UTC"


class Owner:
    """One process's registration; use through :func:`owner`."""

    def __init__(self, db: sqlite3.Connection, stage: str, lease_s: float) -> None:
        self.db, self.stage, self.lease_s = db, stage, lease_s
        self.path = Path(db.execute("PRAGMA database_list").fetchone()[2])
        self.id = uuid.uuid4().hex
        with dbmod.transaction(db):
            reap(db)
            row = db.execute("SELECT session FROM work_owners WHERE stage = ? LIMIT 1", (stage,)).fetchone()
            self.session: str = row[0] if row else self.id
            db.execute(
                "INSERT INTO work_owners (id, stage, session, pid, host, boot_id, started_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.id, stage, self.session, os.getpid(), socket.gethostname(), boot_id(),
                 utcnow().isoformat(), time.time() + lease_s),
            )
        self._stop = threading.Event()
        self.lost = False
        self._beat = threading.Thread(target=self._heartbeat, name=f"aesdata-claims-{stage}", daemon=True)
        self._beat.start()

    # ------------------------------------------------------------------ lifetime

    def _heartbeat(self) -> None:
        """Renew the lease from a connection of its own (the stage's may be busy in a long read)."""
        db = dbmod.connect(self.path)
        try:
            while not self._stop.wait(self.lease_s / 3):
                try:
                    with dbmod.transaction(db):
                        cur = db.execute(
                            "UPDATE work_owners SET expires_at = ? WHERE id = ?", (time.time() + self.lease_s, self.id)
                        )
                except sqlite3.OperationalError:  # the manifest was busy past the timeout: try at the next beat
                    continue
                if cur.rowcount == 0:
                    self.lost = True
                    return
        finally:
            db.close()

    def close(self) -> None:
        """Stop the heartbeat and drop the owner row with every claim it still holds."""
        self._stop.set()
        self._beat.join()
        with dbmod.transaction(self.db):
            self.db.execute("DELETE FROM work_owners WHERE id = ?", (self.id,))

    def _check_alive(self, db: sqlite3.Connection) -> None:
        if self.lost or db.execute("SELECT 1 FROM work_owners WHERE id = ?", (self.id,)).fetchone() is None:
            self.lost = True
            raise ClaimLost(
                f"{self.stage}: this run stopped renewing its claims for over {self.lease_s:g} s (suspended?)",
                hint="its work so far is stored; run the command again to continue",
            )

    # ------------------------------------------------------------------ claims

    def claim(self, scope: str, key: str, still_needed: Callable[[sqlite3.Connection], bool] | None = None) -> bool:
        """Claim ``key`` in ``scope``; False when another live owner holds it or it is no longer needed.

        ``still_needed`` is asked inside the same transaction, after the claim is known to be free, so
        an item another process finished (and released) since this one selected it is not done twice.
        """
        with dbmod.transaction(self.db) as db:
            return self.claim_in(db, scope, key, still_needed)

    def claim_in(
        self,
        db: sqlite3.Connection,
        scope: str,
        key: str,
        still_needed: Callable[[sqlite3.Connection], bool] | None = None,
    ) -> bool:
        """:meth:`claim` inside a write transaction the caller holds (``BEGIN IMMEDIATE``) on any connection
        to the manifest: a stage claiming many items commits them together (:mod:`aesdata.llm.commits`)."""
        return self.claim_all_in(db, scope, [(key, still_needed)])[0]

    def claim_all_in(
        self,
        db: sqlite3.Connection,
        scope: str,
        keys: Sequence[tuple[str, Callable[[sqlite3.Connection], bool] | None]],
    ) -> list[bool]:
        """:meth:`claim_in` of several keys (each with its ``still_needed``), dead owners reaped once for all:
        a stage's many claims of one moment in few statements (each one, in the committing thread, waits for
        the busy event loop to hand back the GIL)."""
        reap(db)
        self._check_alive(db)
        return [self._take(db, scope, key, still_needed) for key, still_needed in keys]

    def _take(
        self,
        db: sqlite3.Connection,
        scope: str,
        key: str,
        still_needed: Callable[[sqlite3.Connection], bool] | None,
    ) -> bool:
        row = db.execute("SELECT owner FROM work_claims WHERE scope = ? AND key = ?", (scope, key)).fetchone()
        if row is not None:
            return bool(row[0] == self.id)
        if still_needed is not None and not still_needed(db):
            return False
        db.execute("INSERT INTO work_claims (scope, key, owner) VALUES (?, ?, ?)", (scope, key, self.id))
        return True

    def release(self, db: sqlite3.Connection, scope: str, key: str) -> None:
        """Drop a claim; call inside the transaction that stores the item's result."""
        db.execute("DELETE FROM work_claims WHERE scope = ? AND key = ? AND owner = ?", (scope, key, self.id))

    def holder(self, scope: str, key: str) -> Holder | None:
        row = self.db.execute(
            "SELECT o.pid, o.host, o.started_at FROM work_claims c JOIN work_owners o ON o.id = c.owner"
            " WHERE c.scope = ? AND c.key = ?",
            (scope, key),
        ).fetchone()
        return Holder(*row) if row else None

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the workspace-wide lock ``name`` for the block; :class:`Busy` when a live process has it."""
        if not self.claim("lock", name):
            holder = self.holder("lock", name)
            who = holder.describe() if holder else "a process that just ended"
            raise Busy(
                f"{name}: another {name} is running on this workspace ({who})",
                hint="wait for it to end, then run the command again",
            )
        try:
            yield
        finally:
            with dbmod.transaction(self.db) as db:
                self.release(db, "lock", name)


@contextmanager
def owner(db: sqlite3.Connection, stage: str, *, lease_s: float = LEASE_S) -> Iterator[Owner]:
    """Register this process as an owner of ``stage`` work on the manifest ``db`` for the block."""
    me = Owner(db, stage, lease_s)
    try:
        yield me
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        me.close()

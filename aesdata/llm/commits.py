"""Group commit: one thread writes what an event loop hands it, many small units in one transaction.

An LLM stage at 256 requests in flight stores hundreds of claims, ledger rows and results a second.
As one ``BEGIN IMMEDIATE`` transaction each on the event loop's thread they held it for about a
millisecond per request (statements, commits, the row encodings), while the requests waited to be
sent. Here a *unit* is a function of a connection; :meth:`Committer.submit` hands it to a thread with
a connection of its own, which takes every unit waiting (in order), runs them in one ``BEGIN IMMEDIATE``
transaction, commits, then resolves their futures. SQLite releases the GIL while it works, so the loop
goes on sending meanwhile.

What this promises:

* a unit's future resolves only after its transaction committed: a caller that awaits it before going
  on (a result before the claim is dropped, a ledger row before the next request takes its slot)
  never acts on something a kill could still undo. A SIGKILL loses the units not yet committed, whose
  callers were all still waiting;
* units commit in the order they were submitted (one at a time, in one thread): a unit submitted
  after another is never committed before it;
* a unit that raises fails alone: the group is rolled back and run again with each unit in a savepoint
  of its own (rolled back if it raises), so its future gets the error and the rest of the group
  commits. A failure to begin or commit fails every unit of the group;
* :meth:`close` commits everything submitted before it (Ctrl-C and a budget stop lose nothing).

Units run in the committer's thread, and may run twice (above): they must do database work only (and
build what they write).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aesdata import db as dbmod

T = TypeVar("T")
Unit = Callable[[sqlite3.Connection], Any]
Then = Callable[["asyncio.Future[Any]"], None]
_Item = tuple[Unit, "asyncio.Future[Any]", asyncio.AbstractEventLoop, Then | None]


class Committer:
    """A thread that commits units in groups; use as a context manager, or :meth:`close` it."""

    def __init__(self, path: Path, *, most: int = 32) -> None:
        self.most = most
        self.groups = 0  # transactions committed (a figure for tests and benchmarks)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(path,), name="aesdata-commit", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Committer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, unit: Callable[[sqlite3.Connection], T], *, then: Then | None = None) -> asyncio.Future[T]:
        """Queue ``unit``; the future holds what it returned once its transaction committed.

        ``then(future)`` is called on the loop in the very step that resolves the future (even one its
        caller cancelled), where a done callback would wait for the loop's next round: at 256 requests in
        flight a round of the loop lasts tens of milliseconds, and a request slot given back there is
        refilled a round earlier."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((unit, future, loop, then))
        return future

    async def run(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`submit` and wait for the commit."""
        return await self.submit(unit)

    def close(self) -> None:
        """Commit what was submitted, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    # ------------------------------------------------------------------ the thread

    def _work(self, path: Path) -> None:
        try:
            db = dbmod.connect(path)
        except BaseException as exc:  # noqa: BLE001 (handed to the constructor's caller)
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < self.most:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                self._commit(db, group)
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, group: list[_Item]) -> None:
        try:
            outcomes = self._run(db, group, alone=False)
        except _UnitFailed:  # rolled back: again, each unit in a savepoint of its own
            try:
                outcomes = self._run(db, group, alone=True)
            except Exception as exc:  # noqa: BLE001 (BEGIN or COMMIT failed: nothing of the group is stored)
                outcomes = [(False, exc)] * len(group)
        except Exception as exc:  # noqa: BLE001 (as above)
            outcomes = [(False, exc)] * len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any, Then | None]]] = {}
        for (_, future, loop, then), (ok, value) in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value, then))
        for loop, resolved in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, resolved)

    def _run(self, db: sqlite3.Connection, group: list[_Item], *, alone: bool) -> list[tuple[bool, Any]]:
        """Run the group in one transaction. Without ``alone`` any unit's error rolls it all back
        (:class:`_UnitFailed`); with it, each unit runs in a savepoint and fails on its own."""
        outcomes: list[tuple[bool, Any]] = []
        with dbmod.transaction(db):
            for unit, *_ in group:
                if not alone:
                    try:
                        outcomes.append((True, unit(db)))
                    except Exception as exc:
                        raise _UnitFailed from exc
                    continue
                db.execute("SAVEPOINT unit")
                try:
                    outcomes.append((True, unit(db)))
                except Exception as exc:  # noqa: BLE001 (the unit's caller gets it)
                    db.execute("ROLLBACK TO unit")
                    outcomes.append((False, exc))
                db.execute("RELEASE unit")
        self.groups += 1
        return outcomes


class _UnitFailed(Exception):
    """A unit raised in a group run without savepoints."""


def _resolve(resolved: list[tuple[asyncio.Future[Any], bool, Any, Then | None]]) -> None:
    for future, ok, value, then in resolved:
        if future.done():  # its caller was cancelled (the unit committed all the same)
            pass
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        if then is not None:
            then(future)

"""The kill harness: a stage as a real CLI subprocess, SIGKILLed at a seeded random point, then resumed.

A **point** is (event number, how): the subprocess counts progress events (every committed
transaction of the workspace; some stages add their own, e.g. publish's shard rows) and SIGKILLs itself

* ``in``: as the N-th event starts or, inside a transaction, just before it commits (that step is lost);
* ``after``: right after the N-th event committed;
* ``late``: a seeded random delay after the N-th event, wherever the stage then is (mid-file, mid-request).

The resumed run (the same command, through typer's runner) must leave the workspace as an uninterrupted
run left a copy of the same starting state: the stage's tables row for row (timestamps, run ids and the
workspace's own path left out) and the blob set. Runs killed are ``interrupted`` afterwards, none ``running``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aesdata import db as dbmod
from aesdata.cli.main import app
from aesdata.workspace import DB_FILE

#: Points per stage in the default suite; raise it (AESDATA_KILL_POINTS=50) for a deeper run by hand.
POINTS = int(os.environ.get("AESDATA_KILL_POINTS", "5"))

# Runs ``aesdata ARGS`` after patching in the event counter; argv: N, how, delay, hooks (comma-separated
# ``module:Class.method`` or ``module:function``, each call counted as an event too), then the CLI arguments.
WRAPPER = """
import importlib, os, signal, sys, threading
from contextlib import contextmanager
from aesdata import db as dbmod

after, how, delay, hooks = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
seen = 0

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def event(inside):
    global seen
    if inside:
        if how == "in" and seen + 1 >= after:  # the first event to start once N-1 have ended
            die()
        return
    seen += 1
    if seen == after and how == "after":
        die()
    if seen == after and how == "late":
        threading.Timer(delay, die).start()

real = dbmod.transaction

@contextmanager
def counted(conn):
    with real(conn) as c:
        yield c
        event(True)
    event(False)

dbmod.transaction = counted
for hook in filter(None, hooks.split(",")):
    module, _, attr = hook.partition(":")
    owner_name, _, method = attr.rpartition(".")
    owner = importlib.import_module(module)
    owner = getattr(owner, owner_name) if owner_name else owner
    original = getattr(owner, method)
    def wrapped(*args, _original=original, **kwargs):
        event(True)
        out = _original(*args, **kwargs)
        event(False)
        return out
    setattr(owner, method, wrapped)
sys.argv = ["aesdata", *sys.argv[5:]]
from aesdata.cli.main import main
main()
"""


@dataclass(frozen=True)
class Point:
    after: int
    how: str
    delay: float = 0.0

    def __str__(self) -> str:
        return f"{self.how}@{self.after}" + (f"+{self.delay * 1000:.0f}ms" if self.how == "late" else "")


def points(seed: int, events: int, n: int = POINTS) -> list[Point]:
    """``n`` seeded random points over a run of ``events`` events (never the last commit's far side)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        how = rng.choice(["in", "after", "late"])
        last = events if how == "in" else events - 1
        out.append(Point(rng.randint(1, max(1, last)), how, round(rng.uniform(0.0, 0.05), 3)))
    return out


@contextmanager
def counting(hooks: tuple[str, ...] = ()) -> Iterator[list[int]]:
    """Count the events of an in-process run (the uninterrupted one), the same way the wrapper does."""
    import importlib

    seen = [0]
    real = dbmod.transaction

    @contextmanager
    def counted(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        with real(conn) as c:
            yield c
        seen[0] += 1

    mp = pytest.MonkeyPatch()
    mp.setattr(dbmod, "transaction", counted)
    for hook in hooks:
        module, _, attr = hook.partition(":")
        owner_name, _, method = attr.rpartition(".")
        owner: Any = importlib.import_module(module)
        owner = getattr(owner, owner_name) if owner_name else owner
        original = getattr(owner, method)

        def wrapped(*args: Any, _original: Callable[..., Any] = original, **kwargs: Any) -> Any:
            out = _original(*args, **kwargs)
            seen[0] += 1
            return out

        mp.setattr(owner, method, wrapped)
    try:
        yield seen
    finally:
        mp.undo()


def kill_at(point: Point, args: list[str], ws_path: Path, *, hooks: tuple[str, ...] = (),
            env: dict[str, str] | None = None, on_start: Callable[[subprocess.Popen[str]], None] | None = None,
            timeout: float = 180) -> int:
    """Run ``aesdata ARGS`` in a subprocess killed at ``point``; return its exit status (-9: killed)."""
    # its own process group, stderr in a file: worker processes a killed run leaves behind (a process pool)
    # must neither hold a pipe open nor outlive the point; they are killed with the group once it died
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(point.after), point.how, str(point.delay), ",".join(hooks), *args],
            env={**os.environ, **(env or {}), "AESDATA_WORKSPACE": str(ws_path)},
            stdout=subprocess.DEVNULL, stderr=errors, text=True, start_new_session=True,
        )
        if on_start:
            on_start(proc)
        try:
            proc.wait(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        errors.seek(0)
        err = errors.read()
    assert proc.returncode in (0, -signal.SIGKILL), f"{point}: exit {proc.returncode}: {err[-2000:]}"
    return proc.returncode


def run_cli(args: list[str], ws_path: Path) -> dict[str, Any]:
    res = CliRunner().invoke(app, [*args, "-w", str(ws_path), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def clone(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


# ----------------------------------------------------------------------------------------- comparing


def _normal(value: Any, root: str) -> Any:
    """A value with the workspace's own path and every timestamp taken out (JSON values walked)."""
    if isinstance(value, str):
        value = value.replace(root, "<ws>")
        if value[:1] in "{[":
            try:
                return json.dumps(_drop_times(json.loads(value)), sort_keys=True)
            except ValueError:
                return value
    return value


def _drop_times(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _drop_times(v) for k, v in data.items() if not k.endswith("_at") and k != "run_id"}
    if isinstance(data, list):
        return [_drop_times(v) for v in data]
    return data


@dataclass
class State:
    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    blobs: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    orphans: int = 0  # temporary blob files left by a kill


def state(ws_path: Path, tables: tuple[str, ...], *, drop: tuple[str, ...] = ()) -> State:
    """The stage's tables (sorted rows, times and run ids out), the blob files, the run statuses."""
    db = sqlite3.connect(ws_path / DB_FILE)
    root = str(ws_path.resolve())
    out = State()
    try:
        for table in tables:
            cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            keep = [c for c in cols if not c.endswith("_at") and c not in ("id", "run_id", *drop)]
            rows = db.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall()
            out.tables[table] = sorted((tuple(_normal(v, root) for v in row) for row in rows), key=repr)
        out.runs = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY id")]
    finally:
        db.close()
    files = [p.relative_to(ws_path / "blobs").as_posix() for p in (ws_path / "blobs").rglob("*") if p.is_file()]
    # a blob write killed before its rename leaves its temporary file, which the next opening removes
    out.blobs = sorted(p for p in files if not p.startswith(".tmp/"))
    out.orphans = sum(p.startswith(".tmp/") for p in files)
    return out


def assert_same(got: State, want: State, point: Point) -> None:
    for table, rows in want.tables.items():
        assert got.tables[table] == rows, f"{point}: table {table} differs from the uninterrupted run"
    assert got.blobs == want.blobs, f"{point}: blob set differs: {set(got.blobs) ^ set(want.blobs)}"
    assert got.orphans == 0, f"{point}: {got.orphans} temporary blob file(s) of the killed run left behind"
    assert "running" not in got.runs, f"{point}: a run left 'running': {got.runs}"

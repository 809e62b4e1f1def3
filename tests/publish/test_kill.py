"""A publish killed with SIGKILL leaves no half-version: nothing recorded, nothing under the target name;
the next run publishes the whole version (adopting a folder that was complete but not yet recorded)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from aesdata import store
from aesdata.publish.stage import publish
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.publish.helpers import load

# Runs publish in a child process that SIGKILLs itself at a chosen point: mid-write (after N rows went
# into the shards), or after the folder was renamed into place but before the version was recorded.
CHILD = """
import os, signal, sys
from contextlib import nullcontext
from aesdata.progress import LogReporter
from aesdata.publish import stage
from aesdata.workspace import Workspace

where, after = sys.argv[2], int(sys.argv[3])

class Task:
    n = 0
    def advance(self, k=1):
        Task.n += k
        if Task.n >= after:
            os.kill(os.getpid(), signal.SIGKILL)

class KillWhileWriting(LogReporter):
    def task(self, description, total):
        return nullcontext(Task()) if description.startswith("writing") else super().task(description, total)

def kill(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if where == "before-record":
    stage.versions.record = kill
ws = Workspace.open(sys.argv[1])
stage.publish(ws, "1.0.0", test_fraction=0.2, max_shard_bytes=8000, reporter=KillWhileWriting())
print("not killed")
"""


def _run_child(ws_path: Path, where: str, after: int = 10**9) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ws_path), where, str(after)], capture_output=True, text=True, timeout=120
    )
    assert "not killed" not in proc.stdout, proc.stderr
    return proc.returncode


def test_kill_while_writing_leaves_nothing_recorded(ws: Workspace, ws_path: Path) -> None:
    make_samples(ws, 40)
    assert _run_child(ws_path, "writing", after=25) == -signal.SIGKILL
    published = ws.root / "published"
    assert not (published / "v1.0.0").exists()
    assert any(p.name.startswith(".v1.0.0.tmp-") for p in published.iterdir())  # it was mid-write
    assert store.get_versions(ws.db) == []
    assert ws.db.execute("SELECT COUNT(*) FROM version_rows").fetchone()[0] == 0

    summary = publish(ws, "1.0.0", test_fraction=0.2, max_shard_bytes=8000)
    assert summary["status"] == "published"
    assert [p.name for p in published.iterdir() if p.name.startswith(".v1.0.0.tmp-")] == []  # cleaned up
    ds = load(published / "v1.0.0")
    assert len(ds["train"]) + len(ds["test"]) == 40


def test_kill_before_recording_then_rerun_adopts_the_complete_folder(ws: Workspace, ws_path: Path) -> None:
    make_samples(ws, 20)
    assert _run_child(ws_path, "before-record") == -signal.SIGKILL
    folder = ws.root / "published" / "v1.0.0"
    assert folder.is_dir() and store.get_versions(ws.db) == []
    shards = {p: p.stat().st_mtime_ns for p in (folder / "data").iterdir()}

    summary = publish(ws, "1.0.0", test_fraction=0.2, max_shard_bytes=8000)
    assert summary["status"] == "published"
    assert {p: p.stat().st_mtime_ns for p in (folder / "data").iterdir()} == shards  # adopted, not rewritten
    (version,) = store.get_versions(ws.db)
    assert version.counts == {"train": summary["train"], "test": summary["test"]}
    assert ws.db.execute("SELECT COUNT(*) FROM version_rows").fetchone()[0] == 20

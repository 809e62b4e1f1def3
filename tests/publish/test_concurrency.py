"""Two publishes at once on one workspace, as real processes: one version each time, never two splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aesdata import claims, store
from aesdata.publish import versions
from aesdata.publish.stage import publish
from aesdata.workspace import Workspace
from tests.factories import box_image, make_samples

EXE = str(Path(sys.executable).with_name("aesdata"))
REFUSAL = "another publish is running on this workspace"


def start(ws_path: Path, version: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [EXE, "publish", "--version", version, "--json", "-w", str(ws_path)],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_a_publish_while_another_holds_the_lock_is_refused_in_one_line(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 6)
        with claims.owner(ws.db, "publish") as me, me.lock("publish"):
            code, out, err = finish(start(ws_path, "1.0.0"))
        assert code == 1 and out == ""
        lines = [line for line in err.splitlines() if line.strip()]
        assert REFUSAL in lines[0] and f"pid {os.getpid()} on this machine" in lines[0], err
        assert store.get_versions(ws.db) == []
        code, out, err = finish(start(ws_path, "1.0.0"))  # the lock went with its holder
        assert code == 0 and json.loads(out)["status"] == "published", err


@pytest.mark.slow
def test_two_publishes_at_once(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 40)
    # the same version twice: one publishes, the other is refused or finds it published (a no-op)
    a, b = start(ws_path, "1.0.0"), start(ws_path, "1.0.0")
    results = [finish(a), finish(b)]
    published = [json.loads(out) for code, out, _ in results if code == 0]
    refused = [err for code, _, err in results if code != 0]
    assert all(REFUSAL in err for err in refused), refused
    assert [p["status"] for p in published].count("published") == 1, results
    assert all(p["status"] == "published" or p["status"].startswith("no-op") for p in published)

    # two new versions at once: each that is recorded read the splits recorded before it
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 20, seed=1)
    c, d = start(ws_path, "1.1.0"), start(ws_path, "1.2.0")
    results = [finish(c), finish(d)]
    assert all(code == 0 or REFUSAL in err or "not newer than" in err for code, _, err in results), results
    with Workspace.open(ws_path) as ws:
        recorded = sorted(store.get_versions(ws.db), key=lambda v: v.created_at)
        assert recorded[0].version == "1.0.0" and len({v.version for v in recorded}) == len(recorded)
        assert len(recorded) >= 2  # at least one of the two got through
        for older, newer in zip(recorded, recorded[1:], strict=False):
            old_rows, new_rows = versions.rows(ws.db, older.version), versions.rows(ws.db, newer.version)
            old_test = {s for s, r in old_rows.items() if r.split == "test"}
            new_test = {s for s, r in new_rows.items() if r.split == "test"}
            assert old_test <= new_test  # a test sample stays in test: the split was read under the lock


@pytest.mark.slow
def test_publish_next_to_ingest(ws_path: Path, tmp_path: Path) -> None:
    """A publish while an ingest writes: neither sees a lock error, and the version is what was there."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(250):
        box_image(70_000 + i, size=256).save(photos / f"p{i:03d}.png")
    with Workspace.open(ws_path) as ws:
        make_samples(ws, 12)
        ingest = subprocess.Popen([EXE, "ingest", str(photos), "--workers", "1", "--json", "-w", str(ws_path)],
                                  env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not ws.db.execute("SELECT 1 FROM runs WHERE stage = 'ingest' AND status = 'running'").fetchone():
            assert time.monotonic() < deadline and ingest.poll() is None, ingest.communicate()
            time.sleep(0.02)
        summary = publish(ws, "1.0.0", out=tmp_path / "v1")
        overlapped = ingest.poll() is None
        out, err = ingest.communicate(timeout=180)
    assert ingest.returncode == 0 and "database is locked" not in err, err
    assert summary["status"] == "published" and summary["train"] + summary["test"] == 12
    assert json.loads(out)["rejected"] == 0
    assert overlapped  # the publish ran start to end while ingest was writing

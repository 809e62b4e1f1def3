"""A ``aesdata cot`` process killed with SIGKILL mid-run resumes without redoing or duplicating work."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.workspace import DB_FILE, Workspace
from tests.cot.test_stage import rationales, serve
from tests.factories import make_samples

N = 16


def stored(ws_path: Path) -> int:
    db = sqlite3.connect(ws_path / DB_FILE, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM rationales WHERE mode = 'answer-driven'").fetchone()[0]
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_then_resume(cot_ws_path: Path, cli: CliRunner) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, N)
        server, _ = serve(ws, {ids[1]: ["wrong", "correct"]}, latency=0.15)
    exe = Path(sys.executable).with_name("aesdata")
    with server:
        proc = subprocess.Popen(
            [str(exe), "cot", "--mode", "answer-driven", "--base-url", server.base_url, "--concurrency", "2"],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while stored(cot_ws_path) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        done_before = stored(cot_ws_path)
        assert 3 <= done_before < N

        result = cli.invoke(app, ["cot", "--mode", "answer-driven", "--base-url", server.base_url, "--json"])
        assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["selected"] == N - done_before  # only what had no stored result
    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "answer-driven")
        assert set(got) == set(ids) and all(r.status == "valid" for r in got.values())
        assert ws.db.execute("SELECT COUNT(*) FROM rationales").fetchone()[0] == N
        runs = [r["status"] for r in ws.db.execute("SELECT status FROM runs WHERE stage = 'cot' ORDER BY id")]
        assert runs == ["interrupted", "done"]  # marked when the workspace was opened again
        calls = ws.db.execute("SELECT COUNT(*) FROM cot_calls").fetchone()[0]
        assert calls >= N + 1  # every answered request is in the ledger, the killed run's included

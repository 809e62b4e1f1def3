"""Runs killed before they could record an ending are marked ``interrupted`` when the workspace is
next opened, and ``aesdata status`` shows them; live runs and runs of other hosts are left alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.runowner import Owner
from aesdata.workspace import Workspace

# Starts a run on the workspace argv[1], says so, then waits to be killed (or kills itself: argv[2]).
CHILD = """
import os, signal, sys, time
from aesdata.workspace import Workspace
ws = Workspace.open(sys.argv[1])
with ws.run("ingest", {"paths": ["x"]}):
    print("started", flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)
"""


def _statuses(ws_path: Path) -> list[str]:
    with Workspace.open(ws_path) as ws:
        return [r["status"] for r in ws.db.execute("SELECT status FROM runs ORDER BY id")]


def test_a_killed_run_is_marked_interrupted_and_shown_by_status(ws_path: Path, cli: CliRunner) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ws_path), "die"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL and "started" in proc.stdout
    assert _statuses(ws_path) == ["interrupted"]

    res = cli.invoke(app, ["status", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["interrupted_runs"] == 1
    assert [(r["run"], r["stage"]) for r in report["interrupted"]] == [(1, "ingest")]
    res = cli.invoke(app, ["status"])
    assert "interrupted runs" in res.stdout and "ingest" in res.stdout


def test_a_live_run_stays_running_until_its_process_dies(ws_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ws_path), "wait"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        assert _statuses(ws_path) == ["running"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert _statuses(ws_path) == ["interrupted"]


def test_other_hosts_reused_ids_and_reboots(ws: Workspace, ws_path: Path) -> None:
    me = Owner.current()
    rows = [
        ("other-host", me.pid, "0" * 16, me.boot_id, me.started),
        ("reused-pid", os.getpid(), me.host, me.boot_id, "1"),  # our id, but a process started at another time
        ("rebooted", os.getpid(), me.host, "another-boot", me.started),
        ("alive", os.getpid(), me.host, me.boot_id, me.started),  # this very process
        ("legacy", None, None, None, None),  # recorded before owners were
    ]
    with ws.transaction() as db:
        db.executemany("INSERT INTO runs (stage, params, status, started_at, pid, host, boot_id, proc_start)"
                       " VALUES (?, '{}', 'running', ?, ?, ?, ?, ?)",
                       [(stage, time.strftime("%Y-%m-%dT%H:%M:%S"), pid, host, boot, start)
                        for stage, pid, host, boot, start in rows])
    with Workspace.open(ws_path) as again:
        got = {r["stage"]: r["status"] for r in again.db.execute("SELECT stage, status FROM runs")}
    expected = {"other-host": "running", "reused-pid": "interrupted", "rebooted": "interrupted",
                "alive": "running", "legacy": "running"}
    if me.started is None:  # no /proc: a reused id cannot be told from the live process
        expected["reused-pid"] = "running"
    if me.boot_id is None:
        expected["rebooted"] = "running"
    assert got == expected


def _descendants(pid: int) -> set[int]:
    """Live (not zombie) processes under ``pid`` (children, theirs, ...), read from /proc."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parent[int(stat.parent.name)] = int(fields[1])
    out, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, ppid in parent.items() if ppid in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_ingest_leaves_no_pool_worker_behind(tmp_path: Path) -> None:
    """Decoders die with the fork server that made them and the server with ingest (its pipe closes), so a
    SIGKILLed ingest leaves no process running."""
    from aesdata.generate.demo_sources import write_demo_sources

    write_demo_sources(tmp_path / "photos", 24, seed=5)
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    proc = subprocess.Popen([sys.executable, "-c", "from aesdata.cli.main import main; main()", "ingest",
                             str(tmp_path / "photos"), "--workers", "2", "-w", str(ws)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 4 and time.monotonic() < deadline and proc.poll() is None:  # server, tracker, 2 decoders
        seen |= _descendants(proc.pid)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert len(seen) >= 4, f"ingest's pool did not start: {seen}"
    deadline = time.monotonic() + 30
    while any(_alive(c) for c in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = {c: Path(f"/proc/{c}/cmdline").read_bytes()[:150] for c in seen if _alive(c)}
    for c in alive:
        os.kill(c, signal.SIGKILL)
    assert not alive

"""Work claims: two owners split items, a killed owner's claims free at once, an expired lease frees them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aesdata import claims
from aesdata.workspace import Workspace


def test_two_owners_split_items_and_share_a_session(ws_path: Path) -> None:
    with Workspace.open(ws_path) as a_ws, Workspace.open(ws_path) as b_ws:
        with claims.owner(a_ws.db, "cot") as a, claims.owner(b_ws.db, "cot") as b:
            assert a.session == b.session == a.id
            assert a.claim("cot:template", "s1") and a.claim("cot:template", "s1")  # its own: still held
            assert not b.claim("cot:template", "s1")
            assert b.claim("cot:template", "s2") and not a.claim("cot:template", "s2")
            with b_ws.transaction() as db:
                b.release(db, "cot:template", "s2")
            assert a.claim("cot:template", "s2")
            assert not b.claim("cot:template", "s3", still_needed=lambda db: False)
            assert a.claim("cot:template", "s3")
        assert a_ws.db.execute("SELECT COUNT(*) FROM work_claims").fetchone()[0] == 0  # released on exit
        with claims.owner(a_ws.db, "cot") as c:
            assert c.session == c.id != a.session  # nobody alive: a new session


def test_lock_refuses_a_second_holder_in_one_line(ws_path: Path) -> None:
    with (
        Workspace.open(ws_path) as a_ws,
        Workspace.open(ws_path) as b_ws,
        claims.owner(a_ws.db, "publish") as a,
        claims.owner(b_ws.db, "publish") as b,
    ):
        with a.lock("publish"), pytest.raises(claims.Busy) as err, b.lock("publish"):
            pass
        assert "another publish is running on this workspace (pid" in str(err.value)
        assert "\n" not in str(err.value)
        with b.lock("publish"):  # released when a's block ended
            pass


HOLD = """
import sys, time
from aesdata import claims
from aesdata.workspace import Workspace
ws = Workspace.open(sys.argv[1])
with claims.owner(ws.db, "cot") as me:
    assert me.claim("cot:template", "s1")
    print("HELD", flush=True)
    time.sleep(60)
"""


def test_a_killed_owner_frees_its_claims_at_once(ws_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(ws_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "HELD"
        with Workspace.open(ws_path) as ws, claims.owner(ws.db, "cot") as me:
            assert not me.claim("cot:template", "s1")  # alive: held
            assert me.holder("cot:template", "s1").pid == proc.pid  # type: ignore[union-attr]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            assert me.claim("cot:template", "s1")  # its pid is gone on this host and boot
    finally:
        proc.kill()


def test_an_owner_elsewhere_is_dead_once_its_lease_runs_out(ws_path: Path) -> None:
    with (
        Workspace.open(ws_path) as a_ws,
        Workspace.open(ws_path) as b_ws,
        claims.owner(a_ws.db, "cot", lease_s=3600) as a,
        claims.owner(b_ws.db, "cot") as b,
    ):
        assert a.claim("cot:template", "s1")
        with a_ws.transaction() as db:  # as if a runs on another machine: no pid to look at
            db.execute("UPDATE work_owners SET host = 'elsewhere' WHERE id = ?", (a.id,))
        assert not b.claim("cot:template", "s1")
        with a_ws.transaction() as db:
            db.execute("UPDATE work_owners SET expires_at = ? WHERE id = ?", (time.time() - 1, a.id))
        assert b.claim("cot:template", "s1")
        with pytest.raises(claims.ClaimLost):
            a.claim("cot:template", "s2")


def test_the_heartbeat_renews_the_lease(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws, claims.owner(ws.db, "cot", lease_s=0.6) as me:
        first = ws.db.execute("SELECT expires_at FROM work_owners WHERE id = ?", (me.id,)).fetchone()[0]
        time.sleep(0.9)
        later = ws.db.execute("SELECT expires_at FROM work_owners WHERE id = ?", (me.id,)).fetchone()[0]
        assert later > first and me.claim("cot:template", "s1")

"""Workspace creation and discovery, settings, migrations, runs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from aesdata import db as dbmod
from aesdata.blobs import TMP_DIR, BlobStore
from aesdata.cli.main import app
from aesdata.config import TEMPLATE, Settings
from aesdata.errors import AesdataError, WorkspaceNotFound
from aesdata.workspace import Workspace


def test_template_settings_equal_the_defaults():
    import tomllib

    assert Settings.model_validate(tomllib.loads(TEMPLATE)) == Settings()


def test_init_makes_the_three_parts_and_is_idempotent(tmp_path):
    with Workspace.init(tmp_path / "w") as ws:
        assert (ws.root / "aesdata.toml").is_file() and (ws.root / "blobs").is_dir()
        assert ws.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        ws.db.execute("INSERT INTO rejections VALUES ('x', 'r', 't')")
    with Workspace.init(tmp_path / "w") as ws:
        assert ws.db.execute("SELECT COUNT(*) FROM rejections").fetchone()[0] == 1, "init never resets"


def test_discovery_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    Workspace.init(a).close()
    Workspace.init(b).close()
    monkeypatch.chdir(a)
    monkeypatch.delenv("AESDATA_WORKSPACE", raising=False)
    assert Workspace.open().root == a.resolve()
    monkeypatch.setenv("AESDATA_WORKSPACE", str(b))
    assert Workspace.open().root == b.resolve()
    assert Workspace.open(a).root == a.resolve()


def test_missing_workspace_says_where_it_looked(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("AESDATA_WORKSPACE", str(tmp_path / "none"))
    with pytest.raises(WorkspaceNotFound, match="from AESDATA_WORKSPACE"):
        Workspace.open()
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "not an aesdata workspace" in result.output and "aesdata init" in result.output


def test_bad_settings_name_file_and_key(ws_path):
    (ws_path / "aesdata.toml").write_text('[cot]\napi_key = "sk-secret"\n')
    with pytest.raises(AesdataError, match=r"aesdata.toml: cot.api_key: Extra inputs"):
        Workspace.open(ws_path)


def test_group_threshold_must_cover_duplicate_threshold(ws_path):
    (ws_path / "aesdata.toml").write_text("[ingest]\nnear_duplicate_threshold = 8\ngroup_threshold = 4\n")
    with pytest.raises(AesdataError, match="group_threshold"):
        Workspace.open(ws_path)


def test_migrations_are_recorded_and_the_schema_is_complete(ws):
    names = [r[0] for r in ws.db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [name for name, _ in dbmod.MIGRATIONS]
    tables = {r[0] for r in ws.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sources", "near_duplicates", "rejections", "samples", "candidates", "annotations", "labels",
            "rationales", "versions", "runs", "source_links", "ingest_log"} <= tables
    assert dbmod.apply_migrations(ws.db) == [], "applying twice does nothing"


def test_old_workspace_is_brought_up_to_date(tmp_path):
    path = tmp_path / "old.db"
    db = dbmod.connect(path)
    first_name, first_sql = dbmod.MIGRATIONS[0]
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.executescript(f"BEGIN; {first_sql}; INSERT INTO _migrations VALUES ('{first_name}', 'then'); COMMIT;")
    applied = dbmod.apply_migrations(db)
    assert applied == [name for name, _ in dbmod.MIGRATIONS[1:]]


def test_failed_migration_leaves_nothing_half_applied(tmp_path, monkeypatch):
    db = dbmod.connect(tmp_path / "x.db")
    monkeypatch.setattr(dbmod, "MIGRATIONS", [("m900_bad", "CREATE TABLE t (x); INSERT INTO nowhere VALUES (1);")])
    with pytest.raises(sqlite3.OperationalError):
        dbmod.apply_migrations(db)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
    assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == 0


def test_runs_record_status_and_counts(ws):
    with ws.run("demo", {"limit": 3}) as run:
        run.count("done", 2)
    with pytest.raises(KeyboardInterrupt), ws.run("demo", {}) as run:
        run.count("done")
        raise KeyboardInterrupt
    rows = ws.db.execute("SELECT status, summary, params FROM runs ORDER BY id").fetchall()
    assert [(r["status"], json.loads(r["summary"])) for r in rows] == [("done", {"done": 2}),
                                                                       ("interrupted", {"done": 1})]
    assert json.loads(rows[0]["params"]) == {"limit": 3}


def test_cli_init_status_version(cli, tmp_path):
    result = cli.invoke(app, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0 and "workspace ready" in result.stdout
    assert cli.invoke(app, ["status", "-w", str(tmp_path / "new"), "--json"]).stdout.startswith('{"sources": 0')
    assert cli.invoke(app, ["--version"]).stdout.startswith("aesdata ")
    assert cli.invoke(app, ["ingest", "--no-such-flag"]).exit_code == 2



KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from aesdata.blobs import BlobStore
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # SIGKILL between writing and renaming
BlobStore(Path(sys.argv[1])).put(b"half a png")
"""


def test_a_blob_write_killed_mid_way_leaves_nothing_once_the_workspace_opens_again(ws_path, monkeypatch):
    blobs = ws_path / "blobs"
    killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(blobs)], check=False)
    assert killed.returncode == -9
    [left] = list((blobs / TMP_DIR).iterdir())  # what the kill left
    real_fsync, seen = os.fsync, []

    def open_meanwhile(fd: int) -> None:  # another process opens the workspace while a live write is under way
        seen.extend((blobs / TMP_DIR).iterdir())
        Workspace.open(ws_path).close()
        assert all(p.exists() for p in seen if p != left), "a live writer's file was removed"
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", open_meanwhile)
    sha = BlobStore(blobs).put(b"a whole png")
    monkeypatch.undo()
    assert left in seen and len(seen) == 2  # the killed write's file and the live one, side by side
    assert not left.exists() and BlobStore(blobs).read(sha) == b"a whole png"
    assert list((blobs / TMP_DIR).iterdir()) == []

"""``aesdata dupes --rebuild``: the same decisions as a fresh ingest with the current thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from aesdata.cli.main import app
from aesdata.dedup import rebuild
from aesdata.ingest import ingest
from aesdata.workspace import Workspace
from tests.factories import box_image
from tests.foundation.test_ingest import db_state


def families(folder: Path) -> Path:
    """Sources with near copies at various distances (resized, recompressed) and exact copies."""
    folder.mkdir()
    for i in range(24):
        img = box_image(900 + i // 3, 128)
        if i % 3 == 1:
            img = img.resize((100, 100))
        elif i % 3 == 2:
            img = img.rotate(2)
        img.save(folder / f"{i:03d}.jpg", quality=70 + i)
    (folder / "zz_copy.jpg").write_bytes((folder / "004.jpg").read_bytes())
    return folder


def set_thresholds(ws_path: Path, near: int, group: int) -> None:
    settings = ws_path / "aesdata.toml"
    text = settings.read_text().replace("near_duplicate_threshold = 6", f"near_duplicate_threshold = {near}")
    settings.write_text(text.replace("group_threshold = 10", f"group_threshold = {group}"))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return families(tmp_path / "photos")


def test_rebuild_after_ingest_changes_nothing_and_is_idempotent(ws, photos):
    ingest(ws, [photos], workers=1)
    before = db_state(ws.db)
    assert before["near"] and before["links"], "the fixture has near-duplicates and related sources"
    first = rebuild(ws.db, ws.blobs, ws.settings.ingest)
    assert db_state(ws.db) == before
    assert (first.promoted, first.demoted) == (0, 0)
    rebuild(ws.db, ws.blobs, ws.settings.ingest)
    assert db_state(ws.db) == before


@pytest.mark.parametrize("near,group", [(0, 4), (2, 14), (12, 16)])
def test_rebuild_with_new_thresholds_equals_a_fresh_ingest(tmp_path, photos, near, group):
    with Workspace.init(tmp_path / "old") as ws:
        ingest(ws, [photos], workers=1)
        ws.db.execute("UPDATE near_duplicates SET phash = NULL")  # as rows from before m010 are
    set_thresholds(tmp_path / "old", near, group)
    fresh_path = tmp_path / "fresh"
    Workspace.init(fresh_path).close()
    set_thresholds(fresh_path, near, group)
    with Workspace.open(fresh_path) as fresh:
        ingest(fresh, [photos], workers=1)
        expected = db_state(fresh.db)
    with Workspace.open(tmp_path / "old") as ws:
        summary = rebuild(ws.db, ws.blobs, ws.settings.ingest)
        assert db_state(ws.db) == expected
        assert summary.promoted + summary.demoted > 0
        assert summary.sources == len(expected["sources"]) and summary.links == len(expected["links"])


def test_a_source_with_a_sample_stays_a_source(ws_path, photos):
    with Workspace.open(ws_path) as ws:
        ingest(ws, [photos], workers=1)
        # the source nearest to another source gets a sample: a larger threshold would demote it
        a, b, _ = ws.db.execute("SELECT a, b, distance FROM source_links ORDER BY distance LIMIT 1").fetchone()
        later = max((a, b), key=lambda s: ws.db.execute("SELECT rowid FROM sources WHERE id = ?", (s,)).fetchone()[0])
        ws.db.execute("INSERT INTO samples (id, source_id, backend, signature, created_at)"
                      " VALUES ('s1', ?, 'synthetic', 'x', '2026-01-01')", (later,))
    set_thresholds(ws_path, 16, 16)
    with Workspace.open(ws_path) as ws:
        summary = rebuild(ws.db, ws.blobs, ws.settings.ingest)
        assert summary.kept_with_samples >= 1
        assert ws.db.execute("SELECT 1 FROM sources WHERE id = ?", (later,)).fetchone()


def test_cli_rebuild_reports_and_lists(cli, ws_path, photos):
    assert cli.invoke(app, ["ingest", str(photos), "--workers", "1", "--quiet"]).exit_code == 0
    set_thresholds(ws_path, 0, 4)
    result = cli.invoke(app, ["dupes", "--rebuild", "--json"])
    assert result.exit_code == 0, result.output
    assert '"promoted": ' in result.stdout and '"promoted": 0' not in result.stdout
    assert cli.invoke(app, ["dupes", "--json"]).exit_code == 0

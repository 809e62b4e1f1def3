"""Ingest over a generated folder of good, odd and hostile files; resume after SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from PIL import Image

from aesdata import status
from aesdata.cli.main import app
from aesdata.dedup import SourceIndex
from aesdata.ingest import ingest
from aesdata.workspace import Workspace
from tests.factories import box_image
from tests.foundation import zoo


@pytest.fixture
def zoo_dir(tmp_path: Path) -> Path:
    return zoo.build(tmp_path / "zoo")


def outcomes(ws: Workspace) -> dict[str, str]:
    return {Path(o).name: out for o, out in ws.db.execute("SELECT origin, outcome FROM ingest_log")}


def test_every_kind_of_input_gets_its_outcome(ws, zoo_dir):
    summary = ingest(ws, [zoo_dir])
    assert outcomes(ws) == zoo.EXPECTED
    assert summary.as_dict() == {"added": 8, "exact_duplicates": 1, "near_duplicates": 1, "links": 0, "rejected": 4,
                                 "unchanged": 0, "skipped_extension": 0, "library_warnings": 0}
    reasons = {Path(o).name: r for o, r in ws.db.execute("SELECT origin, reason FROM rejections")}
    assert "truncated" in reasons["i_truncated.jpg"]
    assert "empty" in reasons["j_empty.png"]
    assert "not an image" in reasons["k_text.png"]
    assert "too large" in reasons["l_bomb.png"]
    assert all(str(zoo_dir) in r for r in reasons.values()), "each reason names its file"


def test_modes_are_normalised_and_alpha_kept(ws, zoo_dir):
    ingest(ws, [zoo_dir])
    by_name = {Path(r["origin"]).name: r for r in ws.db.execute("SELECT * FROM sources")}
    assert by_name["d_rgba.png"]["mode"] == "RGBA"
    assert {by_name[n]["mode"] for n in ("e_cmyk.jpg", "f_16bit.png", "g_palette.gif")} == {"RGB"}
    rotated = by_name["h_exif_rotated.jpg"]
    assert (rotated["width"], rotated["height"]) == (96, 160), "EXIF orientation applied"
    ramp = ws.blobs.open(by_name["f_16bit.png"]["id"])
    assert ramp.getpixel((127, 127))[0] > 200 and ramp.getpixel((0, 0))[0] < 5, "16-bit scaled, not clipped"
    alpha = ws.blobs.open(by_name["d_rgba.png"]["id"]).getchannel("A")
    assert alpha.getextrema() == (0, 255)


def test_near_duplicate_is_linked_not_a_source(ws, zoo_dir):
    ingest(ws, [zoo_dir])
    row = ws.db.execute("SELECT * FROM near_duplicates").fetchone()
    target = ws.db.execute("SELECT origin FROM sources WHERE id = ?", (row["duplicate_of"],)).fetchone()[0]
    assert Path(row["origin"]).name == "n_near_copy.jpg" and Path(target).name == "a_good.png"
    assert row["distance"] <= ws.settings.ingest.near_duplicate_threshold
    assert ws.blobs.exists(row["sha256"])


def test_rerun_adds_nothing_and_rows_name_existing_blobs(ws, zoo_dir):
    ingest(ws, [zoo_dir])
    before = status.counts(ws)
    again = ingest(ws, [zoo_dir])
    assert again.unchanged == len(zoo.EXPECTED) and again.added == 0
    assert status.counts(ws) == before
    for (sha,) in ws.db.execute("SELECT id FROM sources UNION SELECT sha256 FROM near_duplicates"):
        assert ws.blobs.exists(sha)


def test_sidecar_masks_are_not_sources(ws, tmp_path):
    folder = tmp_path / "with_masks"
    folder.mkdir()
    box_image(1).save(folder / "bottle.png")
    Image.new("L", (64, 64), 255).save(folder / "bottle.mask.png")
    assert ingest(ws, [folder]).added == 1
    assert ingest(ws, [str(folder / "*.png")]).unchanged == 1


def test_touched_copy_elsewhere_counts_as_exact_duplicate(ws, zoo_dir, tmp_path):
    ingest(ws, [zoo_dir])
    other = tmp_path / "other"
    other.mkdir()
    (other / "again.png").write_bytes((zoo_dir / "a_good.png").read_bytes())
    assert ingest(ws, [other]).exact_duplicates == 1


def test_file_limit_is_configurable(ws_path, zoo_dir):
    settings = ws_path / "aesdata.toml"
    settings.write_text(settings.read_text().replace("max_bytes = 100000000", "max_bytes = 100"))
    with Workspace.open(ws_path) as ws:
        ingest(ws, [zoo_dir / "a_good.png"])
        (reason,) = ws.db.execute("SELECT reason FROM rejections").fetchone()
    assert "file too large" in reason


def test_parallel_and_inline_decoding_agree(tmp_path, zoo_dir):
    states = []
    for workers in (1, 2):
        with Workspace.init(tmp_path / f"w{workers}") as ws:
            ingest(ws, [zoo_dir], workers=workers)
            states.append(db_state(ws.db))
    assert states[0] == states[1]


def test_hf_dataset_rows_are_ingested(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    files = []
    (tmp_path / "hfds" / "images").mkdir(parents=True)
    for i in range(3):
        path = tmp_path / "hfds" / "images" / f"hf{i}.png"  # an image folder dataset: files inside it
        box_image(500 + i, 96).save(path)
        files.append(str(path))
    files.append(files[0])  # an exact duplicate row
    folder = tmp_path / "hfds" / "data"
    folder.mkdir(parents=True)
    ds = datasets.Dataset.from_dict({"photo": files}).cast_column("photo", datasets.Image())
    ds.to_parquet(str(folder / "train-00000-of-00001.parquet"))
    summary = ingest(ws, hf_dataset=str(tmp_path / "hfds"), split="train", image_column="photo")
    assert (summary.added, summary.exact_duplicates) == (3, 1)
    origins = sorted(r[0] for r in ws.db.execute("SELECT origin FROM sources"))
    assert origins[0].startswith("hf://") and origins[0].endswith("/train/0")
    again = ingest(ws, hf_dataset=str(tmp_path / "hfds"), split="train", image_column="photo")
    assert (again.unchanged, again.added) == (4, 0), "rows with the same bytes are not decoded again"


def test_cli_summary_and_status_json(cli, ws_path, zoo_dir):
    result = cli.invoke(app, ["ingest", str(zoo_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert '"added": 8' in result.stdout
    result = cli.invoke(app, ["status", "--json"])
    import json

    counts = json.loads(result.stdout)
    assert list(counts) == ["sources", "near_duplicates", "rejected", "candidates", "samples", "labelled",
                            "rationales_valid", "rationales_failed", "versions", "interrupted_runs", "interrupted"]
    assert (counts["interrupted_runs"], counts["interrupted"]) == (0, [])
    assert (counts["sources"], counts["near_duplicates"], counts["rejected"]) == (8, 1, 4)
    dupes = cli.invoke(app, ["dupes", "--json"])
    assert "n_near_copy.jpg" in dupes.stdout


def test_cli_missing_path_is_one_line_error(cli, ws_path, tmp_path):
    result = cli.invoke(app, ["ingest", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere: no such file or folder" in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- crash and resume


def db_state(db: sqlite3.Connection) -> dict[str, list[tuple]]:
    """Everything ingest decides, without timestamps."""
    return {
        "sources": db.execute("SELECT id, width, height, mode, phash, dhash, origin FROM sources ORDER BY id")
        .fetchall(),
        "near": db.execute("SELECT sha256, duplicate_of, distance, origin FROM near_duplicates ORDER BY sha256")
        .fetchall(),
        "rejections": db.execute("SELECT origin, reason FROM rejections ORDER BY origin").fetchall(),
        "links": db.execute("SELECT a, b, distance FROM source_links ORDER BY a, b").fetchall(),
        "log": db.execute("SELECT origin, outcome, sha256 FROM ingest_log ORDER BY origin").fetchall(),
        "unlinked": db.execute("SELECT source_id FROM unlinked_sources").fetchall(),
    }


def many_files(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        img = box_image(10_000 + i, 256)
        if i % 10 == 3:  # sprinkle near-duplicates of earlier images
            img = box_image(10_000 + i - 1, 256).resize((200, 200))
        elif i % 10 in (6, 8):  # and crops of them: 4-12 bits away, many related (linked), not near-duplicates
            img = box_image(10_000 + i - 2, 256).crop((12, 12, 244, 244)).resize((256, 256))
        img.save(folder / f"{i:04d}.jpg", quality=90)
    (folder / "zzz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return folder


def test_links_searched_in_the_run_equal_links_searched_at_its_end(tmp_path, monkeypatch):
    """Past ``LINK_BATCH`` new sources the links are searched in the run, each time with the sources
    decided since the last search: the same rows as one search at the end."""
    inputs = many_files(tmp_path / "in", 60)
    with Workspace.init(tmp_path / "once") as ws:
        ingest(ws, [inputs], workers=1)
        expected = db_state(ws.db)
    assert len(expected["links"]) >= 2
    searched = []
    link = SourceIndex.link
    monkeypatch.setattr("aesdata.ingest.LINK_BATCH", 7)
    monkeypatch.setattr(SourceIndex, "link", lambda self: searched.append(len(self.unlinked)) or link(self))
    with Workspace.init(tmp_path / "often") as ws:
        monkeypatch.setattr("aesdata.ingest.BATCH", 5)
        ingest(ws, [inputs], workers=1)
        assert db_state(ws.db) == expected
    assert len(searched) > 5 and max(searched) < 7 + 5


# ``aesdata ARGS`` with batches of BATCH inputs, SIGKILLed right after its AFTER-th batch committed: a point
# in the run that no machine's speed moves (by the clock, a fast one commits every input in one batch)
KILLED_AFTER_BATCH = """
import os, signal, sys
import aesdata.ingest as ingest
ingest.BATCH, after, flush, seen = int(sys.argv[1]), int(sys.argv[2]), ingest._Run.flush, [0]
def counted(self):
    flush(self)
    seen[0] += 1
    if seen[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
ingest._Run.flush = counted
sys.argv = ["aesdata", *sys.argv[3:]]
from aesdata.cli.main import main
main()
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, cli):
    inputs = many_files(tmp_path / "in", 240)
    with Workspace.init(tmp_path / "ref") as ref:
        ingest(ref, [inputs], workers=1)
        expected = db_state(ref.db)

    killed = tmp_path / "killed"
    Workspace.init(killed).close()
    rng, committed = random.Random(13), []
    for _ in range(2):  # killed twice, the second time in the resumed run, each at a seeded random batch
        cmd = [sys.executable, "-c", KILLED_AFTER_BATCH, "16", str(rng.randint(1, 6)),
               "ingest", str(inputs), "-w", str(killed), "--workers", "1", "--quiet"]
        proc = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True,
                              timeout=180)
        assert proc.returncode == -signal.SIGKILL, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
        db = sqlite3.connect(killed / "aesdata.db")
        committed.append(db.execute("SELECT COUNT(*) FROM ingest_log").fetchone()[0])
        db.close()
    assert 0 < committed[0] < committed[1] < 241, f"each kill lands mid-run: {committed}"

    with Workspace.open(killed) as ws:
        for (sha,) in ws.db.execute("SELECT id FROM sources UNION SELECT sha256 FROM near_duplicates"):
            assert ws.blobs.exists(sha), "no row names a missing blob"
        assert ws.db.execute("SELECT COUNT(*) FROM unlinked_sources").fetchone()[0] > 0, "killed before linking"
    # the groups a reader sees link what the killed run left unlinked (every pair within group_threshold)
    assert cli.invoke(app, ["dupes", "-w", str(killed), "--json"]).exit_code == 0
    with Workspace.open(killed) as ws:
        ids, hashes = zip(*((i, p % 2**64) for i, p in ws.db.execute("SELECT id, phash FROM sources")), strict=True)
        close = {(min(ids[i], ids[j]), max(ids[i], ids[j]), (hashes[i] ^ hashes[j]).bit_count())
                 for i in range(len(ids)) for j in range(i) if (hashes[i] ^ hashes[j]).bit_count() <= 10}
        assert {tuple(r) for r in ws.db.execute("SELECT a, b, distance FROM source_links")} == close
        assert ws.db.execute("SELECT COUNT(*) FROM unlinked_sources").fetchone()[0] == 0
        ingest(ws, [inputs], workers=1)
        assert db_state(ws.db) == expected
    assert Image.open(next(inputs.glob("*.jpg"))).size == (256, 256)


def test_hf_dataset_rows_naming_files_are_read_only_inside_the_dataset_folder(ws, tmp_path, monkeypatch):
    """A dataset is untrusted: an image column that names a path instead of embedding bytes must not make
    ingest open (and later publish) any file it likes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    root = tmp_path / "hfds"
    (root / "data").mkdir(parents=True)
    inside, outside = root / "images" / "ok.png", tmp_path / "private" / "secret.png"
    for path, seed in ((inside, 700), (outside, 701)):
        path.parent.mkdir(parents=True)
        box_image(seed, 96).save(path)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    paths = [str(inside), str(outside), str(root / ".." / "private" / "secret.png")]
    table = pa.table({"photo": pa.array([{"bytes": None, "path": p} for p in paths], type=image)})
    pq.write_table(table, root / "data" / "train-00000-of-00001.parquet")
    summary = ingest(ws, hf_dataset=str(root), split="train", image_column="photo")
    assert (summary.added, summary.rejected) == (1, 2)
    reasons = [r[0] for r in ws.db.execute("SELECT reason FROM rejections ORDER BY origin")]
    assert all("outside the dataset's folder" in r and "secret" not in r for r in reasons)

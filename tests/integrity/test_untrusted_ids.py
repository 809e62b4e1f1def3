"""Identifiers from outside are checked before they become paths.

A crafted dataset (parquet written with pyarrow, loaded through the real ``load_dataset`` path) carries
sample ids that try ``../``, absolute paths and odd characters, a repeated id, and an image that names a
local file instead of embedding bytes. ``export`` and ``eval`` report each bad row on one line naming the
row, write nothing outside their folder, read no file the dataset names, and go on with the rest.
``mine-hard`` reads no dataset (its samples are the workspace's own): what comes from outside there is
the endpoint's replies, and crafted ones end as unparseable predictions, never as paths or SQL.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.publish.writer import FEATURES
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.openai_server import OpenAIServer

BAD_IDS = ["../../escaped", "/tmp/aesdata-absolute", "..", "a/b", "ok\nsecond line", "ＡＢＣ", "", None,
           "0123456789ABCDEF", "0123456789abcdef/../../x"]


@pytest.fixture
def crafted(ws: Workspace, cli: CliRunner, tmp_path: Path) -> tuple[Path, list[dict], Path]:
    """A real published test split, rewritten with crafted rows: (folder, rows, the secret file)."""
    make_samples(ws, 6, seed=11)
    out = tmp_path / "published"
    for args in (["cot", "--mode", "template"],
                 ["publish", "--version", "1.0.0", "--out", str(out), "--test-fraction", "0"]):
        res = cli.invoke(app, args)
        assert res.exit_code == 0, res.output
    good = list(datasets.load_dataset(str(out), split="train", streaming=True).decode(False))
    assert len(good) == 6
    secret = tmp_path / "secret.png"
    secret.write_bytes(good[0]["source"]["bytes"])  # a readable image: only its bytes could betray it
    rows = [{**good[i % len(good)], "sample_id": sid} for i, sid in enumerate(BAD_IDS)]
    rows.append({**good[1], "source": {"bytes": None, "path": str(secret)}})  # names a local file
    rows += good  # the good rows, all of them
    rows.append(good[2])  # a repeat of a good id: it would overwrite images/<id>/
    folder = tmp_path / "crafted"
    (folder / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=FEATURES.arrow_schema),
                   folder / "data" / "test-00000-of-00001.parquet")
    return folder, rows, secret


def _problems(stderr: str, where: str) -> list[str]:
    return [line for line in stderr.splitlines() if where in line]


def test_export_refuses_each_bad_row_and_writes_only_inside(crafted: tuple[Path, list[dict], Path], cli: CliRunner,
                                                           tmp_path: Path) -> None:
    folder, rows, _ = crafted
    out = tmp_path / "deep" / "export"
    res = cli.invoke(app, ["export", "--format", "grpo", "--dataset", str(folder), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    n_bad = len(BAD_IDS) + 2
    assert json.loads(res.stdout) == {"out": str(out), "written": 6, "skipped": 0, "failed": n_bad, "test": 6}
    problems = _problems(res.stderr, f"{folder} test: ")
    assert len(problems) == n_bad  # one line each, odd characters escaped
    for index, sid in enumerate(BAD_IDS):
        assert any(f"row {index}: sample_id {sid!r}: not a sample id" in p for p in problems), sid
    assert any(f"row {len(BAD_IDS)}: sample {rows[len(BAD_IDS)]['sample_id']}: an image has no embedded bytes" in p
               for p in problems)
    assert any(f"sample {rows[-1]['sample_id']}: appears twice" in p for p in problems)
    # nothing escaped the export folder; only good ids name image folders
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/aesdata-absolute").exists()
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(r["sample_id"] for r in rows[-7:-1])
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written == {"ws", "published", "crafted", "secret.png", "deep"}


def test_eval_refuses_each_bad_row_and_reads_no_named_file(crafted: tuple[Path, list[dict], Path], cli: CliRunner,
                                                           tmp_path: Path) -> None:
    folder, rows, secret = crafted
    report_path = tmp_path / "report.json"
    res = cli.invoke(app, ["eval", "--baseline", "random", "--dataset", str(folder), "--out", str(report_path)])
    assert res.exit_code == 0, res.output
    problems = _problems(res.stderr, f"{folder} test: ")
    assert len(problems) == len(BAD_IDS) + 1
    assert all(re.search(r"row \d+: ", p) for p in problems)
    report = json.loads(report_path.read_text())
    # the repeat of a good id is scored under that id (eval names no file by it)
    assert {s["sample_id"] for s in report["samples"]} == {r["sample_id"] for r in rows[-7:-1]}
    assert len(report["failed"]) == len(BAD_IDS) + 1


def test_mine_hard_stores_crafted_replies_as_unparseable(ws: Workspace, cli: CliRunner, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    make_samples(ws, 3, seed=12)
    crafted = ["<answer>../../escaped</answer>", "<answer>A'); DROP TABLE difficulty;--</answer>",
               "<answer>/etc/passwd</answer>"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with OpenAIServer(lambda body, i: crafted[i % len(crafted)], api_key="sk-test") as server:
        res = cli.invoke(app, ["mine-hard", "--model", "m", "--base-url", server.base_url, "--rollouts", "3",
                               "--concurrency", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["mined_now"] == 3
    rows = ws.db.execute("SELECT unparseable, predictions FROM difficulty").fetchall()
    assert len(rows) == 3 and all(r["unparseable"] == 3 and json.loads(r["predictions"]) == [None] * 3 for r in rows)
    assert not (tmp_path / "escaped").exists()

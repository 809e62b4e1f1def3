"""``aesdata export``: SFT and GRPO JSONL + images, read back with ``datasets`` as a trainer would."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.evaluate import dataset
from aesdata.evaluate.dataset import Row
from aesdata.evaluate.export import to_record
from aesdata.evaluate.reward import exact_reward, proportional_reward
from aesdata.publish.writer import FEATURES
from aesdata.schema import SLOTS, parse_rationale
from aesdata.workspace import Workspace
from tests.factories import make_samples


def load_for_training(out: Path, split: str) -> datasets.Dataset:
    """What the README tells users to do: load the JSONL, make image paths absolute, cast to images."""
    ds = datasets.load_dataset("json", data_files=str(out / f"{split}.jsonl"), split="train")
    ds = ds.map(lambda r: {"images": [str(out / p) for p in r["images"]]})
    return ds.cast_column("images", datasets.List(datasets.Image()))


def blob_pixels(ws: Workspace, sample_id: str) -> list[np.ndarray]:
    sample = store.get_sample(ws.db, sample_id)
    assert sample is not None
    shas = [sample.source_id, *(c.sha256 for c in store.get_candidates(ws.db, sample_id))]
    return [np.asarray(ws.blobs.open(sha)) for sha in shas]


@pytest.mark.parametrize("fmt", ["sft", "grpo"])
def test_export_round_trip(fmt: str, published: tuple[Path, dict], ws: Workspace, cli: CliRunner,
                           tmp_path: Path) -> None:
    _, ids = published
    out = tmp_path / f"export-{fmt}"
    res = cli.invoke(app, ["export", "--format", fmt, "--version", "1.0.0", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["written"] == len(ids["train"]) + len(ids["test"]) and summary["failed"] == 0
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["format"] == fmt and manifest["version"] == "1.0.0"
    assert not list(tmp_path.glob(".*partial"))

    for split, split_ids in ids.items():
        ds = load_for_training(out, split)
        assert ds["sample_id"] == split_ids
        for rec in ds:
            sid = rec["sample_id"]
            label = store.get_label(ws.db, sid)
            assert label is not None
            # pixels equal the workspace's images, in source, A, B, C, D order
            got = [np.asarray(img.convert(img.mode)) for img in rec["images"]]
            assert all(np.array_equal(a, b) for a, b in zip(got, blob_pixels(ws, sid), strict=True))
            turns = rec["messages"] if fmt == "sft" else rec["prompt"]
            user = turns[0]
            assert user["role"] == "user"
            assert [p["type"] for p in user["content"]].count("image") == 5
            assert "Candidate D:" in " ".join(p.get("text") or "" for p in user["content"])
            if fmt == "sft":
                _, answer = parse_rationale(rec["messages"][1]["content"][0]["text"])
                assert sorted(answer) == label.judgement.answer
            else:
                assert rec["solution"] == label.judgement.answer_text
                right = f"<think>...</think><answer>{rec['solution']}</answer>"
                assert proportional_reward([right, "no idea"], [rec["solution"]] * 2) == [1.0, 0.0]
                assert exact_reward([[{"role": "assistant", "content": right}]], [rec["solution"]]) == [1.0]


def test_export_never_overwrites(published: tuple[Path, dict], cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = cli.invoke(app, ["export", "--format", "grpo", "--version", "1.0.0", "--out", str(out)])
    assert res.exit_code == 1 and "exists and is not empty" in res.output
    assert (out / "keep.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_sft_needs_a_rationale() -> None:
    row = Row(sample_id="s", question="q", answer=frozenset("A"), defects={s: [] for s in SLOTS},
              images=(b"",) * 5, rationale=None, difficulty=None)
    assert to_record("sft", row, ["x"] * 5) is None
    grpo = to_record("grpo", row, ["x"] * 5)
    assert grpo is not None and grpo["solution"] == "A" and grpo["images"] == ["x"] * 5


def test_folders_with_the_same_name_are_never_mixed_up(published: tuple[Path, dict], cli: CliRunner,
                                                       tmp_path: Path) -> None:
    """datasets' prepared cache keys a local folder by its name and card: two ``published`` folders must
    still be read as they are (the reader streams)."""
    out_a, ids_a = published
    ws_b = tmp_path / "other" / "ws"
    Workspace.init(ws_b).close()
    with Workspace.open(ws_b) as ws:
        make_samples(ws, 6, seed=9)
    out_b = tmp_path / "other" / "published"
    for args in (["cot", "--mode", "template"], ["publish", "--version", "1.0.0", "--out", str(out_b)]):
        res = cli.invoke(app, [*args, "-w", str(ws_b)])
        assert res.exit_code == 0, res.output
    with Workspace.open(ws_b) as ws:
        ids_b = [r[0] for r in ws.db.execute("SELECT sample_id FROM version_rows WHERE split = 'train' ORDER BY rowid")]
    for out, want in ((out_a, ids_a["train"]), (out_b, ids_b), (out_a, ids_a["train"])):
        rows = dataset.iter_rows(dataset.load_split(dataset.DatasetRef(path=str(out)), "train"))
        assert [r.sample_id for r in rows if isinstance(r, Row)] == want


def test_malformed_rows_are_reported_and_skipped(published: tuple[Path, dict], cli: CliRunner, tmp_path: Path) -> None:
    """A folder with broken rows (hand-edited, or written by another tool): each is one line, the rest goes on."""
    out_dir, ids = published
    rows = list(datasets.load_dataset(str(out_dir), split="test", streaming=True).decode(False))
    rows[0] = {**rows[0], "answer": "A,Z"}
    rows[1] = {**rows[1], "candidates": [*rows[1]["candidates"][:3], {"bytes": None, "path": "/nowhere.png"}]}
    broken = tmp_path / "broken"
    (broken / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=FEATURES).to_parquet(str(broken / "data" / "test-00000-of-00001.parquet"))

    res = cli.invoke(app, ["eval", "--baseline", "random", "--dataset", str(broken), "--out", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert f"sample {rows[0]['sample_id']}: not a slot: Z" in res.stderr
    assert f"sample {rows[1]['sample_id']}: an image has no embedded bytes" in res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["samples"] == len(rows) - 2 and len(report["failed"]) == 2

    export = tmp_path / "x"
    res = cli.invoke(app, ["export", "--format", "grpo", "--dataset", str(broken), "--out", str(export), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"out": str(export), "written": len(rows) - 2, "skipped": 0,
                                      "failed": 2, "test": len(rows) - 2}

"""Publish end to end on factory samples: round trip through ``load_dataset``, leak-free and stable splits,
the changelog, the dataset card, and the never-overwrite rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.errors import AesdataError
from aesdata.publish.stage import publish
from aesdata.publish.writer import FEATURES
from aesdata.schema import SLOTS, PublishedRow
from aesdata.workspace import Workspace
from tests.factories import make_samples
from tests.publish.helpers import add_rationale, link, load, relabel, splits_of


def test_round_trip_features_pixels_counts(ws: Workspace, tmp_path: Path) -> None:
    ids = make_samples(ws, 30)
    for i, sid in enumerate(ids):
        add_rationale(ws, sid, "template")
        if i < 10:
            add_rationale(ws, sid, "answer-driven", model="vlm-72b")
    out = tmp_path / "v1"
    summary = publish(ws, "1.0.0", out=out, test_fraction=0.2, max_shard_bytes=12_000)

    assert summary["status"] == "published" and summary["train"] + summary["test"] == 30
    shards = sorted(p.name for p in (out / "data").iterdir())
    assert len(shards) > 2  # the shard bound split the rows
    for name in shards:
        m = re.fullmatch(r"(train|test)-(\d{5})-of-(\d{5})\.parquet", name)
        assert m, name
        assert int(m[3]) == sum(s.startswith(m[1] + "-") for s in shards)

    ds = load(out)
    assert {name: len(ds[name]) for name in ds} == {"train": summary["train"], "test": summary["test"]}
    for name in ds:
        assert ds[name].features == FEATURES
        for row in ds[name]:
            sample = store.get_sample(ws.db, row["sample_id"])
            label = store.get_label(ws.db, row["sample_id"])
            assert sample is not None and label is not None
            assert np.array_equal(np.asarray(row["source"]), np.asarray(ws.blobs.open(sample.source_id)))
            for slot, cand, img in zip(SLOTS, store.get_candidates(ws.db, sample.id), row["candidates"], strict=True):
                assert cand.slot == slot
                assert np.array_equal(np.asarray(img), np.asarray(ws.blobs.open(cand.sha256)))
            assert row["answer"] == label.judgement.answer_text
            assert row["defects"] == label.judgement.defects
            in_priority = ids.index(row["sample_id"]) < 10
            assert row["rationale_mode"] == ("answer-driven" if in_priority else "template")
            assert row["provenance"]["rationale_model"] == ("vlm-72b" if in_priority else None)
            PublishedRow.model_validate(
                {k: v for k, v in row.items() if k not in ("source", "candidates")} | {"split": name}
            )


def test_near_duplicates_never_cross_splits(ws: Workspace, tmp_path: Path) -> None:
    ids = make_samples(ws, 60)
    sources = [store.get_sample(ws.db, sid).source_id for sid in ids]  # type: ignore[union-attr]
    pairs = [(sources[i], sources[i + 1]) for i in range(0, 40, 2)] + [(sources[40], sources[50])]
    for a, b in pairs:
        link(ws, a, b)
    publish(ws, "1.0.0", out=tmp_path / "v1", test_fraction=0.4)
    split_of = splits_of(tmp_path / "v1")
    by_source = {s: split_of[sid] for s, sid in zip(sources, ids, strict=True)}
    assert "test" in by_source.values() and "train" in by_source.values()
    for a, b in pairs:
        assert by_source[a] == by_source[b]


def test_split_is_stable_and_changelog_counts(ws: Workspace, cli: CliRunner) -> None:
    old = make_samples(ws, 40)
    publish(ws, "1.0.0", test_fraction=0.25)
    v1 = splits_of(ws.root / "published" / "v1.0.0")
    new = make_samples(ws, 40, seed=1)
    relabelled = [old[0], old[1], old[2]]
    for sid in relabelled:
        relabel(ws, sid, {"A": ["physical_shadow"], "B": ["placement_layout"]})
    with ws.transaction() as db:
        db.execute("DELETE FROM labels WHERE sample_id = ?", (old[3],))
    test_old = next(s for s in old if v1[s] == "test")
    newcomer = new[0]
    link(ws, store.get_sample(ws.db, test_old).source_id, store.get_sample(ws.db, newcomer).source_id)  # type: ignore[union-attr]

    summary = publish(ws, "1.1.0", test_fraction=0.25)
    v2 = splits_of(ws.root / "published" / "v1.1.0")
    assert all(v2[s] == split for s, split in v1.items() if s in v2)  # test stays test, train stays train
    assert v2[newcomer] == "test"  # linked to a test sample: joins its split
    assert (summary["added"], summary["removed"], summary["relabelled"]) == (40, 1, 3)

    card = (ws.root / "published" / "v1.1.0" / "README.md").read_text()
    assert "Against v1.0.0:" in card and "- added: 40" in card and "- removed: 1" in card
    assert "- relabelled: 3" in card and all(f"`{s}`" in card for s in relabelled)

    res = cli.invoke(app, ["diff", "1.0.0", "1.1.0", "--json"])
    assert res.exit_code == 0, res.output
    diff = json.loads(res.stdout)
    assert sorted(diff["relabelled_ids"]) == sorted(relabelled) and diff["removed_ids"] == [old[3]]
    assert sorted(diff["added_ids"]) == sorted(new)
    res = cli.invoke(app, ["versions", "--json"])
    assert [(v["version"], v["train"] + v["test"]) for v in json.loads(res.stdout)] == [("1.0.0", 40), ("1.1.0", 79)]
    res = cli.invoke(app, ["status", "--json"])
    assert json.loads(res.stdout)["versions"] == 2


def test_never_overwrite_and_same_content_is_a_noop(ws: Workspace, cli: CliRunner, tmp_path: Path) -> None:
    ids = make_samples(ws, 12)
    res = cli.invoke(app, ["publish", "--version", "1.0.0", "--json"])
    assert res.exit_code == 0, res.output
    first = json.loads(res.stdout)
    folder = Path(first["out"])
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    res = cli.invoke(app, ["publish", "--version", "1.0.0", "--json"])
    assert res.exit_code == 0 and "no-op" in json.loads(res.stdout)["status"]

    relabel(ws, ids[0], {"C": ["appearance_deformation"]})
    res = cli.invoke(app, ["publish", "--version", "1.0.0"])
    assert res.exit_code == 1 and "already published with different content" in res.stderr
    res = cli.invoke(app, ["publish", "--version", "0.9.0"])
    assert res.exit_code == 1 and "not newer than the latest published version 1.0.0" in res.stderr
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("someone else's")
    res = cli.invoke(app, ["publish", "--version", "1.0.1", "--out", str(tmp_path / "taken")])
    assert res.exit_code == 1 and "already exists and is not this version's folder" in res.stderr

    res = cli.invoke(app, ["publish", "--version", "1.0.1", "--json"])
    assert json.loads(res.stdout)["status"] == "published"
    res = cli.invoke(app, ["publish", "--version", "1.0.2", "--json"])
    assert json.loads(res.stdout)["status"] == "no-op: same content as 1.0.1"
    assert [v.version for v in store.get_versions(ws.db)] == ["1.0.0", "1.0.1"]
    res = cli.invoke(app, ["diff", "1.0.0", "9.9.9"])
    assert res.exit_code == 1 and "version 9.9.9: not published in this workspace" in res.stderr


def test_selection_rules(ws: Workspace, tmp_path: Path) -> None:
    ids = make_samples(ws, 8)
    add_rationale(ws, ids[0], "template")
    add_rationale(ws, ids[1], "automated", model="gpt-x")
    label = store.get_label(ws.db, ids[2])
    assert label is not None
    wrong = [s for s in SLOTS if s not in label.judgement.answer]  # argues for another answer: stale
    add_rationale(ws, ids[2], "answer-driven", answer=wrong)
    with ws.transaction() as db:
        db.execute("UPDATE labels SET needs_review = 1 WHERE sample_id = ?", (ids[3],))
    add_rationale(ws, ids[3], "template")

    summary = publish(ws, "1.0.0", out=tmp_path / "v1", require_rationale=True, test_fraction=0)
    assert (summary["train"], summary["test"]) == (2, 0)
    assert (summary["skipped_needs_review"], summary["skipped_no_rationale"]) == (1, 5)
    rows = {r["sample_id"]: r for r in load(tmp_path / "v1")["train"]}
    assert set(rows) == {ids[0], ids[1]}
    assert rows[ids[1]]["rationale"].startswith("<think>automated reasoning")
    assert rows[ids[1]]["rationale"].endswith(f"<answer>{rows[ids[1]]['answer']}</answer>")


def test_card_front_matter_and_figures(ws: Workspace, tmp_path: Path) -> None:
    ids = make_samples(ws, 20)
    relabel(ws, ids[0], {"A": ["physical_shadow"]})
    add_rationale(ws, ids[0], "manual")
    publish(ws, "1.0.0", out=tmp_path / "v1", test_fraction=0.25)
    text = (tmp_path / "v1" / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["n<1K"]
    assert "visual-question-answering" in meta["task_categories"]
    assert meta["configs"] == [
        {
            "config_name": "default",
            "default": True,
            "data_files": [{"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}],
        }
    ]
    assert "| train | 15 |" in body and "| test | 5 |" in body and "| total | 20 |" in body
    for line in (
        "| synthetic labels | 19 |",
        "| human labels | 1 |",
        "annotators (pseudonymised): 2",
        "mean agreement 1.000",
        "| manual | - | 1 |",
        "| none | - | 19 |",
        "| synthetic:factory | 20 |",
        "First published version.",
    ):
        assert line in body, line
    assert re.search(r"\| physical_shadow \| \d+ / \d+ \| \d+ / \d+ \|", body)


def test_bad_version_and_empty_workspace(ws: Workspace) -> None:
    with pytest.raises(AesdataError, match="not a version of the form"):
        publish(ws, "v1")
    with pytest.raises(AesdataError, match="nothing to publish"):
        publish(ws, "1.0.0")
    assert store.get_versions(ws.db) == []


def test_mined_difficulty_column_and_hard_config(ws: Workspace, tmp_path: Path) -> None:
    ids = make_samples(ws, 12)
    pass_rates = {ids[0]: 0.0, ids[1]: 0.25, ids[2]: 0.75, ids[3]: 1.0}
    with ws.transaction() as db:
        for sid, rate in pass_rates.items():
            label = store.get_label(db, sid)
            assert label is not None
            db.execute(
                "INSERT INTO difficulty (sample_id, model, answer, prompt_hash, temperature, rollouts, passes,"
                " pass_rate, proportional, unparseable, predictions, prompt_tokens, completion_tokens, cost_usd,"
                " updated_at) VALUES (?, 'vlm-7b', ?, 'p', 1.0, 4, ?, ?, ?, 0, '[]', 0, 0, 0, '2026-01-01')",
                (sid, label.judgement.answer_text, int(rate * 4), rate, rate),
            )
    publish(ws, "1.0.0", out=tmp_path / "v1", test_fraction=0)
    rows = {r["sample_id"]: r for r in load(tmp_path / "v1")["train"]}
    assert {sid: rows[sid]["difficulty"] for sid in pass_rates} == {sid: 1 - r for sid, r in pass_rates.items()}
    assert all(rows[sid]["difficulty"] is None for sid in ids[4:])
    hard = load(tmp_path / "v1", "hard")
    assert sorted(hard["train"]["sample_id"]) == sorted([ids[0], ids[1]])
    card = (tmp_path / "v1" / "README.md").read_text()
    assert "config_name: hard" in card and "`vlm-7b`" in card and "known for 4 rows" in card

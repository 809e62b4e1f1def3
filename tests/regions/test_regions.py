"""Defect regions: the contract, the synthetic backend's true regions, and the published column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.generate.demo_sources import draw_product
from aesdata.generate.layout import cutout
from aesdata.generate.presets import load_preset
from aesdata.generate.stage import Planner, generate
from aesdata.generate.synthetic import render_one
from aesdata.publish.stage import publish
from aesdata.schema import DIMENSIONS, SLOTS, Judgement, Region
from aesdata.workspace import Workspace
from tests.generate.conftest import add_sources
from tests.publish.helpers import load

SIZE = 160
BOX = Region(dimension="physical_shadow", box=(0.1, 0.2, 0.3, 0.4))


def test_a_judgement_without_regions_stores_exactly_as_before() -> None:
    j = Judgement.from_defects({"A": ["physical_shadow"]})
    assert "regions" not in j.model_dump_json()  # old labels hash and compare as they always did
    assert Judgement.model_validate_json(j.model_dump_json()) == j


def test_regions_round_trip_and_are_canonical() -> None:
    other = Region(dimension="appearance_deformation", box=(0.5, 0.5, 0.25, 0.25))
    j = Judgement.from_defects({"A": ["appearance_deformation", "physical_shadow"]}, {"A": [BOX, other], "B": []})
    assert [r.dimension for r in j.regions["A"]] == ["appearance_deformation", "physical_shadow"]
    assert set(j.regions) == {"A"}
    assert Judgement.model_validate_json(j.model_dump_json()) == j


@pytest.mark.parametrize("box", [(0.8, 0.1, 0.3, 0.2), (-0.1, 0.1, 0.3, 0.2), (0.1, 0.1, 0.0, 0.2)])
def test_a_box_outside_the_image_or_without_area_is_refused(box: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError, match="box"):
        Region(dimension="physical_shadow", box=box)


def test_a_region_for_an_untagged_dimension_is_inconsistent() -> None:
    with pytest.raises(ValidationError, match="slot B has a region for physical_shadow but no such defect tag"):
        Judgement.from_defects({"A": ["physical_shadow"], "B": ["placement_layout"]}, {"B": [BOX]})


def _changed_and_region(dimension: str, seed: int, kind: int) -> tuple[np.ndarray, Region]:
    img = draw_product(kind)
    product = cutout(img, img.getchannel("A"))
    planner = Planner.of(load_preset("synthetic"))
    clean, _ = render_one(planner.job("s", "A", seed, product), SIZE)
    bad, _ = render_one(planner.job("s", "A", seed, product, (dimension,)), SIZE)
    assert clean.regions == ()
    (region,) = bad.regions
    changed = np.abs(np.asarray(clean.image, int) - np.asarray(bad.image, int)).max(axis=2) > 24
    return changed, region


#: Share of the pixels that differ from the clean twin that the recorded box must hold. A moved product
#: also changes where it was and its shadow, an extension its shadow: those lie outside the defect's box.
COVERAGE = {"appearance_deformation": 0.95, "physical_shadow": 0.95, "extension_rationality": 0.6,
            "placement_layout": 0.35}


@pytest.mark.parametrize("dimension", DIMENSIONS)
@pytest.mark.parametrize(("seed", "kind"), [(11, 0), (23, 2)])
def test_the_recorded_region_holds_the_drawn_defect(dimension: str, seed: int, kind: int) -> None:
    changed, region = _changed_and_region(dimension, seed, kind)
    assert region.dimension == dimension
    x, y, w, h = (round(v * SIZE) for v in region.box)
    inside = np.zeros_like(changed)
    inside[y:y + h, x:x + w] = True
    assert changed.sum() > 0
    assert (changed & inside).sum() / changed.sum() >= COVERAGE[dimension]
    assert (changed & inside).any()  # the box is on the defect, not beside it


def test_generated_labels_carry_the_regions_into_the_dataset_and_the_grpo_export(
        ws: Workspace, tmp_path: Path, cli: CliRunner) -> None:
    add_sources(ws, tmp_path / "photos", 4)
    generate(ws, backend="synthetic", size=SIZE)
    labels = {s.id: store.get_label(ws.db, s.id) for s in store.iter_samples(ws.db)}
    for sample_id, label in labels.items():
        cands = store.get_candidates(ws.db, sample_id)
        for c in cands:
            assert {r.dimension for r in c.provenance.regions} == set(c.provenance.injected)
            assert label.judgement.regions.get(c.slot, []) == sorted(
                c.provenance.regions, key=lambda r: (DIMENSIONS.index(r.dimension), r.box))
    publish(ws, version="1.0.0", out=tmp_path / "ds", require_rationale=False, test_fraction=0.0)
    rows = load(tmp_path / "ds")["train"]
    assert len(rows) == len(labels)
    for row in rows:
        judgement = labels[row["sample_id"]].judgement
        got = {s: [Region(dimension=r["dimension"], box=tuple(r["box"])) for r in row["regions"][s]] for s in SLOTS}
        assert got == {s: judgement.regions.get(s, []) for s in SLOTS}
        assert any(row["regions"][s] for s in SLOTS) == any(row["defects"][s] for s in SLOTS)
    res = cli.invoke(app, ["export", "--format", "grpo", "--version", "1.0.0", "--out", str(tmp_path / "grpo")])
    assert res.exit_code == 0, res.output
    for line in (tmp_path / "grpo" / "train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        judgement = labels[rec["sample_id"]].judgement
        assert {s: [Region.model_validate(r) for r in rec["regions"][s]] for s in SLOTS} == {
            s: judgement.regions.get(s, []) for s in SLOTS}


def test_eval_scores_where_a_model_says_the_defects_are(ws: Workspace, tmp_path: Path, cli: CliRunner,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that boxes the whole image for every slot and dimension: its grounding IoU against a true
    box is that box's area, so the expected figures follow from the published regions alone."""
    from tests.openai_server import OpenAIServer

    add_sources(ws, tmp_path / "photos", 4)
    generate(ws, backend="synthetic", size=SIZE)
    publish(ws, version="1.0.0", out=tmp_path / "ds", require_rationale=False, test_fraction=0.0)
    everything = [{"slot": s, "dimension": d, "box": [0, 0, 1, 1]} for s in SLOTS for d in DIMENSIONS]
    reply = f"<answer>none</answer><regions>{json.dumps(everything)}</regions>"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    out = tmp_path / "report.json"
    with OpenAIServer(lambda body, i: reply, api_key="sk-test") as server:
        res = cli.invoke(app, ["eval", "--model", "m", "--base-url", server.base_url, "--version", "1.0.0",
                               "--split", "train", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    want: dict[str, list[float]] = {}
    for row in load(tmp_path / "ds")["train"]:
        per_dim: dict[str, list[float]] = {}
        for slot in SLOTS:
            for r in row["regions"][slot]:
                per_dim.setdefault(r["dimension"], []).append(r["box"][2] * r["box"][3])
        for dim, areas in per_dim.items():
            want.setdefault(dim, []).append(sum(areas) / len(areas))
    assert want, "the synthetic samples have regions"
    assert set(report["grounding"]) == set(want)
    for dim, values in want.items():
        assert report["grounding"][dim]["samples"] == len(values)
        assert report["grounding"][dim]["iou"] == pytest.approx(sum(values) / len(values), abs=1e-3)

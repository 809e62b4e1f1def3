"""The diffusers backend end to end, through ``aesdata generate --model DIR`` on the tiny pipeline."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import imagehash
import numpy as np
import pytest
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.generate.presets import load_preset
from aesdata.generate.stage import Planner, candidate_seed, make_backend, product_of, regenerate, settle_preset
from aesdata.schema import SLOTS
from aesdata.workspace import Workspace
from tests.generate.conftest import TINY, add_sources, aesdata_process


def _summary(result: object) -> dict[str, int]:
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[attr-defined]


def test_four_distinct_candidates_with_full_provenance(ws: Workspace, cli: CliRunner, tiny_model: Path,
                                                       tmp_path: Path) -> None:
    add_sources(ws, tmp_path / "photos", 2)
    result = cli.invoke(app, ["generate", "--model", str(tiny_model), *TINY, "--seed", "7", "--json"])
    assert result.exit_code == 0, result.output
    assert _summary(result) | {"redraws": 0} == {"sources": 2, "samples": 2, "candidates": 8, "redraws": 0,
                                                 "skipped": 0, "failed": 0}
    preset = load_preset("sd15-inpaint")
    bank = preset.prompt_bank()
    samples = list(store.iter_samples(ws.db))
    assert len(samples) == 2
    for sample in samples:
        assert sample.backend == "diffusers" and sample.id == store.sample_id_for(sample.source_id)
        cands = store.get_candidates(ws.db, sample.id)
        assert [c.slot for c in cands] == list(SLOTS)
        assert len({c.sha256 for c in cands}) == 4
        hashes = [imagehash.phash(ws.blobs.open(c.sha256)) for c in cands]
        for i, j in itertools.combinations(range(4), 2):  # distinct, or the later one used up its redraws
            assert hashes[j] - hashes[i] > preset.near_duplicate_distance or \
                cands[j].provenance.redraws == preset.max_redraws
        for c in cands:
            p = c.provenance
            assert (c.width, c.height) == (64, 64) and p.size == 64 and p.steps == 2
            assert p.backend == "diffusers" and p.model_id == f"{tiny_model.name}@{p.revision}"  # never its path
            assert p.revision and p.revision.startswith("folder-sha256:")
            assert p.pipeline_class == "StableDiffusionInpaintPipeline" and p.scheduler == "PNDMScheduler"
            assert p.diffusers_version and p.torch_version
            assert p.prompt in bank and p.negative_prompt == preset.negative_prompt
            assert p.guidance == preset.guidance and p.strength == preset.strength
            assert p.seed == c.seed == candidate_seed(7, sample.source_id, c.slot) + p.redraws
            assert p.mask == "alpha" and p.injected == []
            assert 0 < p.layout.scale <= 1
    # a second run has nothing left to do and adds nothing
    again = cli.invoke(app, ["generate", "--model", str(tiny_model), *TINY, "--seed", "7", "--json"])
    assert again.exit_code == 0 and _summary(again)["sources"] == 0
    assert ws.db.execute("SELECT count(*) FROM candidates").fetchone()[0] == 8


def test_a_slot_is_reproducible_from_its_seed_alone(ws: Workspace, tiny_model: Path, tmp_path: Path) -> None:
    add_sources(ws, tmp_path / "photos", 1)
    preset = settle_preset(ws, model=str(tiny_model), size=64, steps=2)
    engine = make_backend(preset, device="cpu")
    from aesdata.generate.stage import generate

    generate(ws, model=str(tiny_model), size=64, steps=2, engine=engine)
    sample = next(store.iter_samples(ws.db))
    cands = {c.slot: c for c in store.get_candidates(ws.db, sample.id)}
    # stored pixels: slot C drawn again alone equals slot C drawn in the batch of four
    alone = np.asarray(regenerate(ws, engine, preset, sample.id, "C"), dtype=int)
    assert np.abs(alone - np.asarray(ws.blobs.open(cands["C"].sha256), dtype=int)).max() <= 1
    # float output: the batch of four and slot C alone agree within 1e-4; another seed does not
    source = store.get_source(ws.db, sample.source_id)
    assert source is not None
    product, _ = product_of(ws, source)
    planner = Planner.of(preset)
    jobs = [planner.job(source.id, s, cands[s].seed, product) for s in SLOTS]
    batch = engine.arrays(jobs)  # type: ignore[attr-defined]
    single = engine.arrays([jobs[2]])[0]  # type: ignore[attr-defined]
    assert np.abs(batch[2] - single).max() < 1e-4
    other = engine.arrays([planner.job(source.id, "C", cands["C"].seed + 1, product)])[0]  # type: ignore[attr-defined]
    assert np.abs(other - single).max() > 0.05


def test_missing_model_folder_is_one_clear_error(ws: Workspace, cli: CliRunner, tmp_path: Path) -> None:
    add_sources(ws, tmp_path / "photos", 1)
    missing = cli.invoke(app, ["generate", "--model", str(tmp_path / "no-such-model"), *TINY])
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines()[0] == f"error: {tmp_path / 'no-such-model'}: model folder not found"
    assert "Traceback" not in missing.output
    (tmp_path / "empty").mkdir()
    empty = cli.invoke(app, ["generate", "--model", str(tmp_path / "empty"), *TINY])
    assert empty.exit_code == 1 and "not a diffusers pipeline folder (no model_index.json)" in empty.stderr
    assert ws.db.execute("SELECT count(*) FROM samples").fetchone()[0] == 0


def _count(db_path: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.mark.slow
def test_sigkill_loses_at_most_the_batch_in_flight(ws_path: Path, cli: CliRunner, tiny_model: Path,
                                                   tmp_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        add_sources(ws, tmp_path / "photos", 5)
    args = ["generate", "--model", str(tiny_model), *TINY, "--batch-size", "1", "--device", "cpu"]
    proc = aesdata_process(args, ws_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while _count(ws_path / "aesdata.db", "samples") < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "generate ended before it was killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = _count(ws_path / "aesdata.db", "samples")
    assert 1 <= done < 5
    assert _count(ws_path / "aesdata.db", "candidates") == 4 * done  # whole samples only
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert _summary(result)["sources"] == 5 - done
    with Workspace.open(ws_path) as ws:
        assert ws.db.execute("SELECT count(*) FROM samples").fetchone()[0] == 5
        rows = ws.db.execute("SELECT sha256 FROM candidates").fetchall()
        assert len(rows) == 20 and all(ws.blobs.exists(r[0]) for r in rows)
        statuses = [r[0] for r in ws.db.execute("SELECT status FROM runs WHERE stage = 'generate' ORDER BY id")]
        assert statuses == ["interrupted", "done"]  # marked when the workspace was opened again


def test_a_text_to_image_folder_works_too(ws: Workspace, cli: CliRunner, tiny_model: Path, tmp_path: Path) -> None:
    """Any save_pretrained folder: a 4-channel text-to-image pipeline is loaded as its inpainting sibling."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

    inpaint = StableDiffusionInpaintPipeline.from_pretrained(tiny_model)
    unet = UNet2DConditionModel.from_config({**inpaint.unet.config, "in_channels": 4})
    StableDiffusionPipeline(vae=inpaint.vae, text_encoder=inpaint.text_encoder, tokenizer=inpaint.tokenizer,
                            unet=unet, scheduler=inpaint.scheduler, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(tmp_path / "t2i")
    add_sources(ws, tmp_path / "photos", 1)
    result = cli.invoke(app, ["generate", "--model", str(tmp_path / "t2i"), *TINY, "--json"])
    assert result.exit_code == 0, result.output
    assert _summary(result)["candidates"] == 4
    sample = next(store.iter_samples(ws.db))
    assert {c.provenance.pipeline_class for c in store.get_candidates(ws.db, sample.id)} == {
        "StableDiffusionInpaintPipeline"}

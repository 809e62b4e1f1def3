"""The synthetic backend: labels equal the injected defects, and each defect changes what it names."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from aesdata import store
from aesdata.generate.demo_sources import draw_product
from aesdata.generate.layout import cutout
from aesdata.generate.presets import load_preset
from aesdata.generate.stage import Planner, generate, make_backend, product_of, regenerate, settle_preset
from aesdata.generate.synthetic import draw_defects, render_one
from aesdata.schema import DIMENSIONS, SLOTS, Judgement
from aesdata.workspace import Workspace
from tests.generate.conftest import add_sources, aesdata_process

SIZE = 192


def test_stage_stores_the_injected_defects_as_synthetic_labels(ws: Workspace, tmp_path: Path) -> None:
    add_sources(ws, tmp_path / "photos", 6)
    summary = generate(ws, backend="synthetic", size=SIZE)
    assert summary["samples"] == 6 and summary["candidates"] == 24 and summary["skipped"] == 0
    answers = Counter()
    for sample in store.iter_samples(ws.db):
        label = store.get_label(ws.db, sample.id)
        cands = store.get_candidates(ws.db, sample.id)
        assert label is not None and label.origin == "synthetic" and sample.backend == "synthetic"
        assert label.judgement == Judgement.from_defects({c.slot: c.provenance.injected for c in cands},
                                                         {c.slot: c.provenance.regions for c in cands})
        assert len({c.sha256 for c in cands}) == 4
        answers[len(label.judgement.answer)] += 1
        for c in cands:
            assert c.provenance.model_id == "aesdata-synthetic" and c.provenance.mask == "alpha"
            assert c.provenance.prompt.startswith("a product photo on a")
    assert len(answers) >= 2  # the number of acceptable candidates varies between samples
    # every stored image is reproducible from its seed, and differs from its clean twin exactly when labelled
    preset = settle_preset(ws, backend="synthetic", size=SIZE)
    engine, planner = make_backend(preset), Planner.of(preset)
    for sample in list(store.iter_samples(ws.db))[:3]:
        source = store.get_source(ws.db, sample.source_id)
        assert source is not None
        product, _ = product_of(ws, source)
        for c in store.get_candidates(ws.db, sample.id):
            stored = np.asarray(ws.blobs.open(c.sha256))
            assert np.array_equal(np.asarray(regenerate(ws, engine, preset, sample.id, c.slot)), stored)
            twin, _ = render_one(planner.job(source.id, c.slot, c.seed, product), SIZE)
            assert np.array_equal(np.asarray(twin.image), stored) == (not c.provenance.injected)


def test_defect_count_is_uniform_over_zero_to_four_and_covers_every_dimension() -> None:
    counts, dims = Counter(), Counter()
    for i in range(400):
        defects = draw_defects(random.Random(i))
        counts[sum(1 for s in SLOTS if not defects[s])] += 1
        dims.update(d for s in SLOTS for d in defects[s])
    assert set(counts) == {0, 1, 2, 3, 4} and min(counts.values()) > 40
    assert set(dims) == set(DIMENSIONS)


def _twins(dimension: str, seed: int, kind_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A clean candidate and its twin with one injected defect: images and product silhouettes."""
    img = draw_product(kind_seed)
    planner = Planner.of(load_preset("synthetic"))
    product = cutout(img, img.getchannel("A"))
    clean, clean_sil = render_one(planner.job("s", "A", seed, product), SIZE)
    bad, bad_sil = render_one(planner.job("s", "A", seed, product, (dimension,)), SIZE)
    return (np.asarray(clean.image, dtype=int), np.asarray(bad.image, dtype=int), clean_sil > 0.5,
            bad_sil > 0.5)


def _box(sil: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(sil)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


CASES = [(seed, kind) for seed in (11, 23, 37, 41) for kind in (0, 1, 2, 3)]


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_placement_defect_really_moves_the_product(seed: int, kind: int) -> None:
    _, _, clean, bad = _twins("placement_layout", seed, kind)
    cx0, cy0, cx1, cy1 = _box(clean)
    bx0, by0, bx1, by1 = _box(bad)
    lifted = cy1 - by1 >= 0.08 * SIZE
    rescaled = not 0.7 <= (by1 - by0) / (cy1 - cy0) <= 1.43
    cut = min(bx0, by0) <= 0 or max(bx1, by1) >= SIZE - 1
    assert lifted or rescaled or cut


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_shadow_defect_changes_only_the_floor(seed: int, kind: int) -> None:
    clean_img, bad_img, clean, bad = _twins("physical_shadow", seed, kind)
    assert np.array_equal(clean, bad)  # the product itself is untouched
    diff = np.abs(clean_img - bad_img).max(axis=2)
    assert diff[ndimage.binary_erosion(clean, iterations=2)].max() <= 2  # only its soft edge may blend
    assert (diff[~clean] > 20).sum() > 0.005 * SIZE * SIZE  # a visible area of shadow moved


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_deformation_bends_the_product(seed: int, kind: int) -> None:
    clean_img, bad_img, clean, bad = _twins("appearance_deformation", seed, kind)
    assert (clean & bad).sum() / (clean | bad).sum() < 0.985  # the outline bends
    changed = np.abs(clean_img - bad_img).max(axis=2)[clean | bad] > 30
    assert changed.mean() > 0.08  # and a visible share of the product's pixels moved


@pytest.mark.parametrize(("seed", "kind"), CASES)
def test_extension_continues_the_product_past_its_edge(seed: int, kind: int) -> None:
    _, _, clean, bad = _twins("extension_rationality", seed, kind)
    assert bad.sum() >= 1.2 * clean.sum()
    x0, y0, x1, y1 = _box(clean)
    outside = bad.copy()
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert outside.sum() >= 0.15 * clean.sum()


def test_clean_twin_is_deterministic_and_preview_grid(tmp_path: Path) -> None:
    """Same job, same pixels; and a grid a person can look at (clean + one per dimension)."""
    rows = []
    for kind in range(4):
        row = [_twins(d, 5 + kind, kind) for d in DIMENSIONS]
        assert all(np.array_equal(row[0][0], r[0]) for r in row)  # the clean twin never varies
        rows.append(np.concatenate([row[0][0]] + [r[1] for r in row], axis=1))
    Image.fromarray(np.concatenate(rows).astype(np.uint8)).save(tmp_path / "defects.png")
    assert (tmp_path / "defects.png").stat().st_size > 10_000


@pytest.mark.slow
def test_two_runs_at_once_make_each_sample_once(ws_path: Path, tmp_path: Path) -> None:
    """Two generate processes on one workspace: every source gets exactly one sample, neither run fails."""
    with Workspace.open(ws_path) as ws:
        add_sources(ws, tmp_path / "photos", 6)
    args = ["generate", "--backend", "synthetic", "--size", "96", "--batch-size", "1", "--json"]
    procs = [aesdata_process(args, ws_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    made = [json.loads(out.strip().splitlines()[-1])["samples"] for out, _ in outs]
    assert sum(made) == 6
    with Workspace.open(ws_path) as ws:
        assert ws.db.execute("SELECT count(*) FROM samples").fetchone()[0] == 6
        assert ws.db.execute("SELECT count(*) FROM candidates").fetchone()[0] == 24
        assert ws.db.execute("SELECT count(*) FROM labels").fetchone()[0] == 6


@pytest.mark.slow
def test_ctrl_c_keeps_finished_batches_and_records_them(ws_path: Path, tmp_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        add_sources(ws, tmp_path / "photos", 12)
    args = ["generate", "--backend", "synthetic", "--size", "384", "--batch-size", "1"]
    proc = aesdata_process(args, ws_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with Workspace.open(ws_path) as ws:
        deadline = time.monotonic() + 120
        while ws.db.execute("SELECT count(*) FROM samples").fetchone()[0] < 1:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted: work committed so far is kept" in err
    with Workspace.open(ws_path) as ws:
        done = ws.db.execute("SELECT count(*) FROM samples").fetchone()[0]
        status, summary = ws.db.execute("SELECT status, summary FROM runs WHERE stage = 'generate'").fetchone()
        assert 1 <= done < 12 and status == "interrupted" and json.loads(summary)["samples"] == done
        assert generate(ws, backend="synthetic", size=384)["samples"] == 12 - done

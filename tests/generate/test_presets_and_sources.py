"""Presets (shipped and custom), settings precedence, near-duplicate redraws, and demo-sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.errors import AesdataError
from aesdata.generate.masks import product_mask
from aesdata.generate.presets import available, load_preset
from aesdata.generate.stage import candidate_seed, generate, settle_preset
from aesdata.workspace import Workspace
from tests.generate.conftest import add_sources


def test_shipped_presets_load() -> None:
    assert {"sd15-inpaint", "sdxl-inpaint", "flux-fill", "synthetic"} <= set(available())
    flux = load_preset("flux-fill")
    assert flux.pipeline == "FluxFillPipeline" and flux.negative_prompt is None
    assert load_preset("sdxl-inpaint").size == 1024 and load_preset("synthetic").backend == "synthetic"
    for name in available():
        assert load_preset(name).prompt_bank()


def test_bad_presets_and_overrides_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AesdataError, match="no preset named 'nope'"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('steps = 0\n[layout]\nscale = [0.9, 0.1]\n')
    with pytest.raises(AesdataError, match=r"bad.toml: steps: Input should be greater than or equal to 1"):
        load_preset(str(bad))
    with pytest.raises(AesdataError, match="size"):
        load_preset("sd15-inpaint").with_overrides(size=65)
    sd15 = load_preset("sd15-inpaint")
    assert sd15.signature(0) != sd15.with_overrides(steps=2).signature(0) != sd15.signature(1)


def test_settings_precedence_and_conflicts(ws: Workspace) -> None:
    assert settle_preset(ws).name == "synthetic"  # aesdata.toml: backend = "synthetic"
    assert settle_preset(ws, model="/m").name == "sd15-inpaint"  # --model implies diffusers + toml preset
    assert settle_preset(ws, backend="diffusers", preset="flux-fill").model == "black-forest-labs/FLUX.1-Fill-dev"
    with pytest.raises(AesdataError, match="preset synthetic is for the synthetic backend, not diffusers"):
        settle_preset(ws, backend="diffusers", preset="synthetic")
    with pytest.raises(AesdataError, match="--model is for the diffusers backend"):
        settle_preset(ws, backend="synthetic", model="/m")


def test_near_duplicates_are_redrawn_with_the_next_seed(ws: Workspace, tmp_path: Path) -> None:
    """With every sibling 'near' (distance 64), each later slot uses up its redraws, recorded."""
    add_sources(ws, tmp_path / "photos", 1)
    preset = tmp_path / "strict.toml"
    preset.write_text('backend = "synthetic"\nsize = 96\nnear_duplicate_distance = 64\nmax_redraws = 2\n')
    summary = generate(ws, backend="synthetic", preset=str(preset), seed=3)
    assert summary["redraws"] == 6
    sample = next(store.iter_samples(ws.db))
    cands = store.get_candidates(ws.db, sample.id)
    assert [c.provenance.redraws for c in cands] == [0, 2, 2, 2]
    assert [c.seed - candidate_seed(3, sample.source_id, c.slot) for c in cands] == [0, 2, 2, 2]


def test_demo_sources_are_deterministic_product_photos(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["demo-sources", str(tmp_path / "a"), "--n", "4", "--json"])
    assert result.exit_code == 0, result.output
    cli.invoke(app, ["demo-sources", str(tmp_path / "b"), "--n", "4"])
    cli.invoke(app, ["demo-sources", str(tmp_path / "c"), "--n", "4", "--seed", "1"])
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == [f"product_{i:04d}.png" for i in range(4)]
    for name in names:
        a = (tmp_path / "a" / name).read_bytes()
        assert a == (tmp_path / "b" / name).read_bytes() and a != (tmp_path / "c" / name).read_bytes()
        with Image.open(tmp_path / "a" / name) as img:
            alpha = np.asarray(img.getchannel("A"))
            assert img.mode == "RGBA" and alpha.min() == 0 and alpha.max() == 255
            assert 0.05 < (alpha > 127).mean() < 0.8
    cli.invoke(app, ["demo-sources", str(tmp_path / "rgb"), "--n", "2", "--no-alpha"])
    with Image.open(tmp_path / "rgb" / "product_0000.png") as img:
        img.load()
        assert img.mode == "RGB" and product_mask(img, "x.png")[1] == "background"

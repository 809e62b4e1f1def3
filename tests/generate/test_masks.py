"""Product masks: alpha, sidecar NAME.mask.png, background estimate, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aesdata import store
from aesdata.errors import InputRejected
from aesdata.generate.demo_sources import draw_product
from aesdata.generate.masks import product_mask
from aesdata.ingest import ingest
from aesdata.workspace import Workspace


def _noisy(size: int = 96, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB")


def test_alpha_rule() -> None:
    img = draw_product(3)
    mask, how = product_mask(img, "/x/p.png")
    assert how == "alpha" and np.array_equal(np.asarray(mask), np.asarray(img.getchannel("A")))


def test_background_rule_on_a_studio_shot() -> None:
    rgba = draw_product(5)
    mask, how = product_mask(draw_product(5, alpha=False), "/x/p.png")
    truth = np.asarray(rgba.getchannel("A")) > 127
    found = np.asarray(mask) > 127
    assert how == "background" and (truth & found).sum() / (truth | found).sum() > 0.9


def test_sidecar_rule_and_its_size_check(tmp_path: Path) -> None:
    img = _noisy()
    side = Image.new("L", img.size, 0)
    ImageDraw.Draw(side).rectangle((20, 20, 70, 80), fill=255)
    side.save(tmp_path / "shot.mask.png")
    mask, how = product_mask(img, str(tmp_path / "shot.png"))
    assert how == "sidecar" and np.array_equal(np.asarray(mask), np.asarray(side))
    side.resize((50, 50)).save(tmp_path / "shot.mask.png")
    with pytest.raises(InputRejected, match=r"shot\.mask\.png: sidecar mask is 50x50, the image is 96x96"):
        product_mask(img, str(tmp_path / "shot.png"))


def test_no_usable_mask_is_one_line_naming_the_file() -> None:
    with pytest.raises(InputRejected) as err:
        product_mask(_noisy(), "/data/noise.png")
    assert str(err.value).startswith("/data/noise.png: no usable product mask: no alpha, no sidecar")
    assert "add noise.mask.png next to it" in str(err.value) and "\n" not in str(err.value)
    empty = Image.new("RGBA", (64, 64), (255, 255, 255, 0))
    with pytest.raises(InputRejected, match="alpha channel covers 0.0% of the image"):
        product_mask(empty, "hf://org/ds/train/3")


def test_stage_skips_a_source_without_mask_and_goes_on(ws: Workspace, cli, tmp_path: Path) -> None:
    from aesdata.cli.main import app

    photos = tmp_path / "photos"
    photos.mkdir()
    draw_product(1).save(photos / "good.png")
    _noisy(seed=1).save(photos / "noise.png")
    _noisy(seed=2).save(photos / "masked.png")
    side = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(side).ellipse((10, 10, 80, 90), fill=255)
    side.save(photos / "masked.mask.png")  # ingest skips sidecars; generate finds it by the source's origin
    assert ingest(ws, [photos], workers=1).added == 3
    result = cli.invoke(app, ["generate", "--backend", "synthetic", "--size", "96"])
    assert result.exit_code == 0, result.output
    skips = [ln for ln in result.stderr.splitlines() if ln.startswith("skip:")]
    assert len(skips) == 1 and str(photos / "noise.png") in skips[0] and "no usable product mask" in skips[0]
    rules = {c.provenance.mask for s in store.iter_samples(ws.db) for c in store.get_candidates(ws.db, s.id)}
    assert rules == {"alpha", "sidecar"}
    assert ws.db.execute("SELECT count(*) FROM samples").fetchone()[0] == 2

"""A preset brings its backend: `aesdata generate --preset P` alone runs P's backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aesdata.cli.main import app
from aesdata.errors import AesdataError
from aesdata.generate.presets import choose

DEFAULTS = {"default_backend": "synthetic", "default_preset": "sd15-inpaint"}


def test_the_preset_chooses_the_backend_unless_told_otherwise() -> None:
    assert choose(preset="sd15-inpaint", backend=None, model=None, **DEFAULTS).backend == "diffusers"
    assert choose(preset="synthetic", backend=None, model=None, default_backend="diffusers",
                  default_preset="sd15-inpaint").backend == "synthetic"
    assert choose(preset=None, backend=None, model=None, **DEFAULTS).name == "synthetic"
    assert choose(preset=None, backend="diffusers", model=None, **DEFAULTS).name == "sd15-inpaint"
    assert choose(preset=None, backend=None, model="/m", **DEFAULTS).name == "sd15-inpaint"
    with pytest.raises(AesdataError, match="preset sd15-inpaint is for the diffusers backend, not synthetic"):
        choose(preset="sd15-inpaint", backend="synthetic", model=None, **DEFAULTS)
    with pytest.raises(AesdataError, match="--model is for the diffusers backend"):
        choose(preset="synthetic", backend=None, model="/m", **DEFAULTS)
    with pytest.raises(AesdataError, match="--backend magic: not a backend"):
        choose(preset=None, backend="magic", model=None, **DEFAULTS)


def test_generate_with_a_preset_alone_runs_its_backend(tmp_path: Path, cli, monkeypatch) -> None:
    """aesdata.toml says diffusers; `--preset tiny` (a synthetic preset of the workspace) needs no model."""
    ws = tmp_path / "ws"
    assert cli.invoke(app, ["init", str(ws)]).exit_code == 0
    settings = ws / "aesdata.toml"
    settings.write_text(settings.read_text().replace('backend = "synthetic"', 'backend = "diffusers"'))
    (ws / "assets" / "generation").mkdir(parents=True)
    (ws / "assets" / "generation" / "tiny.toml").write_text('backend = "synthetic"\nsize = 64\n')
    monkeypatch.setenv("AESDATA_WORKSPACE", str(tmp_path / "elsewhere"))  # -w before the command wins
    assert cli.invoke(app, ["demo-sources", str(tmp_path / "photos"), "--n", "1"]).exit_code == 0
    assert cli.invoke(app, ["-w", str(ws), "ingest", str(tmp_path / "photos")]).exit_code == 0
    result = cli.invoke(app, ["-w", str(ws), "generate", "--preset", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] == 1

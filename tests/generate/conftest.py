"""Fixtures of the generate tests: a tiny random-weight SD-inpaint pipeline on disk, and real sources.

The pipeline is built offline (no hub, no tokenizer download): tiny UNet with 9 input channels, tiny VAE,
tiny CLIP text encoder, a CLIPTokenizer over a small vocabulary written here (``model_max_length=77``),
saved with ``save_pretrained`` so tests load it the way a user would: ``aesdata generate --model DIR``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aesdata.generate import random_pipelines
from aesdata.generate.demo_sources import write_demo_sources
from aesdata.ingest import ingest
from aesdata.workspace import Workspace

#: The smallest run the issue asks to be possible: 64 pixels, 2 steps.
TINY = ["--size", "64", "--steps", "2"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-sd-inpaint")
    pipe = random_pipelines.build("tiny", root / "tokenizer-src")
    assert pipe.unet.config.in_channels == 9 and pipe.tokenizer.model_max_length == 77
    pipe.save_pretrained(root / "model")
    return root / "model"


def add_sources(ws: Workspace, folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """Draw ``n`` demo product photos (RGBA) into ``folder`` and ingest them for real."""
    paths = write_demo_sources(folder, n, seed=seed)
    summary = ingest(ws, [folder], workers=1)
    assert summary.added == n
    return paths


def aesdata_process(args: list[str], ws_path: Path, **popen: Any) -> subprocess.Popen[str]:
    """``aesdata ARGS`` as a separate process on the workspace at ``ws_path`` (to kill or race it)."""
    return subprocess.Popen([sys.executable, "-c", "from aesdata.cli.main import main; main()", *args],
                            env=os.environ | {"AESDATA_WORKSPACE": str(ws_path)}, text=True, **popen)

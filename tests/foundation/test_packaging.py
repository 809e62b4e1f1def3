"""The wheel carries the top-level assets, and the installed package finds them there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_ships_assets_and_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True)
    (wheel,) = tmp_path.glob("aesdata-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for asset in ("generation/", "annotation/", "schemas/source.json", "label_studio_config.xml"):
        assert any(n.startswith(f"aesdata/_assets/{asset}") for n in names), asset
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    probe = "from aesdata.assets import asset_path; print(asset_path('label_studio_config.xml'))"
    found = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(target)},
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert found.startswith(str(target)), found

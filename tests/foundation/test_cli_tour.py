"""The README's tour runs as pasted into a fresh shell: only PATH and HOME set, an empty folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def tour() -> str:
    section = README.read_text(encoding="utf-8").split("## A tour of the commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "no bash block in the README's tour"
    return block.group(1)


@pytest.mark.slow
def test_the_readme_tour_runs_as_pasted(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(tmp_path / "home"),
           "LANG": "C.UTF-8"}
    script = "set -euo pipefail\n" + tour() + "\naesdata status --json > final-status.json\n"
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads((tmp_path / "final-status.json").read_text())
    assert status["samples"] == status["labelled"] == status["rationales_valid"] > 0
    assert status["versions"] == 2
    assert (tmp_path / "sft").is_dir() and (tmp_path / "ws" / "assets" / "generation").is_dir()

"""Start-up: the CLI parses before it imports any heavy library, and `-w` works on either side.

Which modules a command loads is checked in a fresh interpreter (this test process has imported
everything already); time is measured in `make bench`/the README, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aesdata.cli.main import app

#: Libraries no help page and no `status` may load (each costs 0.1 s to seconds to import).
HEAVY = ("torch", "diffusers", "transformers", "openai", "label_studio_sdk", "datasets", "huggingface_hub",
         "pyarrow", "pandas", "numpy", "scipy", "imagehash", "httpx", "aiohttp")

_PROBE = """
import json, sys
from aesdata.cli.main import main
runs, heavy, seen = json.loads(sys.argv[1]), json.loads(sys.argv[2]), []
for args in runs:
    sys.argv = ["aesdata", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    seen.append({"args": args, "code": code, "heavy": sorted(m for m in heavy if m in sys.modules)})
print("\\n@@" + json.dumps(seen))
"""


def run_probe(runs: list[list[str]], heavy: tuple[str, ...] = HEAVY) -> list[dict]:
    """Run CLI invocations one after another in one fresh interpreter; heavy modules loaded after each."""
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(runs), json.dumps(heavy)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert "@@" in done.stdout, done.stderr
    return json.loads(done.stdout.rsplit("@@", 1)[1])


def test_help_and_status_load_no_heavy_library(ws_path: Path) -> None:
    runs = [["--help"], ["-w", str(ws_path), "status"], ["status", "--json"], ["cot", "--help"],
            ["annotate", "--help"], ["annotate", "serve", "--help"], ["generate", "--help"], ["eval", "--help"],
            ["publish", "--help"], ["ingest", "--help"], ["assets", "diff"], ["versions"]]
    seen = run_probe(runs)
    assert [s["code"] for s in seen] == [0] * len(runs), seen
    assert [s for s in seen if s["heavy"]] == []


def test_status_json_for_scripts_loads_neither_rich_nor_the_models(ws_path: Path) -> None:
    (seen,) = run_probe([["-w", str(ws_path), "status", "--json"]], heavy=("rich", "aesdata.schema"))
    assert seen == {"args": ["-w", str(ws_path), "status", "--json"], "code": 0, "heavy": []}


def test_the_probe_sees_a_heavy_import_when_there_is_one(ws_path: Path) -> None:
    """The check above can fail: a command that does need a stage loads its libraries."""
    (seen,) = run_probe([["cot", "--mode", "template"]])
    assert seen["code"] == 0 and "openai" in seen["heavy"]


def test_workspace_before_or_after_the_subcommand(ws_path: Path, tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.delenv("AESDATA_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    for args in (["-w", str(ws_path), "status", "--json"], ["status", "-w", str(ws_path), "--json"],
                 ["--workspace", str(ws_path), "annotate", "status", "--json"]):
        result = cli.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert json.loads(cli.invoke(app, ["-w", str(ws_path), "status", "--json"]).stdout)["sources"] == 0
    # After the subcommand wins over before it; neither falls back to the current folder.
    result = cli.invoke(app, ["-w", str(ws_path), "status", "-w", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "nowhere" in result.stderr
    result = cli.invoke(app, ["status"])
    assert result.exit_code == 1 and "the current folder" in result.stderr

"""Start-up: the CLI parses before it imports any heavy library, typer builds only the command that runs
(the lazy group behaving as the whole tree would), and `-w` works on either side.

Which modules a command loads is checked in a fresh interpreter (this test process has imported
everything already); time is measured in `make bench`/the README, never asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from aesdata.cli._lazy import eager
from aesdata.cli.main import RootGroup, app

#: Libraries no help page and no `status` may load (each costs 10 ms to seconds to import).
HEAVY = ("torch", "diffusers", "transformers", "openai", "label_studio_sdk", "datasets", "huggingface_hub",
         "pyarrow", "pandas", "numpy", "scipy", "imagehash", "httpx", "aiohttp", "PIL")

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


def test_status_imports_no_other_command(ws_path: Path) -> None:
    """typer builds (parameters, type adapters) only the command that runs: the other CLI modules stay unread."""
    others = {target.partition(":")[0] for target in RootGroup.lazy_subcommands.values()} - {"aesdata.cli.workspace"}
    (seen,) = run_probe([["-w", str(ws_path), "status"]], heavy=tuple(sorted(others)))
    assert seen == {"args": ["-w", str(ws_path), "status"], "code": 0, "heavy": []}


def test_the_help_page_builds_no_command_and_running_one_builds_only_it(capsys: pytest.CaptureFixture) -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, RootGroup)
    with group.make_context("aesdata", ["status"]) as ctx:
        group.get_help(ctx)  # typer's rich pages print themselves
        lazy_page = capsys.readouterr().out
        assert group.lazy.built == [] and "Regenerate the JSON Schemas from the pydantic models." in lazy_page
        assert group.resolve_command(ctx, ["status"])[1] is group.get_command(ctx, "status")
        assert group.lazy.built == ["status"]
        for name in group.list_commands(ctx):
            group.get_command(ctx, name)
        group.get_help(ctx)
        assert capsys.readouterr().out == lazy_page  # listed from summaries == listed from the built commands


@pytest.mark.parametrize("args", [["--help"], [], ["--version"], ["stat"], ["nope", "--help"], ["status", "--help"],
                                  ["annotate", "--help"], ["annotate"], ["eval", "--help"], ["assets", "nope"],
                                  ["cot", "--mode", "bogus"], ["cot", "--limit", "0"], ["init"], ["-w", "."],
                                  ["annotate", "statu"], ["--help", "status"]])
def test_the_lazy_group_behaves_as_the_whole_tree_typer_builds(args: list[str], cli) -> None:
    """Same pages, order, errors, suggestions and exit codes as the eagerly registered app."""
    lazy, whole = cli.invoke(app, args, terminal_width=100), cli.invoke(eager(app), args, terminal_width=100)
    assert (lazy.exit_code, lazy.stdout, lazy.stderr) == (whole.exit_code, whole.stdout, whole.stderr)
    assert lazy.exit_code in (0, 2) and (lazy.stdout or lazy.stderr)


_PLUGIN_PROBE = """
import importlib.metadata, os, sys
calls, scan = [], importlib.metadata.entry_points
importlib.metadata.entry_points = lambda **kw: calls.append(kw.get("group")) or scan(**kw)
import aesdata.config
after_config, leaked = list(calls), "PYDANTIC_DISABLE_PLUGINS" in os.environ
import aesdata.schema
print(after_config, leaked, calls)
"""


def test_the_settings_are_built_without_pydantic_plugin_discovery() -> None:
    """Discovery reads the entry points of every installed distribution (~25 ms of `status`): not for the
    settings; the models built after them (the data contract) still look for plugins."""
    done = subprocess.run([sys.executable, "-c", _PLUGIN_PROBE], capture_output=True, text=True, timeout=120,
                          check=True)
    assert done.stdout.strip() == "[] False ['pydantic']"

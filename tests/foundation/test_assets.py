"""Per-workspace assets: copied for editing, looked up workspace first, hashes follow the files used."""

from __future__ import annotations

import json
from pathlib import Path

from aesdata import assets
from aesdata.annotate.project import label_config
from aesdata.cli.main import app
from aesdata.cot import prompts
from aesdata.generate.presets import available, load_preset
from aesdata.generate.stage import settle_preset
from aesdata.workspace import Workspace
from tests.factories import make_samples


def test_init_assets_copies_the_defaults_and_keeps_edits(tmp_path: Path, cli) -> None:
    ws = tmp_path / "ws"
    assert cli.invoke(app, ["init", str(ws), "--assets"]).exit_code == 0
    own = ws / "assets"
    shipped = sorted(n for n, _ in assets._shipped_files())
    assert {"label_studio_config.xml", "annotation/guidelines.md", "annotation/prompts/system.md",
            "generation/sd15-inpaint.toml", "generation/prompts/scenes.txt"} <= set(shipped)
    assert sorted(p.relative_to(own).as_posix() for p in own.rglob("*") if p.is_file()) == shipped
    assert not (own / "schemas").exists()  # the contract is not a per-dataset setting
    (own / "annotation" / "guidelines.md").write_text("our own guidelines\n")
    result = cli.invoke(app, ["-w", str(ws), "assets", "init", "--json"])
    assert json.loads(result.stdout) == {"copied": 0, "kept": len(shipped), "folder": str(own)}
    assert (own / "annotation" / "guidelines.md").read_text() == "our own guidelines\n"


def test_diff_shows_edited_and_added_files(ws_path: Path, cli) -> None:
    assert cli.invoke(app, ["assets", "init"]).exit_code == 0
    unchanged = json.loads(cli.invoke(app, ["assets", "diff", "--json"]).stdout)["files"]
    assert unchanged and {f["status"] for f in unchanged} == {"unchanged"}
    system = ws_path / "assets" / "annotation" / "prompts" / "system.md"
    system.write_text(system.read_text() + "Answer in French.\n")
    (ws_path / "assets" / "generation" / "mine.toml").write_text('backend = "synthetic"\nsize = 64\n')
    files = {f["name"]: f for f in json.loads(cli.invoke(app, ["assets", "diff", "--json"]).stdout)["files"]}
    assert files["annotation/prompts/system.md"]["status"] == "modified"
    assert "+Answer in French." in files["annotation/prompts/system.md"]["diff"]
    assert files["generation/mine.toml"]["status"] == "added"
    human = cli.invoke(app, ["assets", "diff"]).stdout
    assert "+Answer in French." in human and "generation/mine.toml" in human and "added" in human


def test_a_workspace_preset_and_prompt_bank_are_used_and_signed(ws: Workspace) -> None:
    own = ws.root / "assets" / "generation"
    (own / "prompts").mkdir(parents=True)
    (own / "mine.toml").write_text('backend = "synthetic"\nsize = 64\nprompts = "prompts/scenes.txt"\n')
    assert "mine" in available(ws.root) and "mine" not in available()
    shipped = settle_preset(ws, preset="mine")
    assert shipped.backend == "synthetic" and shipped.size == 64
    before = shipped.signature(0)
    (own / "prompts" / "scenes.txt").write_text("a kitchen counter\n")
    mine = settle_preset(ws, preset="mine")
    assert mine.prompt_bank() == ["a kitchen counter"]
    assert mine.signature(0) != before  # the signature follows the bank actually read
    assert load_preset("synthetic", ws.root).prompt_bank() == ["a kitchen counter"]  # the override is per file
    assert load_preset("synthetic").prompt_bank() != ["a kitchen counter"]


def test_cot_prompts_and_their_hash_follow_the_workspace_copy(ws: Workspace, tmp_path: Path, cli) -> None:
    make_samples(ws, 2)
    assert cli.invoke(app, ["cot", "--mode", "template"]).exit_code == 0
    shipped_hash = {row[0] for row in ws.db.execute("SELECT prompt_hash FROM rationales")}
    assert shipped_hash == {prompts.mode_hash("template")}
    assert cli.invoke(app, ["assets", "init"]).exit_code == 0
    bank = ws.root / "assets" / "annotation" / "prompts" / "template.toml"
    bank.write_text(bank.read_text().replace('"I compare each', '"EDITED: I compare each')
                    .replace('"Checking every', '"EDITED: checking every'))
    result = cli.invoke(app, ["cot", "--mode", "template", "--redo", "stale", "--json"])
    assert result.exit_code == 0, result.output
    rows = ws.db.execute("SELECT prompt_hash, record FROM rationales").fetchall()
    edited = {row[0] for row in rows}
    assert len(rows) == 2 and edited != shipped_hash and len(edited) == 1
    assert all(json.loads(row[1])["think"].startswith("EDITED: ") for row in rows)
    with assets.using(ws.root):
        assert edited == {prompts.mode_hash("template")}
    assert prompts.mode_hash("template") in shipped_hash  # outside the run: the shipped files again


def test_label_config_of_a_workspace(ws: Workspace) -> None:
    shipped = label_config(ws.root)
    assert shipped == label_config() and assets.read_asset("label_studio_config.xml").origin == "shipped"
    own = ws.root / "assets" / "label_studio_config.xml"
    own.parent.mkdir()
    own.write_text("<!-- ours -->\n" + shipped)
    found = assets.read_asset("label_studio_config.xml", ws.root)
    assert found.origin == "workspace" and found.path == own and "<!-- ours -->" in label_config(ws.root)
    assert found.sha256 != assets.read_asset("label_studio_config.xml").sha256

"""Backends come from the ``aesdata.backends`` entry points: a separate distribution adds one.

Nothing is installed: the test writes a plugin module and its ``*.dist-info`` folder (METADATA and
entry_points.txt, what pip would write) into a temporary folder and puts that folder on the child
process's ``PYTHONPATH``, where ``importlib.metadata`` finds it as it would any installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from aesdata import store
from aesdata.generate.backend import BUILTIN, GROUP, available
from aesdata.workspace import Workspace
from tests.generate.conftest import add_sources

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
"""A third-party backend: a flat backdrop whose colour comes from the seed, the product pasted on it."""
from PIL import Image

from aesdata.generate.backend import Rendered
from aesdata.generate.layout import layout_of, place, product_layer


class FlatBackend:
    def __init__(self, preset):
        self.preset = preset

    def identity(self):
        return dict(backend="flat-colour", model_id="flatplug", revision="0.1", pipeline_class="flatplug.FlatBackend",
                    size=self.preset.size)

    def render(self, jobs):
        size, out = self.preset.size, []
        for job in jobs:
            where = place(job.product, job.layout, size)
            colour = (job.seed % 251, job.seed // 251 % 241, job.seed // 60491 % 239, 255)
            backdrop = Image.new("RGBA", (size, size), colour)
            img = Image.alpha_composite(backdrop, product_layer(job.product, where, size))
            out.append(Rendered(image=img.convert("RGB"), layout=layout_of(where, size), prompt=job.prompt))
        return out


def load(preset, ctx):
    return FlatBackend(preset)
'''


def fake_distribution(site: Path, name: str, entry_points: dict[str, str], module: str | None = None) -> Path:
    """Write ``name-0.1.dist-info`` (and the module ``name``, when given) into ``site``."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    if module is not None:
        (site / f"{name}.py").write_text(module)
    return site


def child(site: Path, *args: str, ws_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    if ws_path is not None:
        env["AESDATA_WORKSPACE"] = str(ws_path)
    return subprocess.run([sys.executable, *args], env=env, text=True, capture_output=True, timeout=300)


def test_a_plugin_distribution_adds_a_backend_that_generates(ws_path: Path, tmp_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        add_sources(ws, tmp_path / "photos", 2)
    site = fake_distribution(tmp_path / "site", "flatplug", {"flat-colour": "flatplug:load"}, PLUGIN)
    cli = ["-c", "from aesdata.cli.main import main; main()"]
    done = child(site, *cli, "generate", "--backend", "flat-colour", "--size", "64", "--json", ws_path=ws_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["samples"] == 2
    with Workspace.open(ws_path) as ws:
        samples = list(store.iter_samples(ws.db))
        assert {s.backend for s in samples} == {"flat-colour"}
        cands = store.get_candidates(ws.db, samples[0].id)
        assert [c.provenance.model_id for c in cands] == ["flatplug"] * 4
        assert ws.blobs.open(cands[0].sha256).size == (64, 64)
    # the same process without the plugin on its path knows no such backend, and says which it knows
    missing = child(tmp_path, *cli, "generate", "--backend", "flat-colour", ws_path=ws_path)
    assert missing.returncode == 1
    assert "--backend flat-colour: not a backend (registered: diffusers, openai-images, synthetic)" in missing.stderr


def test_a_clash_or_a_broken_plugin_is_one_clear_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "squatter", {"synthetic": "squatter:load"}, "def load(preset, ctx): ...\n")
    fake_distribution(site, "broken", {"broken": "broken:load"}, "raise ImportError('needs libfoo')\n")
    fake_distribution(site, "twin_a", {"twin": "twin_a:load"})
    fake_distribution(site, "twin_b", {"twin": "twin_b:load"})
    probe = """
import json
from aesdata.errors import AesdataError
from aesdata.generate.backend import available, factory
out = {"available": sorted(available())}
for name in ("synthetic", "broken", "twin"):
    try:
        factory(name)
        out[name] = "loaded"
    except AesdataError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""
    done = child(site, "-c", probe)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["available"] == ["broken", "diffusers", "openai-images", "synthetic", "twin"]
    assert out["synthetic"] == "backend synthetic: also registered by squatter (squatter:load)"
    assert out["broken"] == "backend broken: cannot load broken:load: ImportError: needs libfoo"
    assert out["twin"] == "backend twin: registered by several packages (twin_a: twin_a:load, twin_b: twin_b:load)"


def test_builtin_backends_are_registered_as_entry_points() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    assert declared == BUILTIN
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}
    assert {k: installed.get(k) for k in BUILTIN} == BUILTIN  # an install that predates them: reinstall
    assert set(available()) >= set(BUILTIN)

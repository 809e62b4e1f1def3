"""`aesdata annotate install`: Label Studio's own virtualenv, made where a pip-installed aesdata finds it.

The real path runs for real (``python -m venv``, pip, the version check, the stamp), offline: pip installs
from a local folder holding a wheel named ``label-studio`` built here, a stand-in for the 200 MB of the
real one (whose install `make labelstudio` does with the same code). Serving from the real one is tested
in tests/annotate and in test_cli_child_env.py.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from aesdata.annotate import server
from aesdata.childenv import NETWORK, PIP, child_env
from aesdata.cli.main import app
from aesdata.errors import AesdataError

VERSION = server.LABEL_STUDIO_VERSION


def stand_in_wheel(folder: Path, version: str = VERSION) -> Path:
    """A wheel of a distribution named label-studio whose console script says who it is."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"label_studio-{version}.dist-info"
    files = {
        "aesdata_label_studio_stand_in.py": "def main():\n    print('label-studio stand-in')\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: label-studio\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: aesdata-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nlabel-studio = aesdata_label_studio_stand_in:main\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    wheel = folder / f"label_studio-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def test_the_commands_it_runs(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    assert server.install_commands(venv, python="python3.11", pip_args=["--no-index"]) == [
        ["python3.11", "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-index", f"label-studio=={VERSION}"],
    ]
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    assert [c[1:3] for c in server.install_commands(venv, python="python3.11")] == [["-m", "pip"]]


def test_pip_and_servers_get_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "OPENAI_API_KEY": "sk-1", "HF_TOKEN": "hf_1",
               "PIP_INDEX_URL": "https://mirror/simple", "HTTPS_PROXY": "http://proxy:3128", "PORT": "1"}
    assert child_env(NETWORK, PIP, environ=environ) == {
        "PATH": "/bin", "HOME": "/h", "LC_ALL": "C", "PIP_INDEX_URL": "https://mirror/simple",
        "HTTPS_PROXY": "http://proxy:3128"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-1")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "client-token")
    monkeypatch.setenv("LABEL_STUDIO_DEBUG", "1")
    env = server.LabelStudioServer(data_dir=Path("/d"), files_root=Path("/f"), token="t", password="p").environment()
    assert "OPENAI_API_KEY" not in env and "LABEL_STUDIO_API_KEY" not in env
    assert env["LABEL_STUDIO_DEBUG"] == "1" and env["LABEL_STUDIO_USER_TOKEN"] == "t"


@pytest.mark.slow
def test_install_into_the_data_folder_then_serve_finds_it(tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(server.VENV_ENV, raising=False)
    monkeypatch.setattr(server, "DEFAULT_VENV", tmp_path / "no-source-tree")
    wheels = tmp_path / "wheels"
    stand_in_wheel(wheels)
    venv = tmp_path / "data" / "aesdata" / "label-studio-venv"

    result = cli.invoke(app, ["annotate", "install", "--find-links", str(wheels), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"venv": str(venv), "version": VERSION, "done": "installed"}
    assert (venv / server.STAMP).read_text() == f"{VERSION}\n"
    assert server.find_executable() == venv / "bin" / "label-studio"
    assert server.find_executable(tmp_path / "elsewhere") == venv / "bin" / "label-studio"  # missing: next one

    # Finished: a no-op that needs neither pip nor the wheels.
    (wheels / f"label_studio-{VERSION}-py3-none-any.whl").unlink()
    result = cli.invoke(app, ["annotate", "install", "--json"])
    assert json.loads(result.stdout)["done"] == "already installed"

    # Interrupted after pip (no stamp): completed, pip finds the package already there.
    (venv / server.STAMP).unlink()
    result = cli.invoke(app, ["annotate", "install", "--find-links", str(wheels), "--json"])
    assert json.loads(result.stdout)["done"] == "installed" and server.installed_version(venv) == VERSION

    # Another version: installed over it; a failed install leaves no stamp behind, so it is never taken as done.
    offline = ["--no-index", "--find-links", str(wheels)]
    with pytest.raises(AesdataError, match="installing label-studio==9.9.9 failed"):
        server.install(version="9.9.9", pip_args=offline)
    assert server.installed_version(venv) is None
    stand_in_wheel(wheels, "9.9.9")
    assert server.install(version="9.9.9", pip_args=offline)["done"] == "installed"
    assert server.installed_version(venv) == "9.9.9"


def test_serve_looks_option_then_data_folder_then_source_tree(tmp_path: Path, monkeypatch) -> None:
    def make(venv: Path, stamp: bool = True) -> Path:
        exe = venv / "bin" / "label-studio"
        exe.parent.mkdir(parents=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
        if stamp:
            (venv / server.STAMP).write_text(f"{VERSION}\n")
        return exe

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv(server.VENV_ENV, raising=False)
    monkeypatch.setattr(server, "DEFAULT_VENV", tmp_path / "tree")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tree = make(tmp_path / "tree")
    assert server.find_executable() == tree
    data = make(server.data_venv(), stamp=False)
    assert server.find_executable() == tree  # an interrupted install is passed over
    (server.data_venv() / server.STAMP).write_text(f"{VERSION}\n")
    assert server.find_executable() == data
    chosen = make(tmp_path / "chosen", stamp=False)  # named explicitly: used as it is
    monkeypatch.setenv(server.VENV_ENV, str(tmp_path / "chosen"))
    assert server.find_executable() == chosen
    assert server.find_executable(tmp_path / "tree") == tree

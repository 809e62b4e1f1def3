"""Starting Label Studio: environment, missing virtualenv, busy port (no server needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aesdata.annotate import server as server_mod
from aesdata.annotate.server import LabelStudioServer, credentials_from_env
from aesdata.cli.main import app
from aesdata.errors import AesdataError


def make(tmp_path: Path, port: int = 8080) -> LabelStudioServer:
    return LabelStudioServer(data_dir=tmp_path / "d", files_root=tmp_path, token="t", password="p", port=port)


def test_environment_is_prefixed_quiet_and_drops_bare_host_and_port(tmp_path, monkeypatch):
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1")
    env = make(tmp_path).environment()
    assert "HOST" not in env and "PORT" not in env
    assert env["SENTRY_DSN"] == env["FRONTEND_SENTRY_DSN"] == ""
    assert env["COLLECT_ANALYTICS"] == env["LATEST_VERSION_CHECK"] == "false"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == str(tmp_path)


def test_missing_virtualenv_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv(server_mod.VENV_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr(server_mod, "DEFAULT_VENV", tmp_path / "nowhere-either")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AesdataError) as err:
        server_mod.find_executable()
    assert "make labelstudio" in (err.value.hint or "")


def test_a_busy_port_is_refused_instead_of_moving_silently(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(AesdataError, match="busy"):
            make(tmp_path, sock.getsockname()[1]).start()


def test_serve_needs_token_and_password_from_the_environment(ws_path, cli, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_PASSWORD", raising=False)
    with pytest.raises(AesdataError, match="LABEL_STUDIO_API_KEY and LABEL_STUDIO_PASSWORD"):
        credentials_from_env()
    result = cli.invoke(app, ["annotate", "serve", "--port", "1"])
    assert result.exit_code == 1 and "LABEL_STUDIO_API_KEY" in result.stderr


def test_pull_before_any_push_is_one_clear_error(ws_path, cli):
    result = cli.invoke(app, ["annotate", "pull"])
    assert result.exit_code == 1 and "annotate push" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "https://labelstudio.example.org"], "not on this machine"),
        (["--predictions", "magic"], "expected synthetic or none"),
        (["--project-title", "ab"], "at least 3 characters"),
        (["--files-root", "/nonexistent-root"], "not a sub-folder of the served files root"),
    ],
)
def test_push_rejects_bad_options_before_connecting(ws_path, cli, monkeypatch, args, message):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "unused")
    result = cli.invoke(app, ["annotate", "push", *args])
    assert result.exit_code == 1 and message in result.stderr

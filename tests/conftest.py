"""Fixtures every test folder can use: an isolated workspace, and the CLI runner.

``AESDATA_WORKSPACE`` moves the whole workspace, so each test gets its own (llm's LLM_USER_PATH habit).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata.workspace import Workspace


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C tests send SIGINT to the commands they start. A suite started in the background by a
    non-interactive shell (``make test &``) inherits SIGINT ignored, and so would every command it starts,
    which Python then leaves without its KeyboardInterrupt: take the default back for them."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def ws_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ws"
    Workspace.init(path).close()
    monkeypatch.setenv("AESDATA_WORKSPACE", str(path))
    return path


@pytest.fixture
def ws(ws_path: Path) -> Iterator[Workspace]:
    with Workspace.open(ws_path) as workspace:
        yield workspace


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()

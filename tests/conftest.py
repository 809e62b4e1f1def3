"""Fixtures every test folder can use: an isolated workspace, and the CLI runner.

``AESDATA_WORKSPACE`` moves the whole workspace, so each test gets its own (llm's LLM_USER_PATH habit).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata.workspace import Workspace


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

"""Fixtures for the cot tests: a workspace tuned for fast retries, and the key in the environment."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aesdata.workspace import DB_FILE, SETTINGS_FILE

API_KEY = "sk-cot-test"
MAX_SIDE = 64


def tune(ws_path: Path, **values: object) -> None:
    """Set ``[cot]`` values in aesdata.toml (short timeouts and backoffs, prices) the way a user would."""
    path = ws_path / SETTINGS_FILE
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=")[0].strip()
        if key in values:
            continue
        lines.append(line)
        if line.strip() == "[cot]":
            lines += [f"{k} = {v!r}".replace("'", '"') for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")


def query(ws_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows from the workspace's manifest, read from a connection of the test's own."""
    db = sqlite3.connect(ws_path / DB_FILE, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


@pytest.fixture
def cot_ws_path(ws_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AESDATA_COT_KEY", API_KEY)
    tune(
        ws_path,
        api_key_env="AESDATA_COT_KEY",
        timeout_s=1.0,
        max_retries=4,
        backoff_s=0.01,
        max_side=MAX_SIDE,
        model="scripted",
        attempts=3,
    )
    with (ws_path / SETTINGS_FILE).open("a") as fh:
        fh.write('\n[cot.prices]\n"*" = { input = 2.0, output = 8.0 }\n')
    return ws_path

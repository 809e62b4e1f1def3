"""A published version made by the real stages: factory samples, template rationales, ``aesdata publish``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.workspace import Workspace
from tests.factories import make_samples


@pytest.fixture
def published(ws: Workspace, cli: CliRunner, tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """Twelve labelled samples with template rationales, published as 1.0.0 (about half in test).

    Returns the published folder and the sample ids per split, in the order publish wrote them.
    """
    make_samples(ws, 12, seed=3)
    out = tmp_path / "published"
    for args in (["cot", "--mode", "template"],
                 ["publish", "--version", "1.0.0", "--out", str(out), "--test-fraction", "0.5"]):
        res = cli.invoke(app, args)
        assert res.exit_code == 0, res.output
    ids: dict[str, list[str]] = {"train": [], "test": []}
    rows = ws.db.execute("SELECT sample_id, split FROM version_rows WHERE version = '1.0.0' ORDER BY rowid")
    for row in rows:
        ids[row["split"]].append(row["sample_id"])
    assert ids["train"] and len(ids["test"]) >= 3
    return out, ids

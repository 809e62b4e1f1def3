"""``aesdata cot --batch``: the real openai client against the project's server speaking files and batches."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.workspace import Workspace
from tests.cot.conftest import tune
from tests.cot.test_stage import rationales, serve
from tests.factories import make_samples
from tests.openai_server import BatchPlan

FAST = {"batch_poll_s": 0.02}


def cot_batch(cli: CliRunner, base_url: str, *more: str) -> dict:
    result = cli.invoke(app, ["cot", "--mode", "answer-driven", "--batch", "--base-url", base_url, "--json", *more])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_answer_driven_batch_validates_repairs_and_retries_in_follow_up_batches(
    cot_ws_path: Path, cli: CliRunner
) -> None:
    tune(cot_ws_path, **FAST)
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 8)
        scripts = {
            ids[1]: ["wrong", "correct"],  # repaired in batch 2
            ids[2]: ["leak", "leak"],  # failed after its repair
            ids[3]: ["429", "correct"],  # retried in batch 2
            ids[4]: ["400"],  # refused: stored as failed
            ids[5]: ["malformed", "fenced"],  # repaired
        }
        server, _ = serve(ws, scripts, batch_plan=lambda n: BatchPlan(malformed=frozenset({6}) if n == 0 else frozenset()))
    with server:
        summary = cot_batch(cli, server.base_url, "--min-chars", "100")
        again = cot_batch(cli, server.base_url)
    print(summary)
    assert summary["valid"] == 6 and summary["failed"] == 2, summary
    assert again["selected"] == 0 and len(server.batch_api.created) == 2
    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "answer-driven")
        assert {sid for sid, r in got.items() if r.status == "failed"} == {ids[2], ids[4]}

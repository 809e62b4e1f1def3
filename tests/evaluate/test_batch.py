"""``aesdata eval --batch`` and ``aesdata mine-hard --batch``: the real openai client against the project's
server speaking ``/v1/files`` and ``/v1/batches``, through a failed batch, an expired one, a partial error
file and a malformed line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.workspace import Workspace
from tests.evaluate.test_eval import Policy as EvalPolicy
from tests.evaluate.test_eval import expected, split_rows
from tests.evaluate.test_mining import K, Policy, setup  # noqa: F401 (setup is a fixture)
from tests.openai_server import BatchPlan, OpenAIServer, request_images


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def settings(ws: Workspace, **values: object) -> None:
    """Fast polls (and what else the test needs) in the workspace's aesdata.toml, with prices."""
    path = ws.root / "aesdata.toml"
    text = path.read_text()
    for key, value in {"batch_poll_s": 0.02, "backoff_s": 0.01, "max_side": 64, **values}.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    path.write_text(text + '\n[cot.prices]\n"*" = { input = 2.0, output = 8.0 }\n')


def test_mine_hard_batch_through_expiry_errors_and_a_malformed_line(
    setup: tuple[list[str], str], ws: Workspace, cli: CliRunner  # noqa: F811
) -> None:
    ids, test_id = setup
    settings(ws, max_retries=2)
    policy = Policy(ws, failing={ids[3]})  # every request of ids[3] is a 500: in the error file each time
    plans = {0: BatchPlan(status="expired", answered=12, malformed=lambda n, line: n == 5)}
    server = OpenAIServer(policy, api_key="sk-test", batch_plan=lambda n: plans.get(n, BatchPlan()))
    with server:
        res = cli.invoke(app, ["mine-hard", "--model", "m", "--base-url", server.base_url, "--rollouts", str(K),
                               "--batch", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["mined_now"] == 6 and summary["failed"] == 1 and summary["skipped_test_split"] == 1
    assert re.search(r"batch batch_0 (output|error) file line \d+: not JSON", res.stderr)
    statuses = [r[0] for r in ws.db.execute("SELECT status FROM llm_batches ORDER BY id")]
    assert statuses == ["expired", "completed", "completed"]

    def sample(line: dict) -> str:
        return policy.by_url[request_images(line["body"])[0]][1]

    # batch 0 expired after 12 lines, one of them cut in half; everything else went again in batch 1 (the
    # expired lines, the cut one, ids[3]'s 500s) and only that; ids[3]'s failed in batch 2 too and then,
    # its retries spent, the sample failed
    lines = server.batch_api.lines
    first, second, third = (lines[b] for b in server.batch_api.created)
    assert len(first) == 7 * K
    answered = {line["custom_id"] for n, line in enumerate(first[:12]) if n != 5 and sample(line) != ids[3]}
    assert {line["custom_id"] for line in second} == {line["custom_id"] for line in first} - answered
    assert len(third) == K and {sample(line) for line in third} == {ids[3]}
    cut = sample(first[5])
    rows = {r["sample_id"]: r for r in ws.db.execute("SELECT * FROM difficulty WHERE model = 'm'")}
    assert set(rows) == set(ids) - {test_id, ids[3]}
    for i, sid in enumerate(ids):
        if sid not in rows:
            continue
        row = rows[sid]
        assert row["rollouts"] == K
        assert row["cost_usd"] == pytest.approx((row["prompt_tokens"] * 1.0 + row["completion_tokens"] * 4.0) / 1e6)
        if sid != cut:  # the cut reply was asked again, and the policy counts what it was asked
            assert row["passes"] == min(i % (K + 1), K)
    assert ws.db.execute("SELECT COUNT(*) FROM llm_batch_requests").fetchone()[0] == 0  # all items finished
    assert ws.db.execute("SELECT COUNT(*) FROM llm_batches WHERE collected_at IS NULL").fetchone()[0] == 0


def test_eval_batch_after_a_failed_batch_matches_the_policy(
    published: tuple[Path, dict], ws: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    settings(ws)
    rows = split_rows(ws, "test")
    policy = EvalPolicy(rows)  # row 2's first request is a 500: in batch 1's error file, sent again
    server = OpenAIServer(policy, api_key="sk-test",
                          batch_plan=lambda n: BatchPlan(status="failed", message="quota") if n == 0 else BatchPlan())
    out = tmp_path / "report.json"
    args = ["eval", "--model", "m", "--version", "1.0.0", "--rollouts", "2", "--out", str(out), "--batch", "--json"]
    with server:
        failed = cli.invoke(app, [*args, "--base-url", server.base_url])
        assert failed.exit_code == 1 and "batch batch_0 failed: quota" in failed.stderr
        assert not out.exists()
        res = cli.invoke(app, [*args, "--base-url", server.base_url])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    want = expected(rows, policy, 2)
    assert report["metrics"]["exact"] == pytest.approx(want["exact"])
    assert report["metrics"]["proportional"] == pytest.approx(want["proportional"])
    assert report["metrics"]["unparseable"] == want["unparseable"]
    assert report["requests"]["batch_submitted"] == 2 and report["requests"]["batch_to_retry"] == 1
    assert len(server.batch_api.created) == 3
    usage = report["usage"]  # at batch prices: half of cot.prices
    assert usage["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 4.0) / 1e6)


def test_batch_needs_a_workspace(published: tuple[Path, dict], cli: CliRunner, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = published
    monkeypatch.delenv("AESDATA_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    res = cli.invoke(app, ["eval", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--dataset", str(out),
                           "--batch"])
    assert res.exit_code == 1 and "--batch needs a workspace" in res.output

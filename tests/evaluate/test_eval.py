"""``aesdata eval`` and ``eval compare`` against the project's real HTTP OpenAI-compatible server.

The server replies from a known policy keyed on the source image it receives; the test computes the
expected figures itself, from the policy and the labels, without the scorer.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aesdata.cli.main import app
from aesdata.evaluate import dataset, run
from aesdata.evaluate.asking import Endpoint
from aesdata.llm.images import data_url, encode_jpeg
from aesdata.schema import DIMENSIONS, SLOTS
from aesdata.workspace import Workspace
from tests.openai_server import OpenAIServer, Reply, request_images

MAX_SIDE = 64


def source_url(png: bytes) -> str:
    """What the client sends for a source image: the published bytes as a JPEG data URL."""
    with Image.open(io.BytesIO(png)) as img:
        return data_url(encode_jpeg(img, max_side=MAX_SIDE))


def reply_for(kind: int, answer: frozenset[str]) -> tuple[str, frozenset[str] | None]:
    """The policy: (reply text, the set it means or None when unparseable), by kind 0-4."""
    letters = [s for s in SLOTS if s in answer]
    if kind == 0:  # right, in the requested format
        return f"<think>I compared them.</think><answer>{','.join(letters) or 'none'}</answer>", answer
    if kind == 1:  # a correct subset in prose (partial credit when the answer has 2+ slots)
        part = frozenset(letters[:1]) if len(letters) >= 2 else answer
        return f"The answer is {' and '.join(sorted(part)) or 'none'}.", part
    if kind == 2:  # everything picked
        return "A, B, C, D", frozenset(SLOTS)
    if kind == 3:
        return "I cannot tell from these pictures.", None
    return "<answer>none</answer>", frozenset()


class Policy:
    """Sample i of the split gets kind ``(i + rollout) % 5``: rollouts of one sample differ."""

    def __init__(self, rows: list[dataset.Row]) -> None:
        self.by_url = {source_url(r.images[0]): (i, r) for i, r in enumerate(rows)}
        self.seen: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.failed_once = False

    def kinds(self, i: int, k: int) -> list[int]:
        return [(i + j) % 5 for j in range(k)]

    def __call__(self, body: dict, call_index: int) -> Reply | str:
        url = request_images(body)[0]
        i, row = self.by_url[url]
        with self.lock:
            if i == 2 and not self.failed_once:
                self.failed_once = True
                return Reply.fail(500)  # one server error, retried by the client
            j = self.seen[url]
            self.seen[url] += 1
        return reply_for((i + j) % 5, row.answer)[0]


def expected(rows: list[dataset.Row], policy: Policy, k: int) -> dict:
    """Exact, proportional, unparseable and per-dimension caught, computed here from the policy."""
    exact, prop, unparseable, caught, bad = [], [], 0, Counter(), Counter()
    for i, row in enumerate(rows):
        picks = [reply_for(kind, row.answer)[1] for kind in policy.kinds(i, k)]
        unparseable += sum(p is None for p in picks)
        exact.append(sum(p == row.answer for p in picks) / k)
        scores = []
        for p in picks:
            if p is None or (p - row.answer) or (not row.answer and p):
                scores.append(0.0)
            else:
                scores.append(1.0 if not row.answer else len(p) / len(row.answer))
        prop.append(sum(scores) / k)
        for d in DIMENSIONS:
            defective = {s for s in SLOTS if d in row.defects[s]}
            bad[d] += len(defective)
            caught[d] += sum(len(defective - p) for p in picks if p is not None) / k
    return {"exact": sum(exact) / len(rows), "proportional": sum(prop) / len(rows), "unparseable": unparseable,
            "caught": {d: caught[d] / bad[d] if bad[d] else None for d in DIMENSIONS}}


def split_rows(ws: Workspace, split: str) -> list[dataset.Row]:
    ds = dataset.load_split(dataset.resolve(ws, version="1.0.0", dataset=None), split)
    return [r for r in dataset.iter_rows(ds) if isinstance(r, dataset.Row)]


@pytest.fixture(autouse=True)
def fast_client(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quick retries and small images, through the workspace settings the commands read."""
    path = ws.root / "aesdata.toml"
    text = path.read_text()
    for key, value in {"backoff_s": 0.01, "max_side": MAX_SIDE, "timeout_s": 5}.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    path.write_text(text)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_eval_figures_match_the_policy(published: tuple[Path, dict], ws_path: Path, cli: CliRunner,
                                       tmp_path: Path) -> None:
    rows = split_rows(Workspace.open(ws_path), "test")
    policy = Policy(rows)
    out = tmp_path / "report.json"
    with OpenAIServer(policy, api_key="sk-test") as server:
        res = cli.invoke(app, ["eval", "--model", "m", "--base-url", server.base_url, "--version", "1.0.0",
                               "--rollouts", "2", "--concurrency", "4", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    want = expected(rows, policy, 2)
    m = report["metrics"]
    assert m["samples"] == len(rows) and m["replies"] == 2 * len(rows)
    assert m["exact"] == pytest.approx(want["exact"])
    assert m["proportional"] == pytest.approx(want["proportional"])
    assert m["unparseable"] == want["unparseable"] > 0
    for d in DIMENSIONS:
        assert m["per_dimension"][d]["caught"] == pytest.approx(want["caught"][d])
    # every sample was asked twice (plus the one retried 500); no label text reached the model
    assert len(server.requests) == 2 * len(rows) + 1
    for r in server.requests:
        assert len(request_images(r.body)) == 5
        assert r.body["temperature"] == 1.0
    assert [s["sample_id"] for s in report["samples"]] == [r.sample_id for r in rows]
    assert all(len(s["predictions"]) == len(s["replies"]) == 2 for s in report["samples"])
    assert report["baseline_random"]["exact"] == pytest.approx(1 / 16)
    assert report["temperature"] == 1.0 and report["usage"]["calls"] == 2 * len(rows)
    assert report["requests"]["server_errors"] == report["requests"]["retries"] == 1
    summary = json.loads(res.stdout)
    assert summary["report"] == str(out) and summary["failed"] == 0
    with Workspace.open(ws_path) as ws:
        (status, counts) = ws.db.execute("SELECT status, summary FROM runs WHERE stage = 'eval'").fetchone()
    assert status == "done" and json.loads(counts) == {"done": len(rows), "failed": 0, "resumed": 0}


def test_a_stopped_eval_resumes_from_its_journal(published: tuple[Path, dict], ws_path: Path, cli: CliRunner,
                                                 tmp_path: Path) -> None:
    rows = split_rows(Workspace.open(ws_path), "test")
    right = {source_url(r.images[0]): r for r in rows}

    def oracle(body: dict, call_index: int) -> str:
        return reply_for(0, right[request_images(body)[0]].answer)[0]

    out = tmp_path / "resumed.json"
    args = ["eval", "--model", "m", "--version", "1.0.0", "--concurrency", "1", "--out", str(out)]
    # the model disappears after three answers (404: every request would fail alike): the run stops,
    # three samples are journalled
    with OpenAIServer(lambda body, i: oracle(body, i) if i < 3 else Reply.fail(404, "model unloaded")) as server:
        res = cli.invoke(app, [*args, "--base-url", server.base_url])
    assert res.exit_code == 1 and "model unloaded" in res.output
    assert not out.exists()
    journal = out.with_name(out.name + ".partial.jsonl")
    assert len(journal.read_text().splitlines()) == 1 + 3

    # a budget of $0.5 at $1 a request: one more sample, then no new request starts
    with (ws_path / "aesdata.toml").open("a") as fh:
        fh.write('\n[cot.prices]\n"m" = { input = 1000.0, output = 0.0 }\n')
    costly = Reply(content="<answer>none</answer>", prompt_tokens=1000, completion_tokens=0)
    with OpenAIServer(lambda body, i: costly) as server:
        res = cli.invoke(app, [*args, "--base-url", server.base_url, "--max-cost", "0.5"])
        assert res.exit_code == 1 and "--max-cost" in res.output and len(server.requests) == 1
    assert len(journal.read_text().splitlines()) == 1 + 4

    with OpenAIServer(oracle) as server:
        res = cli.invoke(app, [*args, "--base-url", server.base_url, "--json"])
        assert res.exit_code == 0, res.output
        assert len(server.requests) == len(rows) - 4  # only the samples not answered before
    report = json.loads(out.read_text())
    assert [s["sample_id"] for s in report["samples"]] == [r.sample_id for r in rows]
    assert report["usage"]["calls"] == len(rows) and report["usage"]["cost_usd"] > 1.0 and not journal.exists()
    costly_id = next(s for s in report["samples"] if s["replies"] == ["<answer>none</answer>"])
    assert report["metrics"]["exact"] == pytest.approx((len(rows) - 1 + (costly_id["answer"] == "none")) / len(rows))


def test_a_refused_sample_fails_alone(published: tuple[Path, dict], ws_path: Path, cli: CliRunner,
                                      tmp_path: Path) -> None:
    rows = split_rows(Workspace.open(ws_path), "test")
    right = {source_url(r.images[0]): r for r in rows}
    refused = rows[-1]

    def policy(body: dict, call_index: int) -> Reply | str:
        row = right[request_images(body)[0]]
        return Reply.fail(400, "image too large") if row is refused else reply_for(0, row.answer)[0]

    out = tmp_path / "refused.json"
    with OpenAIServer(policy) as server:
        res = cli.invoke(app, ["eval", "--model", "m", "--version", "1.0.0", "--concurrency", "1", "--out", str(out),
                               "--base-url", server.base_url])
    assert res.exit_code == 0, res.output
    assert f"sample {refused.sample_id}" in res.stderr and "image too large" in res.stderr
    report = json.loads(out.read_text())
    assert [f["sample_id"] for f in report["failed"]] == [refused.sample_id]
    assert report["metrics"]["samples"] == len(rows) - 1 and report["metrics"]["exact"] == 1.0


def test_random_baseline_and_compare(published: tuple[Path, dict], ws_path: Path, cli: CliRunner,
                                     tmp_path: Path) -> None:
    out_dir, _ = published
    ws = Workspace.open(ws_path)
    rows = split_rows(ws, "test")
    rand = tmp_path / "random.json"
    res = cli.invoke(app, ["eval", "--baseline", "random", "--dataset", str(out_dir), "--out", str(rand)])
    assert res.exit_code == 0, res.output
    assert "exact" in res.output and "random" in res.output
    base = json.loads(rand.read_text())
    want_prop = sum(1 / 16 if not r.answer else 2 ** (len(r.answer) - 1) / 16 for r in rows) / len(rows)
    assert base["metrics"]["exact"] == pytest.approx(1 / 16)
    assert base["metrics"]["proportional"] == pytest.approx(want_prop)

    # an always-right model, evaluated through the library function
    right = {source_url(r.images[0]): r for r in rows}

    def oracle(body: dict, call_index: int) -> str:
        return reply_for(0, right[request_images(body)[0]].answer)[0]

    with OpenAIServer(oracle) as server:
        # no workspace: images are encoded from the published bytes, settings are the caller's
        report = run.evaluate(None, dataset.DatasetRef(path=str(out_dir)), Endpoint(model="oracle",
                              base_url=server.base_url), cot=ws.settings.cot)
    assert report["metrics"]["exact"] == 1.0 and report["metrics"]["unparseable"] == 0
    best = tmp_path / "oracle.json"
    run.write_report(report, best)

    res = cli.invoke(app, ["eval", "compare", str(rand), str(best), "--json"])
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert cmp["common"] == len(rows) and cmp["only_in_a"] == cmp["only_in_b"] == 0
    assert cmp["exact_delta"] == pytest.approx(1 - 1 / 16)
    assert cmp["b_better"] == len(rows) and cmp["b_worse"] == 0
    assert cmp["sign_test_p"] == pytest.approx(2 * 0.5 ** len(rows))


def test_bad_inputs_are_one_line_errors(published: tuple[Path, dict], cli: CliRunner, tmp_path: Path) -> None:
    res = cli.invoke(app, ["eval", "--baseline", "random", "--version", "9.9.9"])
    assert res.exit_code == 1 and "version 9.9.9 is not published" in res.output
    res = cli.invoke(app, ["eval", "--baseline", "random", "--version", "1.0.0", "--split", "dev"])
    assert res.exit_code == 1 and "no split 'dev'" in res.output
    junk = tmp_path / "junk.json"
    junk.write_text("{}")
    res = cli.invoke(app, ["eval", "compare", str(junk), str(junk)])
    assert res.exit_code == 1 and "not an aesdata eval report" in res.output


JOURNAL_ADD = "aesdata.evaluate.journal:Journal.add"  # every answered sample journalled is a kill event


def _comparable(report: dict) -> dict:
    """What a resumed run must reproduce: every figure and sample (not the server's port, this run's
    request counters or the time)."""
    return {k: v for k, v in report.items() if k not in ("base_url", "requests", "created_at")}


def test_eval_sigkilled_at_random_points_resumes_to_the_uninterrupted_report(
        published: tuple[Path, dict], ws_path: Path, cli: CliRunner, tmp_path: Path) -> None:
    from tests.integrity import harness

    rows = split_rows(Workspace.open(ws_path), "test")
    kinds = {source_url(r.images[0]): (i % 5, r) for i, r in enumerate(rows)}  # every reply kind, per sample

    def policy(body: dict, call_index: int) -> str:
        kind, row = kinds[request_images(body)[0]]
        return reply_for(kind, row.answer)[0]

    args = ["eval", "--model", "m", "--version", "1.0.0", "--concurrency", "2"]
    base = tmp_path / "base.json"
    with OpenAIServer(policy) as server, harness.counting((JOURNAL_ADD,)) as seen:
        harness.run_cli([*args, "--base-url", server.base_url, "--out", str(base)], ws_path)
    want = _comparable(json.loads(base.read_text()))
    for i, point in enumerate(harness.points(31, seen[0], n=3)):
        out = tmp_path / f"p{i}.json"
        with OpenAIServer(policy, latency=0.05) as server:
            run_args = [*args, "--base-url", server.base_url, "--out", str(out)]
            harness.kill_at(point, run_args, ws_path, hooks=(JOURNAL_ADD,))
            harness.run_cli(run_args, ws_path)
            # asked twice at most: what was in flight at the kill (2 requests, and one answer not yet journalled)
            assert len(server.requests) <= len(rows) + 3, f"{point}: {len(server.requests)} requests"
        got = json.loads(out.read_text())
        assert _comparable(got) == want, f"{point}: the resumed report differs from the uninterrupted one"
        assert not out.with_name(f"{out.name}.partial.jsonl").exists()
    with Workspace.open(ws_path) as ws:
        runs = [r[0] for r in ws.db.execute("SELECT status FROM runs WHERE stage = 'eval' ORDER BY id")]
    assert set(runs) <= {"done", "interrupted"} and runs[-1] == "done" and "interrupted" in runs


def test_a_journal_line_cut_short_costs_only_itself(tmp_path: Path) -> None:
    """A crash or a full disk mid-line: the fragment is cut off on load, so the next sample appended
    is not glued to it (and lost, then paid for again, at the next resume)."""
    from aesdata.evaluate.asking import Rollouts
    from aesdata.evaluate.journal import Journal

    path, key = tmp_path / "r.json.partial.jsonl", {"model": "m"}
    got = Rollouts(texts=("<answer>A</answer>",), predictions=(), prompt_tokens=3, completion_tokens=1, cost_usd=0.1)
    Journal(path, key).load()
    Journal(path, key).add("s1", got)
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"sample_id": "s2", "texts": ["<ans')  # the torn line
    journal = Journal(path, key)
    assert list(journal.load()) == ["s1"]
    journal.add("s3", got)
    assert list(Journal(path, key).load()) == ["s1", "s3"]
    assert path.read_text(encoding="utf-8").count("\n") == 3  # header, s1, s3

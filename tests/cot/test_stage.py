"""The cot stage end to end: the real openai client against the project's HTTP server, through faults."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aesdata import claims, store
from aesdata.cli.main import app
from aesdata.cot import stage
from aesdata.cot.stage import CotOptions, run_cot
from aesdata.llm import ledger
from aesdata.llm import loop as model_loop
from aesdata.schema import Annotation, Rationale
from aesdata.workspace import Workspace
from tests.cot.conftest import API_KEY, MAX_SIDE
from tests.cot.scripted import ScriptedModel
from tests.factories import make_samples
from tests.openai_server import OpenAIServer, Reply, request_text


def rationales(ws: Workspace, mode: str) -> dict[str, Rationale]:
    rows = ws.db.execute("SELECT sample_id, record FROM rationales WHERE mode = ?", (mode,)).fetchall()
    return {r["sample_id"]: Rationale.model_validate_json(r["record"]) for r in rows}


def serve(ws: Workspace, scripts: dict[str, list[str]], **kwargs: object) -> tuple[OpenAIServer, ScriptedModel]:
    model = ScriptedModel.for_workspace(ws, MAX_SIDE, scripts, stall_s=3.0)
    return OpenAIServer(model, api_key=API_KEY, **kwargs), model  # type: ignore[arg-type]


SCRIPTS = {
    0: ["correct"],
    1: ["wrong", "correct"],  # repaired
    2: ["leak", "leak"],  # failed: leakage
    3: ["malformed", "fenced"],  # repaired, then read from prose + fence
    4: ["429", "500", "stall", "correct"],  # transport faults, retried
    5: ["wrong", "wrong"],  # failed: disagrees with the label
    6: ["short", "correct"],
    7: ["malformed", "malformed"],  # failed: unreadable, raw kept
    8: ["truncated", "thinking"],  # cut off at max tokens, repaired; then JSON after a <think> block
}


def test_answer_driven_through_every_fault(cot_ws_path: Path, cli: CliRunner) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 12)
        server, _ = serve(ws, {ids[i]: s for i, s in SCRIPTS.items()})
    with server:
        result = cli.invoke(
            app,
            [
                "cot",
                "--mode",
                "answer-driven",
                "--base-url",
                server.base_url,
                "--json",
                "--concurrency",
                "4",
                "--min-chars",
                "100",
            ],
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        again = cli.invoke(app, ["cot", "--mode", "answer-driven", "--base-url", server.base_url, "--json"])
        calls_after_first_run = server.calls
    assert summary["selected"] == 12 and summary["valid"] == 9 and summary["failed"] == 3, summary
    assert json.loads(again.stdout)["selected"] == 0 and server.calls == calls_after_first_run

    with Workspace.open(cot_ws_path) as ws:
        got = rationales(ws, "answer-driven")
        assert set(got) == set(ids)  # every sample ended valid or failed, one row each
        assert ws.db.execute("SELECT COUNT(*) FROM rationales").fetchone()[0] == 12
        failed = {sid for sid, r in got.items() if r.status == "failed"}
        assert failed == {ids[2], ids[5], ids[7]}
        assert any("given answer" in e for e in got[ids[2]].errors)
        assert any("differs from the screening result" in e for e in got[ids[5]].errors)
        assert got[ids[7]].errors == ["the reply contains no JSON object"] and "Sure!" in (got[ids[7]].raw or "")
        for sid in (ids[1], ids[3], ids[6], ids[8]):  # repaired: two replies went into them
            assert got[sid].status == "valid" and got[sid].attempts == 2
        for r in got.values():
            assert r.model == "scripted" and r.prompt_hash and r.usage.prompt_tokens > 0
            if r.status == "valid":
                assert r.text.startswith("<think>") and r.text.endswith(
                    f"<answer>{','.join(r.answer or []) or 'none'}</answer>"
                )

        # the ledger holds every answered request and sums to the rationales' usage
        spent = ledger.totals(ws.db, mode="answer-driven")
        assert spent["calls"] == summary["calls"] == 12 + 7  # one per sample, plus seven repairs
        assert spent["prompt_tokens"] == sum(r.usage.prompt_tokens for r in got.values()) == summary["prompt_tokens"]
        assert spent["completion_tokens"] == sum(r.usage.completion_tokens for r in got.values())
        assert spent["cost_usd"] == pytest.approx(sum(r.usage.cost_usd for r in got.values()))
        assert spent["cost_usd"] == pytest.approx((spent["prompt_tokens"] * 2 + spent["completion_tokens"] * 8) / 1e6)

    # the repair turn carried the validator's reasons; retries (429, 500, stall) were made
    repairs = [
        r
        for r in server.requests
        if r.body["messages"][-1]["role"] == "user"
        and "could not be accepted" in str(r.body["messages"][-1]["content"])
    ]
    assert len(repairs) == 7
    assert any("cut off at the token limit" in request_text(r.body) for r in repairs)
    assert any("differs from the screening result" in request_text(r.body) for r in repairs)
    assert summary["retries"] == 3


def test_automated_attempts_agreement_and_no_label_leak(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 4)
        scripts = {
            ids[0]: ["wrong", "wrong", "correct"],
            ids[1]: ["wrong", "wrong", "wrong"],
            ids[2]: ["malformed", "correct"],
        }
        server, _ = serve(ws, scripts)
        with server:
            summary = run_cot(ws, CotOptions(mode="automated", base_url=server.base_url))
        got = rationales(ws, "automated")
    assert got[ids[0]].status == "valid" and got[ids[0]].attempts == 3
    assert got[ids[1]].status == "failed"
    assert sorted({e.split(":")[0] for e in got[ids[1]].errors}) == ["attempt 1", "attempt 2", "attempt 3"]
    assert got[ids[2]].status == "valid" and got[ids[2]].attempts == 2  # a form problem is repaired
    assert got[ids[3]].status == "valid" and got[ids[3]].attempts == 1
    # tries judged: s0 3 (1 agreed), s1 3 (0), s2 1 (after repair, agreed), s3 1 (agreed)
    assert summary["agreement_rate"] == pytest.approx(3 / 8)
    texts = [request_text(r.body) for r in server.requests]
    assert not any("Acceptable candidates" in t or "screening result" in t for t in texts)  # never told


def test_max_cost_stops_and_a_rerun_continues(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 10)
        server, _ = serve(ws, {})
        with server:
            first = run_cot(
                ws, CotOptions(mode="answer-driven", base_url=server.base_url, concurrency=1, max_cost=0.02)
            )
            assert first["stopped"] == "max-cost" and 0 < first["valid"] < 10
            assert 0 < first["cost_usd"] <= 0.02  # never past the cap: each request holds its share first
            second = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
        assert second["selected"] == 10 - first["valid"] and "stopped" not in second
        assert set(rationales(ws, "answer-driven")) == set(ids)


def test_redo_failed_only_redoes_failed(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 3)
        server, _ = serve(ws, {ids[0]: ["leak", "leak"]})
        with server:
            run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
            before = rationales(ws, "answer-driven")
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, redo="failed"))
        after = rationales(ws, "answer-driven")
    assert before[ids[0]].status == "failed" and after[ids[0]].status == "valid"
    assert summary["selected"] == 1
    assert after[ids[1]].created_at == before[ids[1]].created_at


def test_endpoint_without_json_schema(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 2)
        server, _ = serve(ws, {}, json_schema=False)
        with server:
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
    assert summary["valid"] == 2
    assert all("response_format" not in r.body for r in server.requests)


def test_bad_key_fails_the_run_in_one_line(cot_ws_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AESDATA_COT_KEY", "sk-wrong")
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 2)
        server, _ = serve(ws, {})
    with server:
        result = cli.invoke(app, ["cot", "--mode", "answer-driven", "--base-url", server.base_url])
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr and "sk-wrong" not in result.output + result.stderr
    with Workspace.open(cot_ws_path) as ws:
        assert rationales(ws, "answer-driven") == {}
        assert ws.db.execute("SELECT status, params FROM runs").fetchone()["status"] == "failed"
        assert "sk-" not in ws.db.execute("SELECT params FROM runs").fetchone()["params"]


def test_template_and_manual_offline(ws: Workspace, cli: CliRunner) -> None:
    ids = make_samples(ws, 5)
    label = store.get_label(ws.db, ids[0])
    assert label is not None
    other = store.get_label(ws.db, ids[2])
    assert other is not None
    text = (
        "Candidate A and candidate B look right: the product matches the source and the shadow falls "
        "naturally. Candidate C has a floating product with no contact shadow. Candidate D is fine too, "
        "the printed label on the box is sharp."
    )
    with ws.transaction() as db:
        store.upsert_annotation(
            db,
            Annotation(
                sample_id=ids[0], annotator="ann-1", judgement=label.judgement, rationale=f"<think>{text}</think>"
            ),
        )
        store.upsert_annotation(
            db, Annotation(sample_id=ids[1], annotator="ann-1", judgement=other.judgement, rationale=text)
        )  # disagrees unless the labels match

    result = cli.invoke(app, ["cot", "--mode", "template", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"mode": "template", "selected": 5, "valid": 5, "failed": 0}
    assert json.loads(cli.invoke(app, ["cot", "--json"]).stdout)["selected"] == 0

    result = cli.invoke(app, ["cot", "--mode", "manual", "--json", "--min-chars", "100"])
    summary = json.loads(result.stdout)
    assert summary["no_annotator_text"] == 3
    got = rationales(ws, "manual")
    assert got[ids[0]].status == "valid" and got[ids[0]].think == text
    disagree = store.get_label(ws.db, ids[1]).judgement != other.judgement  # type: ignore[union-attr]
    assert (got[ids[1]].status == "failed") == disagree

    status = json.loads(cli.invoke(app, ["status", "--json"]).stdout)
    assert status["rationales_valid"] + status["rationales_failed"] == 7


def test_redo_stale_rewrites_what_older_prompts_wrote(ws: Workspace, cli: CliRunner) -> None:
    ids = make_samples(ws, 3)
    assert json.loads(cli.invoke(app, ["cot", "--json"]).stdout)["valid"] == 3
    with ws.transaction() as db:  # as if written before template.toml changed
        db.execute("UPDATE rationales SET prompt_hash = 'older' WHERE sample_id = ?", (ids[1],))
    summary = json.loads(cli.invoke(app, ["cot", "--redo", "stale", "--json"]).stdout)
    assert summary["selected"] == 1
    assert rationales(ws, "template")[ids[1]].prompt_hash != "older"
    assert json.loads(cli.invoke(app, ["cot", "--redo", "stale", "--json"]).stdout)["selected"] == 0
    assert cli.invoke(app, ["cot", "--redo", "some"]).exit_code == 2  # a usage error


def test_a_refused_request_fails_its_sample_only(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 4)
        server, _ = serve(ws, {ids[2]: ["400"]})
        with server:
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, concurrency=1))
            got = rationales(ws, "answer-driven")
            assert summary["valid"] == 3 and summary["failed"] == 1
            assert got[ids[2]].errors == ["the endpoint refused the request: HTTP 400: the image is too large"]
            again = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, redo="failed"))
        assert again["selected"] == 1 and rationales(ws, "answer-driven")[ids[2]].status == "valid"


def test_a_sample_with_a_missing_image_is_skipped_and_reported(
    cot_ws_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 3)
        ws.blobs.path(store.get_candidates(ws.db, ids[1])[2].sha256).unlink()
        server, _ = serve(ws, {})
        with server:
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
        assert summary["valid"] == 2 and summary["skipped"] == 1
        assert set(rationales(ws, "answer-driven")) == {ids[0], ids[2]}  # nothing stored for it: a re-run retries
    assert any(f"sample {ids[1]}: cannot read an image" in r.message for r in caplog.records)


def test_samples_start_a_few_per_step_of_the_loop(cot_ws_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 samples at 32 in flight: the claims go in units of at most ``_PACE`` (samples started in
    one step of the event loop), and every sample is still written."""
    sizes: list[int] = []
    claim_all_in = claims.Owner.claim_all_in

    def recorded(self: claims.Owner, db: object, scope: str, keys: list) -> list:  # type: ignore[type-arg]
        sizes.append(len(keys))
        return claim_all_in(self, db, scope, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(claims.Owner, "claim_all_in", recorded)
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 40, seed=5)
        server, _ = serve(ws, {}, latency=0.2)
        with server:
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, concurrency=32))
    assert summary["valid"] == 40 and summary["calls"] == 40, summary
    assert sum(sizes) == 40 and max(sizes) <= stage._PACE < 32, sizes
    assert len(sizes) >= 3  # not one unit for the whole first round, as before pacing


def test_the_run_collects_garbage_rarely_and_puts_the_collector_back(cot_ws_path: Path) -> None:
    """While requests are answered (the server's thread is in this process) the objects alive at the start
    are frozen and the young generation waits for ``loop.YOUNG`` allocations; after the run, as before."""
    before = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[int, int]] = []
    with Workspace.open(cot_ws_path) as ws:
        make_samples(ws, 6, seed=9)
        model = ScriptedModel.for_workspace(ws, MAX_SIDE)

        def policy(body: dict, call_index: int) -> Reply | str:
            seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
            return model(body, call_index)

        with OpenAIServer(policy, api_key=API_KEY) as server:
            summary = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, concurrency=3))
    assert summary["valid"] == 6
    assert len(seen) == 6 and all(young == model_loop.YOUNG and frozen > 1000 for young, frozen in seen), seen
    assert (gc.get_threshold(), gc.get_freeze_count()) == before

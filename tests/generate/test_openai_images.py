"""``generate --backend openai-images``: the real openai client against a scripted images.edit server.

Faults (429 with Retry-After, 500, a stall past the timeout, an image that does not decode, a refused
request), bounded concurrency, the ledger and --max-cost, resuming without paying twice, seeds.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from aesdata import store
from aesdata.cli.main import app
from aesdata.errors import AesdataError
from aesdata.generate.openai_images import decode_reply, image_cost
from aesdata.schema import Usage
from aesdata.workspace import Workspace
from tests.generate.conftest import add_sources
from tests.generate.images_server import EditReply, Form, ImagesServer

KEY = "sk-images-test"
PRICE = 0.04  # USD per image in these tests


def configure(ws_path: Path, **images: object) -> None:
    """Rewrite the [images] section of the workspace's aesdata.toml (fast retries, a price per image).

    The timeout is generous (a loaded test machine must not turn answers into timeouts); the test of
    timeouts sets its own.
    """
    path = ws_path / "aesdata.toml"
    head, rest = path.read_text().split("[images]\n")
    _, tail = rest.split("\n[publish]")
    keys = {"timeout_s": 60.0, "max_retries": 3, "backoff_s": 0.01, **images}
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    path.write_text(f'{head}[images]\n{body}[images.prices]\n"*" = {{ image = {PRICE} }}\n\n[publish]{tail}')


def run(cli: CliRunner, server: ImagesServer, *args: str, said: list[str] | None = None) -> dict:
    """``aesdata generate --backend openai-images ... --json``: its summary (and its output into ``said``)."""
    result = cli.invoke(app, ["generate", "--backend", "openai-images", "--base-url", server.base_url,
                              "--size", "64", "--json", *args], env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    if said is not None:
        said.append(result.output)
    return json.loads(result.stdout.strip().splitlines()[-1])


def digest(form: Form) -> str:
    """Which job a request is for: the canvas it sends (product, layout) and its prompt."""
    return hashlib.sha256(form.files["image"] + form.fields["prompt"].encode()).hexdigest()


@pytest.fixture
def sources(ws_path: Path, tmp_path: Path) -> Path:
    with Workspace.open(ws_path) as ws:
        add_sources(ws, tmp_path / "photos", 3)
    configure(ws_path)
    return ws_path


def test_faults_cost_only_their_item_and_a_rerun_pays_only_what_is_missing(
        cli: CliRunner, sources: Path) -> None:
    configure(sources, timeout_s=2.0)
    refused: set[str] = set()
    stalled: list[int] = []

    def policy(form: Form, i: int) -> EditReply | None:
        key = digest(form)
        if i == 0:
            return EditReply.fail(429, retry_after=0.4)  # rate-limited: the retry waits at least this
        if i == 1:
            return EditReply.fail(500)
        if i == 2:
            stalled.append(i)
            return EditReply(delay=4.0)  # past the 2 s timeout
        if i == 3:
            return EditReply.malformed()
        if i == 4 and not refused or key in refused:
            refused.add(key)
            return EditReply.fail(400, "Your request was rejected by the safety system.")
        return None

    with ImagesServer(policy, api_key=KEY) as server:
        said: list[str] = []
        summary = run(cli, server, "--concurrency", "2", "--batch-size", "3", said=said)
        forms = list(server.forms)
        assert server.max_in_flight <= 2
    assert summary["samples"] == 2 and summary["failed"] == 1 and summary["refused"] == 1
    assert summary["retries"] >= 4 and summary["calls"] == 11  # 12 jobs, one refused
    assert summary["unusable"] == 1  # the malformed image was billed: it counts against the budget
    assert summary["cost_usd"] == pytest.approx(12 * PRICE)
    problems = [ln for ln in said[0].splitlines() if "refused the request" in ln]
    assert len(problems) == 1 and "photos/product_000" in problems[0]
    assert "the endpoint refused the request: HTTP 400: Your request was rejected" in problems[0]
    by_job = Counter(digest(f) for f in forms)
    first = digest(forms[0])
    retry_of_first = next(f for f in forms[1:] if digest(f) == first)
    assert retry_of_first.at - forms[0].at >= 0.4  # Retry-After honoured
    assert by_job[digest(forms[2])] >= 2  # the stalled request was sent again
    with Workspace.open(sources) as ws:
        paid = ws.db.execute("SELECT COUNT(*), SUM(cost_usd) FROM image_calls").fetchone()
        assert paid[0] == 11 and paid[1] == pytest.approx(11 * PRICE)
        samples = list(store.iter_samples(ws.db))
        assert len(samples) == 2 and {s.backend for s in samples} == {"openai-images"}
        prov = store.get_candidates(ws.db, samples[0].id)[0].provenance
        assert prov.backend == "openai-images" and prov.model_id == "gpt-image-1"
        assert prov.pixel_seed == "unavailable" and prov.pipeline_class == "images.edit" and prov.mask == "alpha"
        img = ws.blobs.open(store.get_candidates(ws.db, samples[0].id)[0].sha256)
        assert img.size == (64, 64)

    # the endpoint now takes the request: only that job is sent, the source's three paid images are reused
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        again = run(cli, server)
        assert {digest(f) for f in server.forms} == refused
    assert again["samples"] == 1 and again["calls"] == 1 and again["reused"] == 3 and again["failed"] == 0
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        assert run(cli, server)["sources"] == 0 and not server.forms


def test_max_cost_stops_cleanly_and_a_later_run_never_pays_twice(cli: CliRunner, sources: Path) -> None:
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        stopped = run(cli, server, "--max-cost", str(2.5 * PRICE), "--concurrency", "1", "--batch-size", "1")
        first = [digest(f) for f in server.forms]
    assert stopped["stopped"] == 1 and stopped["calls"] == 3 and stopped["samples"] == 0
    assert stopped["cost_usd"] == pytest.approx(3 * PRICE)
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        rest = run(cli, server)
        second = [digest(f) for f in server.forms]
    assert rest["samples"] == 3 and rest["reused"] == 3 and rest["calls"] == 9
    assert not set(first) & set(second) and len(set(first + second)) == 12  # each job paid exactly once
    with Workspace.open(sources) as ws:
        assert ws.db.execute("SELECT COUNT(*) FROM image_calls").fetchone()[0] == 12


def test_seeds_are_sent_where_the_endpoint_takes_them(cli: CliRunner, sources: Path) -> None:
    configure(sources, send_seed=True, quality="low")
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        run(cli, server, "--limit", "1")
        sent = {int(f.fields["seed"]) for f in server.forms}
        assert {f.fields["quality"] for f in server.forms} == {"low"}
    with Workspace.open(sources) as ws:
        cands = store.get_candidates(ws.db, next(store.iter_samples(ws.db)).id)
    assert sent == {c.seed for c in cands} and {c.provenance.pixel_seed for c in cands} == {"sent"}


def test_a_bad_key_stops_the_run_with_one_line(cli: CliRunner, sources: Path) -> None:
    with ImagesServer(lambda form, i: None, api_key="sk-other") as server:
        result = cli.invoke(app, ["generate", "--backend", "openai-images", "--base-url", server.base_url,
                                  "--size", "64"], env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1 and "HTTP 401: invalid API key" in result.output, result.output
    assert "Traceback" not in result.output


def test_ray_is_refused_in_one_line_before_it_starts(cli: CliRunner, sources: Path) -> None:
    result = cli.invoke(app, ["generate", "--backend", "openai-images", "--engine", "ray", "--size", "64"],
                        env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "does not run on Ray actors" in result.output and "--engine local" in result.output


def test_max_cost_needs_a_price(ws: Workspace, tmp_path: Path) -> None:
    from aesdata.generate.stage import generate

    with pytest.raises(AesdataError, match="--max-cost needs a price for model 'gpt-image-1'"):
        generate(ws, backend="openai-images", base_url="http://127.0.0.1:9/v1", max_cost=1.0)


def _b64_png(size: tuple[int, int]) -> str:
    import base64

    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_replies_are_checked_before_they_become_images() -> None:
    from aesdata.llm.client import MalformedResponse

    img, usage = decode_reply(json.dumps({"data": [{"b64_json": _b64_png((128, 128))}],
                                          "usage": {"input_tokens": 7, "output_tokens": 9}}), 64)
    assert img.size == (64, 64) and (usage.prompt_tokens, usage.completion_tokens) == (7, 9)
    for body, why in [("<html>busy</html>", "not an images response"),
                      (json.dumps({"data": [{"url": "https://x/y.png"}]}), "it gave a URL"),
                      (json.dumps({"data": [{"b64_json": _b64_png((64, 32))}]}), "64x32, not the square"),
                      (json.dumps({"data": [{"b64_json": "%%%"}]}), "does not decode")]:
        with pytest.raises(MalformedResponse, match=why):
            decode_reply(body, 64)
    assert image_cost({"m": {"image": 0.04}}, "m", Usage()) == 0.04
    assert image_cost({"*": {"input": 10.0, "output": 40.0}}, "m",
                      Usage(prompt_tokens=1000, completion_tokens=500)) == pytest.approx(0.03)


def _candidates(ws_path: Path) -> dict[tuple[str, str], str]:
    with Workspace.open(ws_path) as ws:
        return {(s.source_id, c.slot): c.sha256 for s in store.iter_samples(ws.db)
                for c in store.get_candidates(ws.db, s.id)}


def test_killed_and_resumed_equals_uninterrupted_and_pays_at_most_the_requests_in_flight(
        sources: Path, tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL in the middle of the second source (the first committed, the second partly paid)."""
    kill_after = 6
    import signal
    import time

    from tests.generate.conftest import aesdata_process

    args = ["generate", "--backend", "openai-images", "--size", "64", "--concurrency", "2", "--batch-size", "1"]
    with ImagesServer(lambda form, i: None, api_key=KEY, latency=0.1) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        proc = aesdata_process([*args, "--base-url", server.base_url], sources)
        deadline = time.monotonic() + 60
        while len(server.forms) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = len(server.forms)
        resumed = run(cli, server, "--concurrency", "2")
        total = len(server.forms)
    assert total <= 12 + 2  # at most the requests in flight at the kill were paid and lost
    # the resumed run asked only for what was missing: paid images of unfinished sources are reused
    assert total - before == 4 * resumed["sources"] - resumed["reused"]
    assert resumed["samples"] == resumed["sources"] and resumed["failed"] == 0

    fresh = tmp_path / "fresh"
    Workspace.init(fresh).close()
    with Workspace.open(fresh) as ws:
        add_sources(ws, tmp_path / "photos", 3)  # the same photos, already written
    configure(fresh)
    with ImagesServer(lambda form, i: None, api_key=KEY) as server:
        result = cli.invoke(app, [*args, "--base-url", server.base_url, "-w", str(fresh)])
        assert result.exit_code == 0, result.output
    assert _candidates(sources) == _candidates(fresh)


def test_an_endpoint_that_cannot_be_reached_stops_the_run(cli: CliRunner, sources: Path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configure(sources, max_retries=1)
    result = cli.invoke(app, ["generate", "--backend", "openai-images", "--base-url", f"http://127.0.0.1:{port}/v1",
                              "--size", "64"], env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1, result.output
    assert "connection error after 2 tries, and no request of this run was answered" in result.output

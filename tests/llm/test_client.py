"""The async client against the project's real HTTP server: retries, timeouts, budget, fallback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from aesdata.errors import AesdataError
from aesdata.llm.client import (
    NO_KEY,
    BudgetExceeded,
    EndpointRejected,
    LLMClient,
    PriceTable,
    RequestFailed,
    RequestRejected,
    RetryPolicy,
    api_key_from_env,
    retry_after_s,
    user_message,
)
from tests.openai_server import OpenAIServer, Reply, request_images, spawn

FAST = RetryPolicy(max_retries=4, backoff_s=0.01, backoff_max_s=0.05)
PRICES = PriceTable.from_mapping({"m": {"input": 1.0, "output": 2.0}})
IMAGE = "data:image/jpeg;base64,/9j/AAAA"


def client(server: OpenAIServer, **kwargs: object) -> LLMClient:
    options: dict = {"model": "m", "api_key": "sk-test", "timeout_s": 0.5, "retry": FAST, "prices": PRICES}
    options.update(kwargs)
    return LLMClient(base_url=server.base_url, **options)


async def one(server: OpenAIServer, **kwargs: object):
    async with client(server, **kwargs) as c:
        result = await c.chat([user_message("which?", [IMAGE])], json_schema={"type": "object"})
        return result, c


def test_faults_are_retried_and_retry_after_is_honoured() -> None:
    script = [Reply.fail(429, retry_after=0.3), Reply.fail(500), Reply.stall(2.0), '{"ok": true}']
    with OpenAIServer(lambda body, i: script[i], api_key="sk-test") as server:
        start = time.monotonic()
        result, c = asyncio.run(one(server))
        elapsed = time.monotonic() - start
    assert result.text == '{"ok": true}'
    assert result.tries == 4
    assert (c.stats.rate_limited, c.stats.server_errors, c.stats.timeouts, c.stats.retries) == (1, 1, 1, 3)
    assert elapsed >= 0.3 + 0.5  # waited what Retry-After asked, and the stalled try timed out at 0.5 s
    # every try carried the image and the JSON schema as response_format
    assert all(request_images(r.body) == [IMAGE] for r in server.requests)
    assert all(r.body["response_format"]["type"] == "json_schema" for r in server.requests)


def test_a_body_that_is_not_a_completion_is_retried() -> None:
    script = [Reply(raw="<html>502 Bad Gateway</html>"), Reply(raw='{"choices": []}'), "{}"]
    with OpenAIServer(lambda body, i: script[i]) as server:
        result, c = asyncio.run(one(server))
    assert result.text == "{}" and result.tries == 3 and c.stats.retries == 2


def test_usage_is_priced_and_ledgered() -> None:
    reply = Reply(content="{}", prompt_tokens=1000, completion_tokens=500)
    with OpenAIServer(lambda body, i: reply) as server:
        result, c = asyncio.run(one(server))
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 500)
    assert result.usage.cost_usd == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert c.ledger.calls == 1 and c.ledger.cost_usd == pytest.approx(result.usage.cost_usd)


def test_schema_refused_falls_back_to_instructed_json() -> None:
    with OpenAIServer(lambda body, i: "{}", json_schema=False) as server:
        result, c = asyncio.run(one(server))
    assert result.text == "{}" and c.stats.schema_fallbacks == 1 and not c.sends_schema
    (accepted,) = server.requests
    assert "response_format" not in accepted.body
    assert "JSON Schema" in accepted.body["messages"][-1]["content"]


def test_schema_required_but_refused_stops() -> None:
    with OpenAIServer(lambda body, i: "{}", json_schema=False) as server, pytest.raises(EndpointRejected):
        asyncio.run(one(server, structured="schema"))


def test_bad_key_is_not_retried() -> None:
    with OpenAIServer(lambda body, i: "{}", api_key="right") as server:
        with pytest.raises(EndpointRejected, match="HTTP 401"):
            asyncio.run(one(server, api_key="wrong"))
        assert server.calls == 0


def test_retries_run_out() -> None:
    with OpenAIServer(lambda body, i: Reply.fail(503)) as server:
        with pytest.raises(RequestFailed, match="HTTP 503 after 5 tries"):
            asyncio.run(one(server))
        assert server.calls == 5


def test_max_cost_stops_new_requests() -> None:
    reply = Reply(content="{}", prompt_tokens=1_000_000, completion_tokens=0)  # $1 a call

    async def run(server: OpenAIServer) -> tuple[int, int]:
        async with client(server, max_cost=2.5, concurrency=1) as c:
            outcomes = await asyncio.gather(*(c.chat([user_message("q")]) for _ in range(5)), return_exceptions=True)
        done = sum(not isinstance(o, BaseException) for o in outcomes)
        stopped = sum(isinstance(o, BudgetExceeded) for o in outcomes)
        return done, stopped

    with OpenAIServer(lambda body, i: reply) as server:
        assert asyncio.run(run(server)) == (3, 2)
        assert server.calls == 3


def test_max_cost_needs_a_price() -> None:
    with pytest.raises(AesdataError, match="needs a price"):
        LLMClient(model="unpriced", api_key="k", prices=PRICES, max_cost=1.0)


def test_concurrency_is_bounded() -> None:
    async def run(server: OpenAIServer) -> None:
        async with client(server, concurrency=3) as c:
            await asyncio.gather(*(c.chat([user_message("q")]) for _ in range(12)))

    with OpenAIServer(lambda body, i: "{}", latency=0.05) as server:
        asyncio.run(run(server))
        assert server.calls == 12 and server.max_in_flight == 3


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after-ms": "250"}) == 0.25
    assert retry_after_s({"retry-after": "2"}) == 2.0
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert retry_after_s({}) is None
    assert FAST.delay(1, retry_after=3.0) == 3.0


def test_api_key_from_env_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AESDATA_TEST_KEY", raising=False)
    with pytest.raises(AesdataError, match="AESDATA_TEST_KEY"):
        api_key_from_env("AESDATA_TEST_KEY", base_url=None)
    assert api_key_from_env("AESDATA_TEST_KEY", base_url="http://127.0.0.1:1/v1") == NO_KEY
    monkeypatch.setenv("AESDATA_TEST_KEY", "sk-env")
    assert api_key_from_env("AESDATA_TEST_KEY", base_url=None) == "sk-env"


def test_server_rejects_malformed_requests() -> None:
    with OpenAIServer(lambda body, i: "{}") as server:
        bad = {"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]}
        resp = httpx.post(server.base_url + "/chat/completions", json=bad)
        assert resp.status_code == 400 and "unknown content part" in resp.json()["error"]["message"]
        assert server.requests == []


def test_server_in_a_subprocess(tmp_path: Path) -> None:
    policy = tmp_path / "policy.py"
    policy.write_text("def make(arg):\n    return lambda body, i: arg + str(i)\n")
    proc, base_url = spawn(f"{policy}:make", policy_arg="reply-", api_key="sk-test")
    try:

        async def run() -> str:
            async with LLMClient(base_url=base_url, model="m", api_key="sk-test", retry=FAST) as c:
                return (await c.chat([user_message("q", [IMAGE])])).text

        assert asyncio.run(run()) == "reply-0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(("per_request", "expected"), [(False, EndpointRejected), (True, RequestRejected)])
def test_a_later_refusal_stops_the_run_unless_per_request(per_request: bool, expected: type) -> None:
    async def run(server: OpenAIServer) -> None:
        async with client(server, reject_per_request=per_request) as c:
            await c.chat([user_message("q")])  # answered
            await c.chat([user_message("q")])  # refused

    with OpenAIServer(lambda body, i: "{}" if i == 0 else Reply.fail(400, "too long")) as server:
        with pytest.raises(expected, match="HTTP 400: too long"):
            asyncio.run(run(server))
        assert server.calls == 2  # never retried


def test_a_refusal_naming_response_format_without_one_is_not_looped_on() -> None:
    refusal = Reply.fail(400, "response_format: this model cannot do that")
    with OpenAIServer(lambda body, i: refusal) as server:
        with pytest.raises(EndpointRejected):
            asyncio.run(one(server, structured="instructed"))
        assert server.calls == 1

"""An OpenAI-compatible chat-completions server of the project's own: real HTTP on 127.0.0.1.

Tests and benchmarks point the real ``openai`` client at it. It speaks enough of the API for
``POST /v1/chat/completions`` (messages with text and ``image_url`` parts, ``response_format`` of type
``text``, ``json_object`` or ``json_schema``, ``usage`` in every reply) and ``GET /v1/models``. What it
answers comes from a *policy*: a callable ``(request_json, call_index) -> Reply | str`` called once per
chat request (``call_index`` counts them from 0, across all connections). A ``str`` is the assistant's
content; a :class:`Reply` can also be an HTTP error (429 with ``Retry-After``, 500, ...), a stall
(answer only after ``delay`` seconds: past the client's timeout) or carry fixed token counts.

In a thread (tests)::

    from tests.openai_server import OpenAIServer, Reply

    def policy(request: dict, call_index: int) -> Reply | str:
        if call_index == 0:
            return Reply.fail(429, retry_after=0.05)          # rate-limited once
        if call_index == 1:
            return Reply.stall(5.0)                           # past the client's timeout
        return '{"final_answer": ["A"]}'                      # then a normal answer

    with OpenAIServer(policy, api_key="sk-test") as server:
        ...  # server.base_url is "http://127.0.0.1:<port>/v1"; server.requests lists what arrived

and the client (``aesdata.llm.client``) for one request with images::

    client = LLMClient(base_url=server.base_url, model="m", api_key="sk-test")
    result = await client.chat([user_message("Which is best?", [data_url])])
    result.text, result.usage.prompt_tokens, result.usage.cost_usd

In a subprocess (benchmarks: the server then has a core of its own)::

    proc, base_url = spawn("path/to/file.py:factory", policy_arg="ARG", latency=1.0)
    # or: python -m tests.openai_server --latency 1.0 --policy path/to/file.py:factory --policy-arg ARG

prints ``READY <base_url>`` on stdout once listening. ``--policy`` names ``module:callable`` or
``file.py:callable``; with ``--policy-arg`` the callable is a factory called with that string, which
returns the policy.

Helpers for policies: :func:`request_text` (every text part, joined), :func:`request_images` (the image
URLs in order) and :func:`image_digest` (a stable key for one image URL, to look up what the test knows
about the image the client sent).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import importlib.util
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What the server does for one request.

    ``status`` 200 sends ``content`` as the assistant message; any other status sends an OpenAI-style
    error body with ``message``. ``delay`` is slept before answering (on top of the server's fixed
    latency). Token counts default to an estimate from the request and reply text.
    """

    content: str = ""
    status: int = 200
    message: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    raw: str | None = None  # sent as the whole body instead of a chat completion (a broken proxy)

    @classmethod
    def fail(cls, status: int, message: str = "", *, retry_after: float | None = None) -> Reply:
        return cls(status=status, message=message or HTTPStatus(status).phrase, retry_after=retry_after)

    @classmethod
    def stall(cls, seconds: float, content: str = "") -> Reply:
        return cls(content=content, delay=seconds)


Policy = Callable[[dict[str, Any], int], "Reply | str"]


@dataclass(frozen=True)
class Request:
    """One chat request as received (kept for assertions)."""

    call_index: int
    body: dict[str, Any]
    headers: dict[str, str]


# --------------------------------------------------------------------------- helpers for policies


def _parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            parts.append({"type": "text", "text": content})
        elif isinstance(content, list):
            parts.extend(p for p in content if isinstance(p, dict))
    return parts


def request_text(body: dict[str, Any]) -> str:
    """All text of the request's messages, in order, joined by newlines."""
    return "\n".join(p.get("text", "") for p in _parts(body) if p.get("type") == "text")


def request_images(body: dict[str, Any]) -> list[str]:
    """The image URLs of the request, in order."""
    return [p["image_url"]["url"] for p in _parts(body) if p.get("type") == "image_url"]


def image_digest(url: str) -> str:
    """A short stable key for one image URL (a data URL is the image itself)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _check(body: Any, *, json_schema: bool) -> str | None:
    """Why the request is not a chat completion this server accepts, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return "'model' is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant", "developer"):
            return f"messages[{i}]: bad role"
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "image_url":
                    url = part.get("image_url", {}).get("url", "")
                    if not url.startswith(("data:image/", "http://", "https://")):
                        return f"messages[{i}]: image_url must be a data: or http(s) URL"
                elif kind != "text":
                    return f"messages[{i}]: unknown content part type {kind!r}"
        elif not isinstance(content, str):
            return f"messages[{i}]: content must be a string or a list of parts"
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return f"response_format: unknown type {kind!r}"
        if kind == "json_schema":
            if not json_schema:
                return "response_format of type json_schema is not supported by this server"
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("schema"), dict):
                return "response_format.json_schema needs 'name' and 'schema'"
    return None


def _estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


# --------------------------------------------------------------------------- the server


class OpenAIServer:
    """The server; a context manager that runs it in a background thread with its own event loop.

    ``latency`` is added to every request (the benchmark's fixed 1 s). ``api_key``, when set, must come
    as ``Authorization: Bearer <key>`` (else 401). ``json_schema=False`` refuses ``json_schema``
    response formats with a 400, as endpoints without structured output do. ``record=False`` keeps no
    request bodies (benchmarks).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        json_schema: bool = True,
        record: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.policy, self.latency, self.api_key = policy, latency, api_key
        self.json_schema, self.record = json_schema, record
        self.host, self.port = host, port
        self.requests: list[Request] = []
        self.calls = 0
        self.in_flight = 0  # requests being answered now, and the most seen at once
        self.max_in_flight = 0
        self.connections = 0  # TCP connections accepted (keep-alive reuse shows as fewer than calls)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---------------------------------------------------------------- lifecycle

    async def start_async(self) -> None:
        """Start listening on the running loop (use this inside an existing event loop)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._connection, self.host, self.port, limit=1 << 20, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def start(self) -> OpenAIServer:
        """Run the server in a daemon thread; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _version = (request_line.split(" ") + ["", "", ""])[:3]
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                try:
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                status, extra, payload = await self._dispatch(method, path.split("?")[0], headers, body)
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                lines = [
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(data)}",
                    *[f"{k}: {v}" for k, v in extra.items()],
                ]
                try:
                    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
                    await writer.drain()
                except ConnectionError:
                    return
                if headers.get("connection", "").lower() == "close":
                    return
        except asyncio.CancelledError:
            return  # the server is stopping: end this connection quietly
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _dispatch(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | str]:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, _error("invalid API key", "invalid_request_error")
        if method == "GET" and path == "/v1/models":
            return (
                200,
                {},
                {"object": "list", "data": [{"id": "scripted", "object": "model", "owned_by": "tests"}]},
            )
        if method != "POST" or path != "/v1/chat/completions":
            return 404, {}, _error(f"no route {method} {path}", "invalid_request_error")
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, _error("body is not JSON", "invalid_request_error")
        problem = _check(body, json_schema=self.json_schema)
        if problem:
            return 400, {}, _error(problem, "invalid_request_error")
        with self._lock:
            index = self.calls
            self.calls += 1
            if self.record:
                self.requests.append(Request(index, body, headers))
        reply = self.policy(body, index)
        if isinstance(reply, str):
            reply = Reply(content=reply)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency + reply.delay)
        finally:
            self.in_flight -= 1
        if reply.status != 200:
            extra = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            return reply.status, extra, _error(reply.message, kind)
        if reply.raw is not None:
            return 200, {}, reply.raw
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = _estimate_tokens(request_text(body)) + 85 * len(request_images(body))
        completion = reply.completion_tokens if reply.completion_tokens is not None else _estimate_tokens(reply.content)
        return (
            200,
            {},
            {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


# --------------------------------------------------------------------------- subprocess entry point


def load_callable(spec: str) -> Callable[..., Any]:
    """``module:attr`` or ``path/to/file.py:attr``."""
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise SystemExit(f"--policy {spec!r}: expected module:callable or file.py:callable")
    if where.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"--policy {spec!r}: cannot load {where}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, attr)  # type: ignore[no-any-return]


def spawn(
    policy: str,
    *,
    policy_arg: str | None = None,
    latency: float = 0.0,
    api_key: str | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start the server in a subprocess (a core of its own); return it and its base URL once it listens.

    ``policy`` is ``module:callable`` or ``file.py:callable`` (see :func:`main`); stop it with
    ``proc.terminate()``.
    """
    args = [sys.executable, "-m", "tests.openai_server", "--policy", policy, "--latency", str(latency)]
    if policy_arg is not None:
        args += ["--policy-arg", policy_arg]
    if api_key is not None:
        args += ["--api-key", api_key]
    proc = subprocess.Popen(args, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the test server did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


async def _serve_forever(server: OpenAIServer) -> None:
    await server.start_async()
    print(f"READY {server.base_url}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server (tests, benchmarks).")
    parser.add_argument("--policy", required=True, help="module:callable or file.py:callable")
    parser.add_argument("--policy-arg", help="when given, --policy is a factory called with this string")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key")
    parser.add_argument("--no-json-schema", action="store_true", help="refuse json_schema response formats")
    args = parser.parse_args(argv)
    policy = load_callable(args.policy)
    if args.policy_arg is not None:
        policy = policy(args.policy_arg)
    server = OpenAIServer(
        policy,
        latency=args.latency,
        api_key=args.api_key,
        json_schema=not args.no_json_schema,
        record=False,
        port=args.port,
    )
    try:
        asyncio.run(_serve_forever(server))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()

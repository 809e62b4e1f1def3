"""An async client for any OpenAI-compatible chat endpoint: bounded, retrying, metered.

``openai.AsyncOpenAI`` holds the endpoint's configuration (base URL, key, organisation and project,
its default headers) and makes every call of the Batch API (:mod:`aesdata.llm.batch`); the chat
requests themselves go out over one ``aiohttp`` session with exactly those headers. Measured on the
project's benchmark, the openai client's own request building and its httpx layer cost about 2 ms of
CPU per request, which caps a 2-core machine near 110 requests/s (41 % of ideal at 256 in flight,
against 73 % for the same request over plain aiohttp in the same run); every retry is ours and counted:

* at most ``concurrency`` requests in flight (one semaphore; callers may start as many tasks as
  they like), on as many keep-alive connections;
* retries with exponential backoff and jitter on 429, 5xx, timeouts and dropped connections, waiting
  at least what ``Retry-After`` / ``retry-after-ms`` asks; other 4xx are not retried and stop the run
  (:class:`EndpointRejected`: every request would fail alike), unless ``reject_per_request`` makes a
  later refusal that request's alone (:class:`RequestRejected`);
* a per-request timeout;
* a :class:`CostLedger` priced from a :class:`PriceTable`; once spending reaches ``max_cost`` no new
  request starts (:class:`BudgetExceeded`); requests already in flight finish and are counted;
* structured output: with ``json_schema=`` the schema goes as ``response_format`` where the endpoint
  supports it; an endpoint that refuses it (a 400 naming ``response_format``) is asked again, and from
  then on, with the schema written into the prompt instead (``structured="auto"``).

The API key is read from the environment by the caller (:func:`api_key_from_env`) and never stored.

Example, one request with an image, text and usage back::

    import asyncio
    from aesdata.llm.client import LLMClient, PriceTable, user_message

    async def main() -> None:
        prices = PriceTable.from_mapping({"gpt-4o": {"input": 2.5, "output": 10.0}})  # USD / 1M tokens
        async with LLMClient(base_url="http://127.0.0.1:8000/v1", model="gpt-4o", api_key="sk-...",
                             concurrency=16, timeout_s=60, prices=prices, max_cost=5.0) as client:
            msg = user_message("Which candidate is acceptable?", ["data:image/jpeg;base64,..."])
            result = await client.chat([msg], json_schema=MyReply.model_json_schema())
            print(result.text, result.usage.prompt_tokens, result.usage.cost_usd, client.ledger.cost_usd)

    asyncio.run(main())

Images are data URLs; :mod:`aesdata.llm.images` makes them (resized and JPEG-encoded once per image).
In a workspace, ``client_from_settings(ws.settings.cot, model=..., base_url=...)`` builds the client
from ``[cot]`` (key from the variable named by ``cot.api_key_env``, retries, timeout, prices).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
import certifi
import openai

from aesdata.childenv import probe_platform
from aesdata.config import CotSettings
from aesdata.errors import AesdataError
from aesdata.llm.body import BodyEncoder, Fixed
from aesdata.schema import Usage

Structured = Literal["auto", "schema", "instructed"]

#: Placeholder key for local endpoints (vLLM, Ollama) that take none; the openai client needs a value.
NO_KEY = "EMPTY"


class BudgetExceeded(AesdataError):
    """Spending reached ``max_cost``: no new request is started."""


class EndpointRejected(AesdataError):
    """The endpoint refused a request in a way a retry cannot fix (bad key, unknown model, bad request)."""


class RequestFailed(AesdataError):
    """A request still failed after every retry (rate limits, server errors, timeouts)."""


class RequestRejected(RequestFailed):
    """One request was refused (a 4xx other than 429) by an endpoint that has answered others."""


class MalformedResponse(Exception):
    """A 200 whose body is not a chat completion (a proxy's error page, a truncated body): retried."""


# --------------------------------------------------------------------------- prices and the ledger


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0


@dataclass(frozen=True)
class PriceTable:
    """Model name -> price; ``*`` is the fallback for models not listed."""

    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Mapping[str, float]]) -> PriceTable:
        return cls({model: ModelPrice(**dict(p)) for model, p in table.items()})

    def price(self, model: str) -> ModelPrice | None:
        return self.prices.get(model) or self.prices.get("*")

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price(model) or ModelPrice()
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


@dataclass
class CostLedger:
    """Totals over every answered request of one client (the stage also stores them per call)."""

    max_cost: float | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, usage: Usage) -> None:
        self.calls += 1
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.cost_usd += usage.cost_usd

    @property
    def exhausted(self) -> bool:
        return self.max_cost is not None and self.cost_usd >= self.max_cost

    def check(self) -> None:
        if self.exhausted:
            raise BudgetExceeded(
                f"spent ${self.cost_usd:.4f} of the --max-cost ${self.max_cost:.4f}: no new requests",
                hint="work done so far is stored; raise --max-cost and run again to continue",
            )


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0

    def delay(self, retry: int, retry_after: float | None) -> float:
        """Seconds before retry number ``retry`` (1-based): full-jitter exponential, at least Retry-After."""
        backoff = random.uniform(0.5, 1.0) * min(self.backoff_max_s, self.backoff_s * 2 ** (retry - 1))
        return max(backoff, retry_after or 0.0)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """What ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date) asks for, in seconds."""
    if value := headers.get("retry-after-ms"):
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


class StatusError(Exception):
    """A chat request answered with an HTTP error status (the aiohttp transport's error)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.headers, self.body = status, headers, body


#: What a request can fail with: the openai client's errors (batch calls) and the chat transport's.
TRANSPORT_ERRORS = (openai.APIError, openai.APITimeoutError, StatusError, TimeoutError, aiohttp.ClientError)


def _status(exc: Exception) -> tuple[int, Mapping[str, str], str] | None:
    """(status, headers, message) of an HTTP error answer, from either transport; None for other errors."""
    if isinstance(exc, StatusError):
        return exc.status, exc.headers, body_message(exc.body) or f"HTTP {exc.status}"
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code, exc.response.headers, body_message(exc.body) or exc.message
    return None


def retryable(exc: Exception) -> tuple[bool, float | None, str]:
    """(retry it?, Retry-After seconds, short reason)."""
    if isinstance(exc, MalformedResponse):
        return True, None, f"malformed response ({exc})"
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return True, None, "timeout"
    if isinstance(exc, openai.APIConnectionError | aiohttp.ClientError):
        return True, None, "connection error"
    if (answer := _status(exc)) is not None:
        status, headers, message = answer
        if status == 429 or status >= 500 or status in (408, 409):
            return True, retry_after_s(headers), f"HTTP {status}"
        return False, None, f"HTTP {status}: {message}"
    return False, None, f"{type(exc).__name__}: {exc}"


def body_message(body: Any) -> str | None:
    """The message of an OpenAI-style error body (``{"error": {"message": ...}}``), if it has one."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    return None


def about_the_endpoint(exc: Exception) -> bool:
    """A refusal no other request would escape: bad key, no permission, no such model or route."""
    answer = _status(exc)
    return answer is not None and answer[0] in (401, 403, 404)


def refuses_response_format(exc: Exception) -> bool:
    answer = _status(exc)
    return answer is not None and answer[0] == 400 and any(
        word in answer[2].lower() for word in ("response_format", "json_schema")
    )


# --------------------------------------------------------------------------- messages


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def user_message(text: str, images: Sequence[str] = (), *, detail: str | None = None) -> dict[str, Any]:
    """One user message: the text, then each image (data or http URL)."""
    return {"role": "user", "content": [text_part(text), *(image_part(u, detail) for u in images)]}


def instruct_schema(messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages with the schema written into a final user turn (endpoints without json_schema)."""
    rule = (
        "Reply with one JSON object only (no prose, no code fences) that conforms to this JSON Schema:\n"
        + json.dumps(schema, separators=(",", ":"))
    )
    return [*messages, {"role": "user", "content": rule}]


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class ChatResult:
    text: str
    usage: Usage
    model: str
    finish_reason: str | None
    tries: int = 1  # HTTP tries it took, retries included
    request_id: str | None = None  # batch mode: which batch request answered it (the ledger's key)


class ChatClient(Protocol):
    """What the writers need of a client: :class:`LLMClient` online, or batch mode's stand-in."""

    model: str

    async def chat(
        self, messages: list[dict[str, Any]], *, json_schema: dict[str, Any] | None = None, schema_name: str = "reply"
    ) -> ChatResult: ...


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    schema_fallbacks: int = 0


def api_key_from_env(env_var: str, *, base_url: str | None) -> str:
    """The key from ``env_var``; local endpoints (a base URL given) may run without one."""
    key = os.environ.get(env_var, "").strip()
    if key:
        return key
    if base_url is None:
        raise AesdataError(
            f"no API key: the environment variable {env_var} is not set",
            hint=f"export {env_var}=... (or set cot.api_key_env / cot.base_url in aesdata.toml)",
        )
    return NO_KEY


class LLMClient:
    """Bounded, retrying, metered chat completions against one endpoint and model.

    A 4xx other than 429 is never retried. By default it stops the run (:class:`EndpointRejected`);
    with ``reject_per_request`` one that comes after the endpoint has answered (and is not 401/403/404)
    concerns that request only (:class:`RequestRejected`): a reply too long, an image refused.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        prices: PriceTable | None = None,
        max_cost: float | None = None,
        structured: Structured = "auto",
        reject_per_request: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.model, self.base_url = model, base_url
        self.retry = retry or RetryPolicy()
        self.prices = prices or PriceTable()
        if max_cost is not None and self.prices.price(model) is None:
            raise AesdataError(
                f"--max-cost needs a price for model {model!r}",
                hint="add it (or '*') under [cot.prices] in aesdata.toml",
            )
        self.ledger = CostLedger(max_cost=max_cost)
        self.stats = ClientStats()
        self.structured: Structured = structured
        self.schema_refused = False  # "auto": the endpoint said no to json_schema once
        self.reject_per_request = reject_per_request
        self.temperature, self.max_tokens = temperature, max_tokens
        self.timeout_s = timeout_s
        self._gate = asyncio.Semaphore(concurrency)
        self._connections = concurrency + 8
        self._openai = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=openai.Timeout(timeout_s),
            # no certificate store to load for a plain-http endpoint (a local vLLM, the test server)
            http_client=openai.DefaultAioHttpClient(verify=not str(base_url).startswith("http://")),
        )
        self._url = str(self._openai.base_url).rstrip("/") + "/chat/completions"
        probe_platform()  # the default headers below run ``uname -p``: not with this process's secrets
        defaults = {k: v for k, v in self._openai.default_headers.items() if isinstance(v, str)}
        self._headers = {**defaults, **self._openai.auth_headers}
        self._session: aiohttp.ClientSession | None = None  # made inside the event loop that uses it
        self._encoder = BodyEncoder()
        # per schema object (held here, so its id stays its own): its response_format and its instruction
        self._formats: dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any], str]] = {}
        # The proxy the environment names for the endpoint (HTTP(S)_PROXY, NO_PROXY), as the openai client
        # honours it, looked up once: aiohttp's trust_env would look for a netrc file in a thread per request.
        self._proxy = proxy_for(self._url)

    @property
    def openai(self) -> openai.AsyncOpenAI:
        """The underlying openai client (batch mode uploads files and manages batches through it)."""
        return self._openai

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._openai.close()

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        json_schema: dict[str, Any] | None = None,
        schema_name: str = "reply",
    ) -> ChatResult:
        """One completion (retried as needed); raises BudgetExceeded, EndpointRejected or RequestFailed."""
        async with self._gate:
            tries = 0
            while True:
                self.ledger.check()
                tries += 1
                self.stats.requests += 1
                sent_schema = json_schema is not None and self.sends_schema
                try:
                    return await self._once(messages, json_schema, schema_name, tries)
                except (*TRANSPORT_ERRORS, MalformedResponse) as exc:
                    if sent_schema and self.structured == "auto" and refuses_response_format(exc):
                        if not self.schema_refused:  # several requests in flight may learn it at once
                            self.schema_refused = True
                            self.stats.schema_fallbacks += 1
                        continue
                    retry, wait_hint, reason = retryable(exc)
                    self._count(reason)
                    per_request = self.reject_per_request and self.ledger.calls > 0 and not about_the_endpoint(exc)
                    if not retry and not per_request:
                        raise EndpointRejected(
                            f"{self.base_url or 'OpenAI'}: {reason}",
                            hint="check the model name, base URL and API key",
                        ) from exc
                    if not retry:  # the endpoint works, but not with this request (too long, bad image)
                        raise RequestRejected(f"the endpoint refused the request: {reason}") from exc
                    if tries > self.retry.max_retries:
                        raise RequestFailed(f"{reason} after {tries} tries") from exc
                    self.stats.retries += 1
                    await asyncio.sleep(self.retry.delay(tries, wait_hint))

    @property
    def sends_schema(self) -> bool:
        """Whether a schema goes as ``response_format`` (else it is written into the prompt)."""
        return self.structured == "schema" or (self.structured == "auto" and not self.schema_refused)

    def _count(self, reason: str) -> None:
        if reason == "timeout":
            self.stats.timeouts += 1
        elif reason == "HTTP 429":
            self.stats.rate_limited += 1
        elif reason.startswith("HTTP 5"):
            self.stats.server_errors += 1

    def request_body(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None = None, name: str = "reply"
    ) -> dict[str, Any]:
        """The chat completion request for ``messages`` as this client sends it (online or in a batch)."""
        extra: dict[str, Any] = {}
        if schema is not None:
            _, response_format, rule = self._format(schema, name)
            if self.sends_schema:
                extra["response_format"] = response_format
            else:
                messages = [*messages, {"role": "user", "content": rule}]
        if self.temperature is not None:
            extra["temperature"] = self.temperature
        if self.max_tokens is not None:
            extra["max_tokens"] = self.max_tokens
        return {"model": self.model, "messages": messages, **extra}

    def _format(self, schema: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(schema, its ``response_format``, its instruction), made once per schema: the schema is taken
        as fixed once sent (the response format is a :class:`~aesdata.llm.body.Fixed` dict, its JSON
        written once)."""
        key = (id(schema), name)
        known = self._formats.get(key)
        if known is None or known[0] is not schema:
            response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}
            known = (schema, Fixed(response_format), instruct_schema([], schema)[0]["content"])
            if len(self._formats) >= 16:  # a caller making a new schema per request: keep a few
                self._formats.clear()
            self._formats[key] = known
        return known

    async def _once(
        self, messages: list[dict[str, Any]], schema: dict[str, Any] | None, name: str, tries: int
    ) -> ChatResult:
        # The body is serialised here and the reply read here, over aiohttp (see the module doc).
        body = self._encoder.encode(self.request_body(messages, schema, name))
        if self._session is None:  # its headers are the session's: not merged per request
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ttl_dns_cache=300, ssl=_tls(self._url)),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers=self._headers,
            )
        async with self._session.post(self._url, data=body, proxy=self._proxy) as response:
            raw = await response.read()
            status, headers = response.status, response.headers
        try:
            data = json.loads(raw)
        except ValueError:
            if status >= 400:
                raise StatusError(status, headers, raw.decode("utf-8", "replace")[:200]) from None
            raise MalformedResponse(f"not a chat completion: {raw[:120]!r}") from None
        if status >= 400:
            raise StatusError(status, headers, data)
        result = read_completion(data, self.prices, self.model, tries)
        self.ledger.add(result.usage)
        return result


def read_completion(data: Any, prices: PriceTable, model: str, tries: int = 1) -> ChatResult:
    """The result a chat completion body (parsed JSON) holds, priced; :class:`MalformedResponse` if none."""
    try:
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        usage = data.get("usage") or {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        finish_reason, served_by = choice.get("finish_reason"), data.get("model")
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise MalformedResponse(f"not a chat completion: {json.dumps(data)[:120]!r}") from exc
    cost = prices.cost(model, prompt, completion)
    return ChatResult(
        text=content,
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost),
        model=served_by or model,
        finish_reason=finish_reason,
        tries=tries,
    )


def _tls(url: str) -> ssl.SSLContext | bool:
    """Certificates checked against certifi's store, as the openai client (httpx) does; none for http."""
    if not url.startswith("https://"):
        return False
    return ssl.create_default_context(cafile=certifi.where())


def proxy_for(url: str) -> str | None:
    """The proxy the environment sets for ``url``, or None (none set, or the host is in NO_PROXY)."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def client_from_settings(
    cot: CotSettings,
    *,
    model: str | None = None,
    base_url: str | None = None,
    concurrency: int | None = None,
    max_cost: float | None = None,
    reject_per_request: bool = False,
) -> LLMClient:
    """A client configured from ``[cot]`` in aesdata.toml, command-line values taking precedence."""
    model = model or cot.model
    if not model:
        raise AesdataError("no model given", hint="pass --model or set cot.model in aesdata.toml")
    base_url = base_url or cot.base_url
    return LLMClient(
        model=model,
        api_key=api_key_from_env(cot.api_key_env, base_url=base_url),
        base_url=base_url,
        concurrency=concurrency or cot.concurrency,
        timeout_s=cot.timeout_s,
        retry=RetryPolicy(max_retries=cot.max_retries, backoff_s=cot.backoff_s),
        prices=PriceTable.from_mapping(cot.prices),
        max_cost=max_cost,
        structured=cot.structured,  # type: ignore[arg-type]
        reject_per_request=reject_per_request,
    )

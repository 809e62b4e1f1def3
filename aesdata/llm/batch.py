"""Batch mode: the same requests as online, sent through the endpoint's Batch API at the batch price.

A stage runs its usual per-item code (the same writer, validators and repairs as online) with a
:class:`BatchClient` in place of the online client. ``chat`` returns the stored reply of a request a
batch has answered; any other request goes into the next batch file and the item stops with
:class:`Pending`. When a batch ends, its replies are stored and the items waiting on them run again
(*replay*): what was answered returns at once, and what the item asks next (a repair, another attempt)
goes into a follow-up batch. An item is finished when its code returns; its request rows then go.

A request's ``custom_id`` is derived from the scope (stage, model, endpoint), the item, the request
body and how many identical requests the item made before it, so a replay in a later process (after a
kill, or a plain re-run) finds the same request: a re-run polls what was submitted, never resubmits it.

Each round:

1. recover: a batch recorded as being submitted but without the endpoint's id is looked up by the nonce
   in its metadata (a run killed between creating the batch and recording it) or else forgotten;
2. poll the open batches; collect those that ended: output and error files read line by line (a line
   that is not a batch result is reported and its request retried), each request settled as answered,
   to retry (429, 5xx, expired, a malformed reply, no line at all), rejected (another 4xx) or failed
   (the whole batch failed);
3. replay the items with news (every item in the first round);
4. new requests go into JSONL files of at most ``batch_max_requests`` lines / ``batch_max_bytes``; each
   request is checked against ``--max-cost`` (spent in this run + the estimate of every open batch +
   its own estimate) before it joins a file, and a file is uploaded and its batch created only then;
5. while any batch is open: wait ``batch_poll_s`` and go to 2.

A request to retry goes into a follow-up batch until it has been sent ``max_retries + 1`` times; then
the item fails as an online request does after its retries. Costs use the batch price table
(:func:`batch_prices`).
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import openai

from aesdata.config import CotSettings
from aesdata.errors import AesdataError
from aesdata.llm.client import (
    ChatResult,
    ClientStats,
    EndpointRejected,
    LLMClient,
    MalformedResponse,
    ModelPrice,
    PriceTable,
    RequestFailed,
    RequestRejected,
    StatusError,
    Usage,
    body_message,
    read_completion,
    refuses_response_format,
    retryable,
)
from aesdata.progress import Reporter
from aesdata.schema import utcnow
from aesdata.workspace import Workspace

T = TypeVar("T")

ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
#: A reply's length when ``--max-tokens`` is not given, for the ``--max-cost`` estimate only.
COMPLETION_ESTIMATE = 1000


class Pending(Exception):  # noqa: N818 (not an error: the item waits for a batch)
    """The item needs a request that a batch has not answered yet: it is replayed once it has."""


def batch_prices(cot: CotSettings) -> PriceTable:
    """``cot.batch_prices`` where given, else ``cot.prices`` times ``cot.batch_discount``."""
    share = cot.batch_discount
    table = {
        model: ModelPrice(input=p.get("input", 0.0) * share, output=p.get("output", 0.0) * share)
        for model, p in cot.prices.items()
    }
    table.update(PriceTable.from_mapping(cot.batch_prices).prices)
    return PriceTable(table)


def image_tokens(max_side: int) -> int:
    """Tokens of one image at most ``max_side`` pixels square, as OpenAI counts high detail (512 px tiles)."""
    side = min(max_side, 768)
    return 85 + 170 * math.ceil(side / 512) ** 2


def estimate_prompt_tokens(body: dict[str, Any], max_side: int) -> int:
    """A generous estimate of a request's prompt tokens: 1 per 4 characters of text, tiles per image."""
    chars = images = 0
    for msg in body["messages"]:
        content = msg["content"]
        for part in [content] if isinstance(content, str) else content:
            if isinstance(part, str):
                chars += len(part)
            elif part.get("type") == "image_url":
                images += 1
            else:
                chars += len(part.get("text", ""))
    chars += len(json.dumps(body.get("response_format") or ""))
    return math.ceil(chars / 4) + images * image_tokens(max_side)


@dataclass
class BatchStats:
    """What batch mode did in this run (the stage's summary)."""

    submitted: int = 0  # batches created
    requests: int = 0  # requests sent in them
    collected: int = 0  # batches read after they ended
    answered: int = 0
    to_retry: int = 0
    rejected: int = 0
    failed: int = 0
    bad_lines: int = 0  # lines of output / error files that are no batch result
    held: int = 0  # requests not sent: --max-cost


@dataclass
class _Replay:
    """One replay of one item: the requests it made, and those it waits on."""

    item: str
    occurrences: Counter[str] = field(default_factory=Counter)
    touched: set[str] = field(default_factory=set)
    waits: set[str] = field(default_factory=set)


_REPLAY: contextvars.ContextVar[_Replay] = contextvars.ContextVar("aesdata_batch_replay")


@dataclass
class _File:
    """A batch input file being written: custom ids (and tries) of its lines, bytes, estimated cost."""

    path: Path
    nonce: str
    lines: dict[str, tuple[str, int]] = field(default_factory=dict)  # custom_id -> (item, tries)
    bytes: int = 0
    estimate: float = 0.0


@dataclass(frozen=True)
class _Settled:
    """What a batch said about one request."""

    status: str  # answered | retry | rejected | failed
    result: ChatResult | None = None
    error: str | None = None
    schema_refused: bool = False


class LineError(ValueError):
    """A line of an output or error file that is not a batch result."""


def read_line(line: str, prices: PriceTable, model: str) -> tuple[str, _Settled]:
    """(custom_id, what happened to it) from one line of a batch's output or error file."""
    try:
        data = json.loads(line)
    except ValueError:
        raise LineError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
        raise LineError("no custom_id")
    custom_id, response, error = data["custom_id"], data.get("response"), data.get("error")
    if isinstance(response, dict) and isinstance(response.get("status_code"), int):
        status, body = response["status_code"], response.get("body")
        if status == 200:
            try:
                return custom_id, _Settled("answered", read_completion(body, prices, model))
            except MalformedResponse as exc:
                return custom_id, _Settled("retry", error=f"malformed response ({exc})")
        refusal = StatusError(status, {}, body)
        retry, _wait, reason = retryable(refusal)
        message = f"HTTP {status}: {body_message(body) or 'no message'}"
        if refuses_response_format(refusal):
            return custom_id, _Settled("retry", error=message, schema_refused=True)
        return custom_id, _Settled("retry" if retry else "rejected", error=message if retry else reason)
    if isinstance(error, dict):  # no HTTP exchange: expired, cancelled, ...
        return custom_id, _Settled("retry", error=f"{error.get('code') or 'error'}: {error.get('message') or ''}")
    raise LineError("neither a response nor an error")


class BatchClient:
    """Batch mode's stand-in for :class:`LLMClient` (``model``, ``chat``, ``stats``) and the rounds behind it.

    ``online`` is the workspace's client for the same endpoint: its settings build each request body
    exactly as online, and its openai client uploads files and creates and polls batches.
    """

    def __init__(
        self,
        ws: Workspace,
        online: LLMClient,
        *,
        stage: str,
        cot: CotSettings,
        max_side: int,
        reporter: Reporter,
        max_cost: float | None = None,
    ) -> None:
        self.ws, self.online, self.reporter = ws, online, reporter
        self.model, self.base_url = online.model, online.base_url
        self.scope = f"{stage}|{online.model}|{online.base_url or 'openai'}"
        self.prices = batch_prices(cot)
        if max_cost is not None and self.prices.price(online.model) is None:
            raise AesdataError(
                f"--max-cost needs a price for model {online.model!r}",
                hint="add it (or '*') under [cot.prices] or [cot.batch_prices] in aesdata.toml",
            )
        self.max_cost, self.max_side, self.max_retries = max_cost, max_side, cot.max_retries
        self.poll_s, self.max_requests, self.max_bytes = cot.batch_poll_s, cot.batch_max_requests, cot.batch_max_bytes
        self.stats = ClientStats()
        self.batch = BatchStats()
        self.stopped: str | None = None
        self.spent = 0.0  # answered in this run, at batch prices
        self._file: _File | None = None
        self._lock = asyncio.Lock()
        self._seen: dict[int, str] = {}  # batch row -> last status reported
        self._dir = ws.root / "cache" / "batches"

    # ------------------------------------------------------------------ what the writers call

    async def chat(
        self, messages: list[dict[str, Any]], *, json_schema: dict[str, Any] | None = None, schema_name: str = "reply"
    ) -> ChatResult:
        """The stored reply to this request, or :class:`Pending` once it is on its way into a batch."""
        replay = _REPLAY.get()
        body = self.online.request_body(messages, json_schema, schema_name)
        line_body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(line_body.encode()).hexdigest()
        nth = replay.occurrences[digest]
        replay.occurrences[digest] += 1
        custom_id = "aes-" + hashlib.sha256(f"{self.scope}\0{replay.item}\0{digest}\0{nth}".encode()).hexdigest()[:32]
        replay.touched.add(custom_id)
        row = self.ws.db.execute("SELECT * FROM llm_batch_requests WHERE custom_id = ?", (custom_id,)).fetchone()
        status = row["status"] if row is not None else None
        if status == "answered":
            reply = json.loads(row["reply"])
            usage = Usage(prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
                          cost_usd=row["cost_usd"])
            return ChatResult(text=reply["content"], usage=usage, model=reply["model"] or self.model,
                              finish_reason=reply["finish_reason"], tries=row["tries"],
                              request_id=f"{custom_id}@{row['batch']}")
        if status == "rejected":
            raise RequestRejected(f"the endpoint refused the request: {row['error']}")
        if status == "failed" or (status == "retry" and row["tries"] > self.max_retries):
            raise RequestFailed(f"{row['error']} after {row['tries']} batch(es)")
        replay.waits.add(custom_id)
        if status is None or status == "retry":
            await self._queue(custom_id, replay.item, line_body, body, row["tries"] if row is not None else 0)
        raise Pending(custom_id)

    async def aclose(self) -> None:
        await self.online.aclose()

    # ------------------------------------------------------------------ the rounds

    async def run(
        self,
        first: Iterable[T],
        again: Callable[[set[str]], Iterable[T]],
        key: Callable[[T], str],
        work: Callable[[T], Awaitable[None]],
        *,
        workers: int = 8,
    ) -> None:
        """Drive ``work`` over ``first`` through batches until no batch is open (see the module doc).

        ``work(item)`` is the stage's online per-item code; ``again(keys)`` gives the items with those
        keys once more (they are replayed when their requests are settled).
        """
        waiting: dict[str, set[str]] = {}  # item -> custom ids it waits on
        touched: dict[str, set[str]] = {}  # item -> custom ids it made, in any replay
        await self._recover()
        items: Iterable[T] = first
        while True:
            news = await self._poll()
            if waiting and news:
                items = again({item for item, ids in waiting.items() if ids & news})
            await each(items, lambda item: self._replay(item, key, work, waiting, touched), workers)
            items = ()
            await self._submit_file()
            if not self._open():
                break
            await asyncio.sleep(self.poll_s)
        if self.batch.held:
            self.stopped = "max-cost"
            self.reporter.info(
                f"--max-cost ${self.max_cost:.4f}: {self.batch.held} request(s) not submitted "
                "(raise --max-cost and run again to continue)"
            )

    async def _replay(
        self,
        item: T,
        key: Callable[[T], str],
        work: Callable[[T], Awaitable[None]],
        waiting: dict[str, set[str]],
        touched: dict[str, set[str]],
    ) -> None:
        name = key(item)
        replay = _Replay(name)
        token = _REPLAY.set(replay)
        try:
            await work(item)
        except Pending:
            waiting[name] = replay.waits
            touched.setdefault(name, set()).update(replay.touched)
            return
        finally:
            _REPLAY.reset(token)
        waiting.pop(name, None)
        done = touched.pop(name, set()) | replay.touched
        if done:  # the item is finished: a later --redo asks afresh
            with self.ws.transaction() as db:
                db.executemany("DELETE FROM llm_batch_requests WHERE custom_id = ?", [(c,) for c in done])

    def _open(self) -> list[Any]:
        return self.ws.db.execute(
            "SELECT * FROM llm_batches WHERE scope = ? AND collected_at IS NULL ORDER BY id", (self.scope,)
        ).fetchall()

    # ------------------------------------------------------------------ submitting

    async def _queue(self, custom_id: str, item: str, line_body: str, body: dict[str, Any], tries: int) -> None:
        """Add one request to the batch file being written (checked against --max-cost first)."""
        if tries > 0:
            self.stats.retries += 1
        cost = self._estimate(body)
        async with self._lock:
            current = self._file
            if current is not None and custom_id in current.lines:
                return
            if self.max_cost is not None:
                committed = self.spent + self._open_estimate() + (current.estimate if current else 0.0)
                if committed + cost > self.max_cost:
                    self.batch.held += 1
                    return
            line = json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT}, separators=(",", ":"))
            data = (line[:-1] + ',"body":' + line_body + "}\n").encode()
            if current is not None and (len(current.lines) >= self.max_requests
                                        or current.bytes + len(data) > self.max_bytes):
                await self._submit(current)
                current = None
            if current is None:
                nonce = secrets.token_hex(8)
                self._dir.mkdir(parents=True, exist_ok=True)
                current = self._file = _File(self._dir / f"{nonce}.jsonl", nonce)
                current.path.write_bytes(b"")
            with current.path.open("ab") as fh:
                fh.write(data)
            current.lines[custom_id] = (item, tries + 1)
            current.bytes += len(data)
            current.estimate += cost

    def _estimate(self, body: dict[str, Any]) -> float:
        completion = body.get("max_tokens") or COMPLETION_ESTIMATE
        return self.prices.cost(self.model, estimate_prompt_tokens(body, self.max_side), completion)

    def _open_estimate(self) -> float:
        row = self.ws.db.execute(
            "SELECT COALESCE(SUM(estimated_cost), 0) FROM llm_batches WHERE scope = ? AND collected_at IS NULL",
            (self.scope,),
        ).fetchone()
        return float(row[0])

    async def _submit_file(self) -> None:
        async with self._lock:
            if self._file is not None:
                await self._submit(self._file)

    async def _submit(self, file: _File) -> None:
        """Record, upload, create: a kill at any point leaves a row the next run adopts or forgets."""
        self._file = None
        now = utcnow().isoformat()
        with self.ws.transaction() as db:
            cur = db.execute(
                "INSERT INTO llm_batches (scope, nonce, status, requests, estimated_cost, created_at)"
                " VALUES (?, ?, 'submitting', ?, ?, ?)",
                (self.scope, file.nonce, len(file.lines), file.estimate, now),
            )
            row_id = cur.lastrowid
            db.executemany(
                "INSERT INTO llm_batch_requests (custom_id, scope, item, batch, status, tries)"
                " VALUES (?, ?, ?, ?, 'submitted', ?) ON CONFLICT(custom_id) DO UPDATE SET batch = excluded.batch,"
                " status = 'submitted', tries = excluded.tries, error = NULL",
                [(cid, self.scope, item, row_id, tries) for cid, (item, tries) in file.lines.items()],
            )
        uploaded = await self._call(
            "upload the batch file", lambda: self.online.openai.files.create(file=file.path, purpose="batch")
        )
        with self.ws.transaction() as db:
            db.execute("UPDATE llm_batches SET input_file_id = ? WHERE id = ?", (uploaded.id, row_id))
        batch = await self._create(file.nonce, uploaded.id)
        with self.ws.transaction() as db:
            db.execute("UPDATE llm_batches SET batch_id = ?, status = ? WHERE id = ?", (batch.id, batch.status, row_id))
        file.path.unlink(missing_ok=True)
        self.batch.submitted += 1
        self.batch.requests += len(file.lines)
        self.stats.requests += len(file.lines)
        self.reporter.info(f"batch {batch.id}: submitted {len(file.lines)} request(s), about ${file.estimate:.4f}")

    async def _call(
        self, what: str, make: Callable[[], Awaitable[Any]], before_retry: Callable[[], Awaitable[Any]] | None = None
    ) -> Any:
        """One management call (files, batches), retried like a chat request; a refusal stops the run.

        ``before_retry`` runs before each retry; what it returns (if not None) is taken as the result.
        """
        tries = 0
        while True:
            tries += 1
            try:
                return await make()
            except (openai.APIError, openai.APITimeoutError) as exc:
                retry, wait, reason = retryable(exc)
                if not retry or tries > self.online.retry.max_retries:
                    auth = isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError)
                    raise EndpointRejected(
                        f"{self.base_url or 'OpenAI'}: cannot {what}: {reason}",
                        hint="check the API key" if auth else
                        "the endpoint must implement the Batch API (/v1/files, /v1/batches); a re-run continues",
                    ) from exc
                if before_retry is not None and (found := await before_retry()) is not None:
                    return found
                self.stats.retries += 1
                await asyncio.sleep(self.online.retry.delay(tries, wait))

    async def _create(self, nonce: str, input_file_id: str) -> Any:
        """Create the batch; before a retry, look for it by nonce (the endpoint may have made it anyway)."""

        async def made() -> Any:
            return (await self._find({nonce}, since=time.time() - 3600)).get(nonce)

        return await self._call(
            "create the batch",
            lambda: self.online.openai.batches.create(
                input_file_id=input_file_id, endpoint=ENDPOINT, completion_window="24h",
                metadata={"aesdata_nonce": nonce},
            ),
            before_retry=made,
        )

    async def _find(self, nonces: set[str], *, since: float) -> dict[str, Any]:
        """The endpoint's batches carrying these nonces, newest first, back to ``since`` (a Unix time)."""
        found: dict[str, Any] = {}
        try:
            async for batch in self.online.openai.batches.list(limit=100):
                nonce = (batch.metadata or {}).get("aesdata_nonce")
                if nonce in nonces:
                    found[nonce] = batch
                if len(found) == len(nonces) or batch.created_at < since:
                    break
        except (openai.APIError, openai.APITimeoutError) as exc:
            raise EndpointRejected(f"{self.base_url or 'OpenAI'}: cannot list batches: {retryable(exc)[2]}",
                                   hint="a re-run tries again") from exc
        return found

    # ------------------------------------------------------------------ recovering and collecting

    async def _recover(self) -> None:
        """Batches recorded as being submitted: adopt the endpoint's batch with their nonce, or forget them."""
        rows = self.ws.db.execute(
            "SELECT * FROM llm_batches WHERE scope = ? AND batch_id IS NULL", (self.scope,)
        ).fetchall()
        for leftover in self._dir.glob("*.jsonl") if self._dir.is_dir() else ():
            leftover.unlink()  # a file a killed run was writing: its requests are asked again by the replays
        if not rows:
            return
        by_nonce = {r["nonce"]: r for r in rows}
        since = min(datetime.fromisoformat(r["created_at"]) for r in rows) - timedelta(hours=1)
        found = await self._find(set(by_nonce), since=since.timestamp())
        with self.ws.transaction() as db:
            for nonce, row in by_nonce.items():
                if nonce in found:
                    db.execute("UPDATE llm_batches SET batch_id = ?, status = ?, input_file_id = ? WHERE id = ?",
                               (found[nonce].id, found[nonce].status, found[nonce].input_file_id, row["id"]))
                    self.reporter.info(f"batch {found[nonce].id}: found again (its submit was interrupted)")
                else:
                    db.execute("DELETE FROM llm_batch_requests WHERE batch = ? AND status = 'submitted'", (row["id"],))
                    db.execute("DELETE FROM llm_batches WHERE id = ?", (row["id"],))

    async def _poll(self) -> set[str]:
        """Retrieve every open batch; collect those that ended; return the custom ids they settled."""
        news: set[str] = set()
        for row in self._open():
            batch_id = row["batch_id"]
            batch = await self._call(f"poll batch {batch_id}",
                                     lambda b=batch_id: self.online.openai.batches.retrieve(b))
            counts = batch.request_counts
            done, failed, total = (counts.completed, counts.failed, counts.total) if counts else (0, 0, row["requests"])
            if self._seen.get(row["id"]) != f"{batch.status} {done} {failed}":
                self._seen[row["id"]] = f"{batch.status} {done} {failed}"
                self.reporter.info(f"batch {batch.id}: {batch.status} ({done}/{total} done, {failed} failed)")
            with self.ws.transaction() as db:
                db.execute("UPDATE llm_batches SET status = ?, completed = ?, failed = ? WHERE id = ?",
                           (batch.status, done, failed, row["id"]))
            if batch.status in TERMINAL:
                news |= await self._collect(row, batch)
        return news

    async def _collect(self, row: Any, batch: Any) -> set[str]:
        """Read an ended batch's files and settle each of its requests, in one transaction."""
        ids = {r[0] for r in self.ws.db.execute(
            "SELECT custom_id FROM llm_batch_requests WHERE batch = ? AND status = 'submitted'", (row["id"],)
        )}
        settled: dict[str, _Settled] = {}
        if batch.status == "failed":
            errors = (batch.errors.data or []) if batch.errors else []
            reasons = "; ".join(e.message or e.code or "" for e in errors[:3])
            error = f"batch {batch.id} failed: {reasons or 'no reason given'}"
            self.reporter.problem(f"{error} ({len(ids)} request(s); a re-run submits them again)")
            settled = {cid: _Settled("failed", error=error) for cid in ids}
        for file_id, kind in ((batch.output_file_id, "output"), (batch.error_file_id, "error")):
            if not file_id:
                continue
            content = await self._call(f"download batch {batch.id}'s {kind} file",
                                       lambda f=file_id: self.online.openai.files.content(f))
            for n, line in enumerate(content.text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    custom_id, outcome = read_line(line, self.prices, self.model)
                except LineError as exc:
                    self.batch.bad_lines += 1
                    self.reporter.problem(f"batch {batch.id} {kind} file line {n}: {exc} (its request is sent again)")
                    continue
                if custom_id in ids:  # anything else is not ours (or its item finished meanwhile)
                    settled[custom_id] = outcome
        for custom_id in ids - settled.keys():
            settled[custom_id] = _Settled("retry", error=f"no result for it in batch {batch.id}")
        self._store(row, batch, settled)
        return set(settled)

    def _store(self, row: Any, batch: Any, settled: dict[str, _Settled]) -> None:
        with self.ws.transaction() as db:
            for custom_id, s in settled.items():
                r = s.result
                reply = None if r is None else json.dumps(
                    {"content": r.text, "finish_reason": r.finish_reason, "model": r.model}
                )
                db.execute(
                    "UPDATE llm_batch_requests SET status = ?, reply = ?, error = ?, prompt_tokens = ?,"
                    " completion_tokens = ?, cost_usd = ? WHERE custom_id = ?",
                    (s.status, reply, s.error, r.usage.prompt_tokens if r else None,
                     r.usage.completion_tokens if r else None, r.usage.cost_usd if r else None, custom_id),
                )
                if r is not None:
                    self.spent += r.usage.cost_usd
                if s.schema_refused and not self.online.schema_refused and self.online.structured == "auto":
                    self.online.schema_refused = True  # later requests carry the schema in the prompt
                    self.online.stats.schema_fallbacks += 1
            db.execute(
                "UPDATE llm_batches SET status = ?, output_file_id = ?, error_file_id = ?, collected_at = ?"
                " WHERE id = ?",
                (batch.status, batch.output_file_id, batch.error_file_id, utcnow().isoformat(), row["id"]),
            )
        outcomes = Counter(s.status for s in settled.values())
        self.batch.collected += 1
        self.batch.answered += outcomes["answered"]
        self.batch.to_retry += outcomes["retry"]
        self.batch.rejected += outcomes["rejected"]
        self.batch.failed += outcomes["failed"]


async def each(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run ``work`` on every item with ``workers`` tasks pulling from one iterator, in order of arrival.

    Each item goes to exactly one worker; an error a worker does not handle stops every worker and is
    raised (a rejected endpoint, an exhausted budget, Ctrl-C). Shared by batch replay and eval's asking.
    """
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await work(item)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, workers))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def open_batch_client(
    ws: Workspace | None,
    online: LLMClient,
    *,
    stage: str,
    cot: CotSettings,
    max_side: int,
    reporter: Reporter,
    max_cost: float | None,
) -> BatchClient:
    """The batch client of a stage; batch mode records its batches in a workspace, so it needs one."""
    if ws is None:
        raise AesdataError("--batch needs a workspace (its batches are recorded there)",
                           hint="run inside a workspace (-w DIR), or drop --batch")
    return BatchClient(ws, online, stage=stage, cot=cot, max_side=max_side, reporter=reporter, max_cost=max_cost)


"""The ``cot`` stage: write one rationale per labelled sample and mode, resumably.

# 1. select the labelled samples that have no stored rationale in this mode (``--redo failed`` adds
#    the failed ones, ``--redo stale`` those written from other prompt templates than the current ones,
#    ``--redo all`` every one); ``--limit`` keeps the first N;
# 2. write each one: template and manual offline, the model modes through a bounded async client;
# 3. store each result in its own transaction as soon as it is ready (one row per sample and mode),
#    so a run killed at any point keeps what it finished and a re-run does only the rest.

A sample whose requests still fail after every retry gets no row (a re-run retries it); a run that
reaches ``--max-cost`` stops starting samples and lets those in flight finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from aesdata import store
from aesdata.cot.llm import LLMWriter
from aesdata.cot.manual import manual_rationale
from aesdata.cot.prompts import mode_hash
from aesdata.cot.template import template_rationale
from aesdata.cot.validate import Limits
from aesdata.errors import AesdataError, InputRejected
from aesdata.llm import ledger
from aesdata.llm.batch import BatchClient, open_batch_client
from aesdata.llm.client import (
    BudgetExceeded,
    ChatResult,
    LLMClient,
    RequestFailed,
    RequestRejected,
    client_from_settings,
)
from aesdata.llm.images import ImageEncoder, image_cache
from aesdata.progress import LogReporter, Reporter, Task
from aesdata.schema import COT_MODES, CotMode, Label, Rationale, Sample
from aesdata.workspace import RunRecorder, Workspace

Redo = Literal["failed", "stale", "all"]
#: Images rendered ahead of the requests, per request in flight (a sample has five).
_AHEAD = 20
REDO: tuple[Redo, ...] = get_args(Redo)


@dataclass(frozen=True)
class CotOptions:
    """What one ``aesdata cot`` invocation asks for; ``None`` means the workspace setting."""

    mode: CotMode = "template"
    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    limit: int | None = None
    max_cost: float | None = None
    max_side: int | None = None
    attempts: int | None = None
    redo: Redo | None = None
    limits: Limits = Limits()
    batch: bool = False  # through the endpoint's Batch API (aesdata.llm.batch)

    def __post_init__(self) -> None:
        if self.mode not in COT_MODES:
            raise AesdataError(f"--mode {self.mode!r}: not a mode (choose from {', '.join(COT_MODES)})")
        if self.redo is not None and self.redo not in REDO:
            raise AesdataError(f"--redo {self.redo!r}: expected one of {', '.join(REDO)}")
        if self.limits.min_chars > self.limits.max_chars:
            raise AesdataError("--min-chars must not exceed --max-chars")


def _redo(redo: Redo | None, status: str, prompt_hash: str | None, current: str) -> bool:
    return redo == "all" or (redo == "failed" and status == "failed") or (redo == "stale" and prompt_hash != current)


def select(ws: Workspace, mode: CotMode, redo: Redo | None, limit: int | None) -> list[tuple[Sample, Label]]:
    """Labelled samples still to do in ``mode`` (labels are read only for those, up to ``limit``)."""
    rows = ws.db.execute("SELECT sample_id, status, prompt_hash FROM rationales WHERE mode = ?", (mode,))
    stored = {r["sample_id"]: (r["status"], r["prompt_hash"]) for r in rows.fetchall()}
    current = mode_hash(mode)
    todo = []
    for sample in store.iter_samples(ws.db):
        if limit is not None and len(todo) >= limit:
            break
        if sample.id in stored and not _redo(redo, *stored[sample.id], current):
            continue
        label = store.get_label(ws.db, sample.id)
        if label is not None:
            todo.append((sample, label))
    return todo


def _store(ws: Workspace, rationale: Rationale, run: RunRecorder, task: Task) -> None:
    with ws.transaction() as db:
        store.upsert_rationale(db, rationale)
    run.count(rationale.status)
    task.advance()


def _offline(ws: Workspace, opts: CotOptions, todo: list[tuple[Sample, Label]], run: RunRecorder, task: Task) -> None:
    for sample, label in todo:
        if opts.mode == "template":
            rationale = template_rationale(sample.id, label.judgement, opts.limits)
        else:
            found = manual_rationale(sample.id, label.judgement, store.get_annotations(ws.db, sample.id), opts.limits)
            if found is None:
                run.count("no_annotator_text")
                task.advance()
                continue
            rationale = found
        _store(ws, rationale, run, task)


class _ModelRun:
    """State of one model-mode run: the client, the writer, the ledger writes, the stop flag."""

    def __init__(
        self, ws: Workspace, opts: CotOptions, client: LLMClient | BatchClient, run: RunRecorder, reporter: Reporter
    ) -> None:
        cot = ws.settings.cot
        self.ws, self.opts, self.client, self.run, self.reporter = ws, opts, client, run, reporter
        self.encoder = ImageEncoder(ws.blobs, max_side=opts.max_side or cot.max_side, cache_dir=image_cache(ws))
        self.writer = LLMWriter(
            client, opts.mode, limits=opts.limits, attempts=opts.attempts or cot.attempts, on_call=self._ledger
        )
        self.stopped: str | None = None

    def _ledger(self, sample_id: str, result: ChatResult, attempt: int, kind: str, agreed: bool | None) -> None:
        call = ledger.Call(
            self.run.id, sample_id, self.opts.mode, self.client.model, attempt, kind, result.usage, agreed,
            result.request_id,
        )
        with self.ws.transaction() as db:
            ledger.record(db, call)

    def _shas(self, sample: Sample) -> list[str]:
        return [sample.source_id, *store.candidate_shas(self.ws.db, sample.id)]

    @asynccontextmanager
    async def _rendering(self, todo: list[tuple[Sample, Label]], ahead: int) -> AsyncIterator[None]:
        """The samples' images rendered ahead, in the order they will be asked for, while requests run."""
        job = asyncio.create_task(
            self.encoder.render_ahead((sha for sample, _ in todo for sha in self._shas(sample)), ahead=ahead)
        )
        try:
            yield
        finally:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            self.encoder.close()

    async def _images(self, sample: Sample) -> list[str]:
        """Data URLs of the source then candidates A-D; :class:`InputRejected` when one is unusable."""
        shas = self._shas(sample)
        if len(shas) != 5:
            raise InputRejected(f"sample {sample.id}: {len(shas) - 1} candidates, not 4")
        try:
            return await self.encoder.urls(shas)
        except OSError as exc:  # a blob deleted or damaged since it was stored
            raise InputRejected(f"sample {sample.id}: cannot read an image: {exc}") from None

    async def one(self, sample: Sample, label: Label, task: Task) -> None:
        try:
            rationale = await self.writer.write(sample.id, label.judgement, await self._images(sample))
        except InputRejected as exc:
            self.reporter.problem(str(exc))
            self.run.count("skipped")
            task.advance()
            return
        except RequestRejected as exc:
            rationale = self.writer.refused(sample.id, exc)
        except RequestFailed as exc:
            self.reporter.problem(f"sample {sample.id}: {exc} (no result stored; a re-run retries it)")
            self.run.count("errors")
            task.advance()
            return
        _store(self.ws, rationale, self.run, task)

    async def all(self, todo: list[tuple[Sample, Label]], task: Task, workers: int) -> None:
        queue = list(reversed(todo))

        async def worker() -> None:
            while queue and self.stopped is None:
                sample, label = queue.pop()
                try:
                    await self.one(sample, label, task)
                except BudgetExceeded as exc:
                    if self.stopped is None:  # said once, however many workers reach the cap
                        self.reporter.info(f"{exc}; {exc.hint}")
                    self.stopped = "max-cost"

        # Twice as many samples in progress as requests in flight: the extra ones build their prompts
        # while they wait, so a freed request slot is refilled at once; images are rendered further ahead.
        async with self._rendering(todo, ahead=_AHEAD * workers):
            tasks = [asyncio.create_task(worker()) for _ in range(min(2 * workers, len(todo)) or 1)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.client.aclose()

    async def batch(self, todo: list[tuple[Sample, Label]], task: Task) -> None:
        """The same per-sample work, its requests sent through the Batch API (see :mod:`aesdata.llm.batch`)."""
        assert isinstance(self.client, BatchClient)
        try:
            async with self._rendering(todo, ahead=_AHEAD * 8):
                await self.client.run(
                    todo,
                    lambda ids: (item for item in todo if item[0].id in ids),
                    lambda item: item[0].id,
                    lambda item: self.one(item[0], item[1], task),
                )
        finally:
            await self.client.aclose()
        self.stopped = self.client.stopped


def run_cot(ws: Workspace, opts: CotOptions, *, reporter: Reporter | None = None) -> dict[str, Any]:
    """Write rationales for the labelled samples still missing one in ``opts.mode``; return a summary."""
    reporter = reporter or LogReporter()
    cot = ws.settings.cot
    model_mode = opts.mode in ("answer-driven", "automated")
    client = (
        client_from_settings(
            cot,
            model=opts.model,
            base_url=opts.base_url,
            concurrency=opts.concurrency,
            max_cost=None if opts.batch else opts.max_cost,  # batch mode checks it before submitting
            reject_per_request=True,  # a sample the endpoint refuses is stored as failed, the run goes on
        )
        if model_mode
        else None
    )
    params = {
        "mode": opts.mode,
        "limit": opts.limit,
        "redo": opts.redo,
        "max_cost": opts.max_cost,
        "model": client.model if client else None,
        "base_url": client.base_url if client else None,
        "concurrency": opts.concurrency or cot.concurrency,
        "max_side": opts.max_side or cot.max_side,
        "batch": opts.batch,
    }
    with ws.run("cot", params) as run:
        todo = select(ws, opts.mode, opts.redo, opts.limit)
        stopped = None
        agreement = None
        with reporter.task(f"cot {opts.mode}", total=len(todo)) as task:
            if client is None:
                _offline(ws, opts, todo, run, task)
            else:
                asker = client if not opts.batch else open_batch_client(
                    ws, client, stage=f"cot {opts.mode}", cot=cot, reporter=reporter,
                    max_side=opts.max_side or cot.max_side, max_cost=opts.max_cost,
                )
                model_run = _ModelRun(ws, opts, asker, run, reporter)
                workers = opts.concurrency or cot.concurrency
                asyncio.run(model_run.batch(todo, task) if opts.batch else model_run.all(todo, task, workers))
                stopped = model_run.stopped
                agreement = model_run.writer.agreement.rate
        summary: dict[str, Any] = {
            "mode": opts.mode,
            "selected": len(todo),
            "valid": run.counts.get("valid", 0),
            "failed": run.counts.get("failed", 0),
        }
        for key in ("no_annotator_text", "skipped", "errors"):
            if run.counts.get(key):
                summary[key] = run.counts[key]
        if client is not None:
            spent = ledger.totals(ws.db, run_id=run.id)
            summary.update(
                model=client.model,
                calls=spent["calls"],
                prompt_tokens=spent["prompt_tokens"],
                completion_tokens=spent["completion_tokens"],
                cost_usd=round(spent["cost_usd"], 6),
                retries=model_run.client.stats.retries,
            )
            if isinstance(model_run.client, BatchClient):
                summary.update({f"batch_{k}": v for k, v in asdict(model_run.client.batch).items()})
            if opts.mode == "automated":
                summary["agreement_rate"] = None if agreement is None else round(agreement, 4)
            if stopped:
                summary["stopped"] = stopped
        return summary

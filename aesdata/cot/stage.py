"""The ``cot`` stage: write one rationale per labelled sample and mode, resumably and side by side.

# 1. select the labelled samples to do in this mode: those without a stored rationale, and those whose
#    rationale is *stale by label* (written from another judgement than the label's now: it argues for
#    defects the sample no longer has, so publish leaves it out and the sample is as good as missing
#    one). ``--redo stale`` adds those written from other prompt templates too (still true for their
#    label, so rewriting them is the user's call: it costs money), ``--redo failed`` the failed ones,
#    ``--redo all`` every one. Samples whose label waits for review are left out unless
#    ``include_review`` (``--include-review``): publish leaves them out until people settle them.
#    ``--limit`` keeps the first N;
# 2. claim each sample before working on it (:mod:`aesdata.claims`): runs at the same time split the
#    work, and one that finds a sample claimed, or changed since it selected it, leaves it alone;
# 3. write each one: template and manual offline, the model modes through a bounded async client, each
#    request holding its share of ``--max-cost`` first (:class:`aesdata.llm.ledger.Budget`: the cap
#    holds for all runs on the workspace at once);
# 4. store each result and drop its claim in one transaction as soon as it is ready (one row per sample
#    and mode, with the hashes of its prompt and of the judgement it was written from), so a run killed
#    at any point keeps what it finished and a re-run does only the rest; the replies a killed run had
#    received for samples it did not store are kept (:mod:`aesdata.llm.replies`), and the re-run takes
#    them instead of paying for them again.

A sample whose requests still fail after every retry gets no row (a re-run retries it); a run that
reaches ``--max-cost`` stops starting requests and lets those in flight finish.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import takewhile
from typing import Any, TypeVar, get_args

from aesdata import assets, claims, store
from aesdata.cot.llm import LLMWriter
from aesdata.cot.manual import manual_rationale
from aesdata.cot.prompts import mode_hash
from aesdata.cot.template import template_rationale
from aesdata.cot.validate import Limits
from aesdata.errors import AesdataError, InputRejected
from aesdata.llm import ledger, replies
from aesdata.llm import loop as model_loop
from aesdata.llm.batch import BatchClient, each, open_batch_client
from aesdata.llm.client import (
    BudgetExceeded,
    ChatResult,
    LLMClient,
    RequestFailed,
    RequestRejected,
    client_from_settings,
)
from aesdata.llm.commits import Committer, Unit
from aesdata.llm.images import ImageEncoder, image_cache
from aesdata.progress import LogReporter, Reporter, Task
from aesdata.schema import COT_MODES, CotMode, Judgement, Rationale, Redo, Sample
from aesdata.workspace import DB_FILE, RunRecorder, Workspace

#: Images rendered ahead of the requests, per request in flight (a sample has five).
_AHEAD = 20
#: Samples started per step of the event loop (see ``_ModelRun._turn``).
_PACE = 4
REDO: tuple[Redo, ...] = get_args(Redo)
T = TypeVar("T")


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
    include_review: bool = False
    limits: Limits = Limits()
    batch: bool = False  # through the endpoint's Batch API (aesdata.llm.batch)

    def __post_init__(self) -> None:
        if self.mode not in COT_MODES:
            raise AesdataError(f"--mode {self.mode!r}: not a mode (choose from {', '.join(COT_MODES)})")
        if self.redo is not None and self.redo not in REDO:
            raise AesdataError(f"--redo {self.redo!r}: expected one of {', '.join(REDO)}")
        if self.limits.min_chars > self.limits.max_chars:
            raise AesdataError("--min-chars must not exceed --max-chars")


@dataclass(frozen=True)
class Todo:
    """A sample to write, its label's row, its stored rationale row as selected (``None``: none), and
    the blobs a model is shown (source, then candidates A-D as stored)."""

    sample: Sample
    judgement_json: str
    state: tuple[Any, ...] | None
    shas: tuple[str, ...] = ()

    @cached_property
    def judgement(self) -> Judgement:
        """The label's judgement (all a rationale is written from), parsed when the sample is taken up:
        validating a thousand labels first delayed every request, and a whole label costs three times more."""
        return Judgement.model_validate_json(self.judgement_json)

    @cached_property
    def judgement_hash(self) -> str:
        """What a rationale written from it records (:func:`store.judgement_hash`), once per sample: the
        store step and the run's count of stale labels both need it."""
        return store.judgement_hash(self.judgement)

    @cached_property
    def stale_label(self) -> bool:
        """Its stored rationale was written from another judgement than the label's now (or one not
        recorded: written before it was): it argues for defects the sample no longer has."""
        return self.state is not None and self.state[2] != self.judgement_hash


def _state(db: sqlite3.Connection, sample_id: str, mode: CotMode) -> tuple[Any, ...] | None:
    row = db.execute(
        "SELECT status, prompt_hash, judgement_hash, created_at FROM rationales WHERE sample_id = ? AND mode = ?",
        (sample_id, mode),
    ).fetchone()
    return tuple(row) if row else None


def _wanted(redo: Redo | None, item: Todo, prompt: str) -> bool:
    """Rewrite the stored rationale of ``item``? (``--redo all`` needs no label read to say yes.)"""
    assert item.state is not None
    status, prompt_hash, _, _ = item.state
    return (
        redo == "all"
        or item.stale_label
        or (redo == "failed" and status == "failed")
        or (redo == "stale" and prompt_hash != prompt)
    )


def select(
    ws: Workspace, mode: CotMode, redo: Redo | None, limit: int | None, *, include_review: bool = False
) -> tuple[list[Todo], int]:
    """(samples to do in ``mode`` up to ``limit``, samples left out because their label awaits review)."""
    prompt = mode_hash(mode)
    todo: list[Todo] = []
    review = 0
    for row in store.iter_labelled_rows(ws.db, mode):
        if limit is not None and len(todo) >= limit:
            break
        if row.needs_review and not include_review:
            review += 1
            continue
        item = Todo(row.sample, row.judgement_json, row.rationale, (row.sample.source_id, *row.candidates))
        if row.rationale is None or _wanted(redo, item, prompt):
            todo.append(item)
    return todo, review


class _Work:
    """What every mode shares: the claims on samples, storing a result with its judgement hash.

    Each step is a *unit* (a function of a connection, run in a write transaction): the offline modes
    run it at once (:meth:`now`), the model modes hand it to the run's committer, which commits many
    in one transaction (:mod:`aesdata.llm.commits`). The counts are kept when a unit has committed.
    """

    def __init__(self, ws: Workspace, mode: CotMode, me: claims.Owner, run: RunRecorder, task: Task) -> None:
        self.ws, self.mode, self.me, self.run, self.task = ws, mode, me, run, task
        self.scope = f"cot:{mode}"

    def now(self, unit: Callable[[sqlite3.Connection], T]) -> T:
        with self.ws.transaction() as db:
            return unit(db)

    def claim(self, item: Todo) -> Unit:
        """Claim the sample unless another run holds it or wrote its rationale since it was selected."""
        claim_all = self.claim_all([item])
        return lambda db: claim_all(db)[0]

    def claim_all(self, items: list[Todo]) -> Unit:
        """:meth:`claim` of each sample, in one unit (a list of outcomes)."""
        mode = self.mode

        def unchanged(item: Todo) -> Callable[[sqlite3.Connection], bool]:
            sample_id = item.sample.id
            return lambda db: _state(db, sample_id, mode) == item.state

        keys = [(item.sample.id, unchanged(item)) for item in items]
        return lambda db: self.me.claim_all_in(db, self.scope, keys)

    def claimed(self, ok: bool) -> bool:
        if not ok:
            self.run.count("elsewhere")
            self.task.advance()
        return ok

    def store(self, item: Todo, rationale: Rationale, budget: ledger.Budget | None = None) -> Unit:
        """Store the result and drop the claim (and the sample's budget hold, if any) together."""

        def unit(db: sqlite3.Connection) -> None:
            stamped = rationale.model_copy(update={"judgement_hash": item.judgement_hash})
            store.upsert_rationale(db, stamped)
            self.drop(item, budget)(db)

        return unit

    def stored(self, rationale: Rationale) -> None:
        self.run.count(rationale.status)
        self.task.advance()

    def drop(self, item: Todo, budget: ledger.Budget | None = None) -> Unit:
        """Give the sample up without a result (a re-run tries it again)."""

        def unit(db: sqlite3.Connection) -> None:
            self.me.release(db, self.scope, item.sample.id)
            if budget is not None:  # a request that raised keeps no hold
                budget.release(db, item.sample.id)

        return unit

    def dropped(self, count: str) -> None:
        self.run.count(count)
        self.task.advance()


def _offline(work: _Work, opts: CotOptions, todo: list[Todo]) -> None:
    for item in todo:
        if not work.claimed(work.now(work.claim(item))):
            continue
        sample, judgement = item.sample, item.judgement
        if opts.mode == "template":
            rationale = template_rationale(sample.id, judgement, opts.limits)
        else:
            annotations = store.get_annotations(work.ws.db, sample.id)
            found = manual_rationale(sample.id, judgement, annotations, opts.limits)
            if found is None:
                work.now(work.drop(item))
                work.dropped("no_annotator_text")
                continue
            rationale = found
        work.now(work.store(item, rationale))
        work.stored(rationale)


class _ModelRun:
    """State of one model-mode run: the client, the writer, the ledger and budget, the stop flag.

    It is the writer's :class:`~aesdata.cot.llm.Meter`. A request takes one of ``slots`` (the requests in
    flight) before it is sent and gives it back with its reply; it also takes room in ``unledgered``, a
    quarter larger, which it gives back once its reply's ledger row has committed (or it raised): requests
    asked for and not yet in the ledger are never more than a quarter over the requests in flight, so a
    kill loses no more than that. (Waiting for the commit before the next request was sent kept the two
    equal, and cost every slot the committer's round trip: about a point of ideal at 256 in flight, in
    alternating runs of the cot benchmark's workload.) A sample's result is handed to the committer only
    after its ledger rows committed. Online, each reply is kept with its ledger row until the sample is stored
    (:mod:`aesdata.llm.replies`): a re-run after a kill takes those instead of asking again.
    """

    def __init__(
        self,
        work: _Work,
        opts: CotOptions,
        client: LLMClient | BatchClient,
        budget: ledger.Budget | None,
        reporter: Reporter,
        committer: Committer,
        encoder: ImageEncoder,
        slots: int,
    ) -> None:
        ws, cot = work.ws, work.ws.settings.cot
        self.ws, self.work, self.opts, self.client, self.budget = ws, work, opts, client, budget
        self.reporter, self.committer, self.encoder = reporter, committer, encoder
        self.slots = asyncio.Semaphore(slots)
        self.unledgered = asyncio.Semaphore(slots + max(1, slots // 4))
        self._round, self._asked = slots, 0  # requests in the first round; requests handed a slot so far
        self._first_round = asyncio.Event()  # set once the first round has its slots (or a sample ended)
        self.writer = LLMWriter(
            client, opts.mode, limits=opts.limits, attempts=opts.attempts or cot.attempts, meter=self
        )
        self.ledgered: dict[str, list[asyncio.Future[None]]] = {}  # sample -> its ledger rows being committed
        self._claiming: list[tuple[Todo, asyncio.Future[bool]]] = []  # claims asked for in this step of the loop
        self._turns: collections.deque[asyncio.Future[None]] = collections.deque()  # samples waiting to start
        self.stopped: str | None = None
        # online only: batch mode keeps its replies with its batches
        self.kept_replies = None if opts.batch else replies.Kept.read(ws.db, f"cot {opts.mode}")
        self._guards: dict[str, str] = {}  # sample -> what its requests were built from (replies.guard)

    # ------------------------------------------------------------------ the meter

    def kept(self, sample_id: str, attempt: int, kind: str) -> ChatResult | None:
        if self.kept_replies is None:
            return None
        return self.kept_replies.take(self.ws.db, sample_id, attempt, kind, self._guards[sample_id])

    async def before(self, sample_id: str, kind: str) -> None:
        await self.unledgered.acquire()
        try:
            await self.slots.acquire()
        except BaseException:
            self.unledgered.release()
            raise
        self._asked += 1
        if self._asked >= self._round:
            self._first_round.set()
        try:
            if self.budget is not None:
                await self.budget.hold(sample_id, kind)
        except BaseException:
            self.unanswered(sample_id)
            raise

    def unanswered(self, sample_id: str) -> None:
        self.slots.release()
        self.unledgered.release()

    def answered(self, sample_id: str, result: ChatResult, attempt: int, kind: str, agreed: bool | None) -> None:
        call = ledger.Call(
            self.work.run.id, sample_id, self.opts.mode, self.client.model, attempt, kind, result.usage, agreed,
            session=self.work.me.session, request_id=result.request_id,
        )
        budget, kept = self.budget, self.kept_replies
        guard = self._guards[sample_id]

        def unit(db: sqlite3.Connection) -> None:
            ledger.record(db, call)
            if kept is not None:
                replies.keep(db, kept.scope, sample_id, attempt, kind, guard, result)
            if budget is not None:
                budget.settle(db, sample_id, kind, result.usage)

        self.slots.release()
        committed = self.committer.submit(unit, then=self._row_committed)
        self.ledgered.setdefault(sample_id, []).append(committed)

    def _row_committed(self, committed: asyncio.Future[None]) -> None:
        self.unledgered.release()
        if not committed.cancelled():
            committed.exception()  # seen here; the sample's store step raises it

    async def _ledger_committed(self, sample_id: str) -> None:
        """Wait for the sample's ledger rows to commit (raise if one failed)."""
        await asyncio.gather(*self.ledgered.pop(sample_id, ()))

    # ------------------------------------------------------------------ the samples

    @asynccontextmanager
    async def _rendering(self, todo: list[Todo], workers: int) -> AsyncIterator[None]:
        """The samples' images rendered ahead, in the order they will be asked for, while requests run."""
        shas = (sha for item in todo for sha in item.shas)
        job = asyncio.create_task(
            self.encoder.render_ahead(shas, ahead=_AHEAD * workers)
        )
        try:
            yield
        finally:
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
            self.encoder.close()

    async def _images(self, item: Todo) -> list[str]:
        """Data URLs of the source then candidates A-D; :class:`InputRejected` when one is unusable."""
        if len(item.shas) != 5:
            raise InputRejected(f"sample {item.sample.id}: {len(item.shas) - 1} candidates, not 4")
        try:
            return await self.encoder.urls(item.shas)
        except OSError as exc:  # a blob deleted or damaged since it was stored
            raise InputRejected(f"sample {item.sample.id}: cannot read an image: {exc}") from None

    async def _drop(self, item: Todo, count: str) -> None:
        self.ledgered.pop(item.sample.id, None)
        await self.committer.run(self.work.drop(item, self.budget))
        self.work.dropped(count)

    async def _claim(self, item: Todo) -> bool:
        """Claim the sample. The claims asked for in one step of the loop go in one unit (at the start, the
        whole first round): claimed one unit each, the first round's 256 claims took the committer over half
        a second, each statement waiting for the busy loop to hand back the GIL, and the requests waited."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._claiming.append((item, future))
        if len(self._claiming) == 1:
            loop.call_soon(self._claim_asked)
        return await future

    def _claim_asked(self) -> None:
        asked, self._claiming = self._claiming, []
        waiting = [future for _, future in asked]

        def settle(done: asyncio.Future[list[bool]]) -> None:
            failed = done.exception()
            for future, ok in zip(waiting, [None] * len(waiting) if failed else done.result(), strict=True):
                if future.done():  # its worker was cancelled (an owner's claims all go when the run ends)
                    continue
                if failed is not None:
                    future.set_exception(failed)
                else:
                    future.set_result(bool(ok))

        self.committer.submit(self.work.claim_all([item for item, _ in asked]), then=settle)

    async def _turn(self) -> None:
        """Wait for this sample's turn to start: ``_PACE`` samples a step of the event loop. Started all at once,
        the first round's 256 claims, image reads and prompts took one step of 0.2 s before any connection
        could complete, and later a wave of replies also started as many new samples in the step that
        received them, so the slots those replies gave back waited 40 ms on average to be refilled (pacing:
        15-30 ms; about 2 points of ideal in `make bench ONLY=cot` at 256 in flight over 4 rounds). In the
        first round, 16 a step still made each step long enough that opening a connection (a few steps)
        took over 100 ms, and every first request was that late: 4 a step, 30 ms (2 to 3 points, measured
        on the cot benchmark's workload)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._turns.append(future)
        if len(self._turns) == 1:
            loop.call_soon(self._next_turns)
        await future

    def _next_turns(self) -> None:
        given = 0
        while self._turns and given < _PACE:
            future = self._turns.popleft()
            if not future.done():
                future.set_result(None)
                given += 1
        if self._turns:
            asyncio.get_running_loop().call_soon(self._next_turns)

    async def one(self, item: Todo) -> None:
        await self._turn()
        if not self.work.claimed(await self._claim(item)):
            return
        sample_id = item.sample.id
        self._guards[sample_id] = replies.guard(
            self.client.model, self.writer.conversation.prompt_hash, item.judgement_hash, self.encoder.max_side,
            self.encoder.quality,
        )
        try:
            await self._write(item)
        finally:
            del self._guards[sample_id]

    async def _write(self, item: Todo) -> None:
        """Write the claimed sample's rationale and store it (or drop the sample: a re-run tries it again)."""
        work, sample = self.work, item.sample
        try:
            rationale = await self.writer.write(sample.id, item.judgement, await self._images(item))
        except RequestRejected as exc:
            rationale = self.writer.refused(sample.id, exc)
        except InputRejected as exc:
            self.reporter.problem(str(exc))
            await self._drop(item, "skipped")
            return
        except RequestFailed as exc:
            self.reporter.problem(f"sample {sample.id}: {exc} (no result stored; a re-run retries it)")
            await self._drop(item, "errors")
            return
        except BaseException:  # the budget stopped it, the run is ending, or (batch) its reply is pending
            self.ledgered.pop(sample.id, None)
            dropped = self.committer.submit(work.drop(item, self.budget))  # committed by the time the run ends
            dropped.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        await self._ledger_committed(sample.id)
        stored, kept = work.store(item, rationale, self.budget), self.kept_replies

        def unit(db: sqlite3.Connection) -> None:  # the sample's kept replies go with its result
            stored(db)
            if kept is not None:
                replies.forget(db, kept.scope, sample.id)

        await self.committer.run(unit)
        work.stored(rationale)

    async def all(self, todo: list[Todo], workers: int) -> None:
        taken = 0

        async def work(item: Todo) -> None:
            nonlocal taken
            taken += 1
            try:
                if taken > workers:  # an extra sample: the first round's go out first
                    await self._first_round.wait()
                await self.one(item)
            except BudgetExceeded as exc:
                if self.stopped is None:  # said once, however many workers reach the cap
                    self.reporter.info(f"{exc}; {exc.hint}")
                self.stopped = "max-cost"
            finally:
                self._first_round.set()  # a sample of the first round that ended early (claimed elsewhere, refused)

        # Twice as many samples in progress as requests in flight: the extra ones build their prompts
        # while they wait, so a freed request slot is refilled at once; images are rendered further ahead.
        # They start once every request of the first round has its slot: before, their claims, images and
        # prompts took the loop from the first round's requests (which leave over a few hundred ms at 256).
        async with self._rendering(todo, workers):
            try:
                await each(takewhile(lambda _: self.stopped is None, todo), work, min(2 * workers, len(todo)))
            finally:
                await self.client.aclose()

    async def batch(self, todo: list[Todo]) -> None:
        """The same per-sample work, its requests sent through the Batch API (see :mod:`aesdata.llm.batch`)."""
        assert isinstance(self.client, BatchClient)
        try:
            async with self._rendering(todo, 8):
                await self.client.run(
                    todo,
                    lambda ids: (item for item in todo if item.sample.id in ids),
                    lambda item: item.sample.id,
                    self.one,
                )
        finally:
            await self.client.aclose()
        self.stopped = self.client.stopped


@assets.scoped  # prompts and their hash: the workspace's assets/ first
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
        "include_review": opts.include_review,
        "max_cost": opts.max_cost,
        "model": client.model if client else None,
        "base_url": client.base_url if client else None,
        "concurrency": opts.concurrency or cot.concurrency,
        "max_side": opts.max_side or cot.max_side,
        "batch": opts.batch,
    }
    encoder = ImageEncoder(ws.blobs, max_side=opts.max_side or cot.max_side, cache_dir=image_cache(ws))
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(encoder))
        run = stack.enter_context(ws.run("cot", params))
        with model_loop.fewer_collections(freeze=False):
            todo, review = select(ws, opts.mode, opts.redo, opts.limit, include_review=opts.include_review)
        if model_mode and todo:  # before the claims' heartbeat and the committer start their threads
            encoder.start_rendering(probe=todo[0].shas)
        me = stack.enter_context(claims.owner(ws.db, "cot"))
        stopped = None
        agreement = None
        with reporter.task(f"cot {opts.mode}", total=len(todo)) as task:
            work = _Work(ws, opts.mode, me, run, task)
            if client is None:
                _offline(work, opts, todo)
            else:
                workers = opts.concurrency or cot.concurrency
                # closed before the claims: what it still holds (ledger rows, dropped claims) commits first
                with Committer(ws.root / DB_FILE) as committer:
                    budget = (
                        None
                        if opts.max_cost is None or opts.batch  # batch mode checks it before submitting
                        else ledger.Budget(
                            ws.db, owner=me.id, session=me.session, max_cost=opts.max_cost, model=client.model,
                            mode=opts.mode, run=committer.run,
                        )
                    )
                    asker = client if not opts.batch else open_batch_client(
                        ws, client, stage=f"cot {opts.mode}", cot=cot, reporter=reporter,
                        max_side=opts.max_side or cot.max_side, max_cost=opts.max_cost,
                    )
                    model_run = _ModelRun(work, opts, asker, budget, reporter, committer, encoder, workers)
                    model_loop.run(model_run.batch(todo) if opts.batch else model_run.all(todo, workers))
                stopped = model_run.stopped
                agreement = model_run.writer.agreement.rate
        summary: dict[str, Any] = {
            "mode": opts.mode,
            "selected": len(todo),
            "valid": run.counts.get("valid", 0),
            "failed": run.counts.get("failed", 0),
        }
        stale = sum(item.stale_label for item in todo)
        for key, n in (("stale_label", stale), ("awaiting_review", review)):
            if n:
                summary[key] = n
        for key in ("elsewhere", "no_annotator_text", "skipped", "errors"):
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

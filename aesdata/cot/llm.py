"""The two model modes: ``answer-driven`` (the model is told the label) and ``automated`` (it is not).

answer-driven
    one request; a rejected reply is retried once with the validator's reasons (repair), then the
    sample is recorded as failed with those reasons and the raw output.
automated
    up to ``attempts`` independent tries; a reply is kept only when it agrees with the label. Only
    problems of form (coverage, leakage, length, unreadable JSON) are repaired: telling the model why
    its answer is wrong would hand it the label. The share of tries whose answer equals the label is
    the agreement rate (how hard the data is for that model).

Around every request the writer calls its :class:`Meter`: ``kept`` first (a reply an earlier run received
and did not use: taken instead of asking again), else ``before`` is awaited before it is sent (the stage
takes a request slot and holds its budget there), then ``answered`` with the reply, in the same step of
the event loop that received it (the stage ledgers it), or ``unanswered`` if it raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from aesdata.cot.parse import ReplyError, parse_reply, reply_schema
from aesdata.cot.prompts import Conversation
from aesdata.cot.validate import Limits, Problem, validate
from aesdata.llm.client import ChatClient, ChatResult
from aesdata.schema import CotMode, CotReply, Judgement, Rationale, RationaleStatus, Usage


class Meter(Protocol):
    """What the stage does around each request of a sample (``kind``: "first" or "repair")."""

    def kept(self, sample_id: str, attempt: int, kind: str) -> ChatResult | None:
        """The reply to this request an earlier run received and did not use, if any (it is not asked again)."""

    async def before(self, sample_id: str, kind: str) -> None:
        """Awaited before the request is sent; it may raise to stop it (the budget is spent)."""

    def unanswered(self, sample_id: str) -> None:
        """The request raised: it got no reply."""

    def answered(self, sample_id: str, result: ChatResult, attempt: int, kind: str, agreed: bool | None) -> None:
        """A reply came (``agreed``: with the label, None when it could not be read)."""


@dataclass
class Agreement:
    """Automated mode: tries whose answer could be read, and how many of those equal the label."""

    judged: int = 0
    agreed: int = 0

    @property
    def rate(self) -> float | None:
        return self.agreed / self.judged if self.judged else None


@dataclass
class _Try:
    """What one request (and its repair) came to."""

    reply: CotReply | None
    problems: list[Problem]
    raws: list[str] = field(default_factory=list)


def _check(result: ChatResult, judgement: Judgement, limits: Limits) -> tuple[CotReply | None, list[Problem]]:
    try:
        reply = parse_reply(result.text)
    except ReplyError as exc:
        cut = " (the reply was cut off at the token limit: write less)" if result.finish_reason == "length" else ""
        return None, [Problem(f"{exc}{cut}")]
    return reply, validate(reply, judgement, limits)


class LLMWriter:
    """Writes one sample's rationale in a model mode through a shared client (online or batch)."""

    def __init__(
        self,
        client: ChatClient,
        mode: CotMode,
        *,
        limits: Limits,
        attempts: int = 1,
        meter: Meter,
    ) -> None:
        if mode not in ("answer-driven", "automated"):
            raise ValueError(f"{mode} is not a model mode")
        self.client, self.mode, self.limits, self.meter = client, mode, limits, meter
        self.attempts = attempts if mode == "automated" else 1
        self.conversation = Conversation(mode, limits)
        self.agreement = Agreement()
        self._judged: set[str] = set()  # batch replies already counted (a replayed sample meets them again)

    async def write(self, sample_id: str, judgement: Judgement, images: list[str]) -> Rationale:
        """The sample's rationale, valid or failed with reasons (transport errors propagate)."""
        told = judgement if self.mode == "answer-driven" else None
        messages = self.conversation.messages(images, told)
        usage = Usage()
        errors: list[str] = []
        raws: list[str] = []
        for attempt in range(1, self.attempts + 1):
            outcome, spent = await self._attempt(sample_id, messages, judgement, attempt)
            usage = _add(usage, spent)
            raws += outcome.raws
            if outcome.reply is not None and not outcome.problems:
                return self._rationale(
                    sample_id,
                    "valid",
                    think=outcome.reply.reasoning,
                    answer=outcome.reply.final_answer,
                    observations=outcome.reply.observations,
                    attempts=len(raws),
                    usage=usage,
                )
            prefix = f"attempt {attempt}: " if self.attempts > 1 else ""
            errors += [prefix + p.reason for p in outcome.problems]
        raw = "\n\n----- next reply -----\n\n".join(raws)
        return self._rationale(sample_id, "failed", errors=errors, raw=raw, attempts=len(raws), usage=usage)

    def refused(self, sample_id: str, exc: Exception) -> Rationale:
        """A failed rationale for a sample whose request the endpoint refused (``--redo failed`` retries it)."""
        return self._rationale(sample_id, "failed", errors=[str(exc)], attempts=0)

    def _rationale(self, sample_id: str, status: RationaleStatus, **fields: Any) -> Rationale:
        return Rationale(
            sample_id=sample_id,
            mode=self.mode,
            status=status,
            model=self.client.model,
            prompt_hash=self.conversation.prompt_hash,
            **fields,
        )

    async def _attempt(
        self, sample_id: str, messages: list[dict[str, Any]], judgement: Judgement, attempt: int
    ) -> tuple[_Try, Usage]:
        first, asked = await self._ask(sample_id, attempt, "first", messages)
        reply, problems = _check(first, judgement, self.limits)
        repairable = [p for p in problems if not p.about_label] if self.mode == "automated" else problems
        repair = bool(problems) and len(repairable) == len(problems)
        self._record(sample_id, first, attempt, "first", None if repair else reply, judgement, asked)
        outcome = _Try(reply, problems, [first.text])
        spent = first.usage
        if repair:
            repair_messages = self.conversation.repair(messages, first.text, [p.reason for p in problems])
            second, asked = await self._ask(sample_id, attempt, "repair", repair_messages)
            reply, problems = _check(second, judgement, self.limits)
            self._record(sample_id, second, attempt, "repair", reply, judgement, asked)
            outcome = _Try(reply, problems, [first.text, second.text])
            spent = _add(spent, second.usage)
        return outcome, spent

    async def _ask(
        self, sample_id: str, attempt: int, kind: str, messages: list[dict[str, Any]]
    ) -> tuple[ChatResult, bool]:
        """The reply, and whether it was asked for now (False: kept from an earlier run, already ledgered)."""
        kept = self.meter.kept(sample_id, attempt, kind)
        if kept is not None:
            return kept, False
        # No await between the reply and ``answered`` (in _record): a run cancelled meanwhile would
        # have paid for a reply it never ledgered.
        await self.meter.before(sample_id, kind)
        try:
            return await self.client.chat(messages, json_schema=reply_schema(), schema_name="cot_reply"), True
        except BaseException:
            self.meter.unanswered(sample_id)
            raise

    def _record(
        self,
        sample_id: str,
        result: ChatResult,
        attempt: int,
        kind: str,
        reply: CotReply | None,
        judgement: Judgement,
        asked: bool,
    ) -> None:
        """Ledger the call (one asked for now); for the reply that ends an attempt, count agreement with the label."""
        agreed = None if reply is None else set(reply.final_answer) == set(judgement.answer)
        if agreed is not None and result.request_id not in self._judged:
            if result.request_id is not None:
                self._judged.add(result.request_id)
            self.agreement.judged += 1
            self.agreement.agreed += agreed
        if asked:
            self.meter.answered(sample_id, result, attempt, kind, agreed)


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )

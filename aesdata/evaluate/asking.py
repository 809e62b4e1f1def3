"""Ask a model the screening question K times per sample, many samples at once, with bounded memory.

Built on the shared :class:`aesdata.llm.client.LLMClient` (concurrency, retries honouring
Retry-After, timeouts, cost ledger). What is added here is only what eval and mine-hard share: the
screening messages with the sample's five images, K rollouts per sample, and a pool of workers that
keeps only the samples being asked in memory (a 100k-row split never has all its images encoded at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, TypeVar

from aesdata.config import CotSettings
from aesdata.errors import AesdataError
from aesdata.evaluate.answers import parse_reply
from aesdata.evaluate.scoring import Prediction
from aesdata.llm import loop as model_loop
from aesdata.llm.batch import BatchClient, Pending, each, open_batch_client
from aesdata.llm.client import (
    BudgetExceeded,
    ChatClient,
    ChatResult,
    LLMClient,
    RequestFailed,
    client_from_settings,
    image_part,
)
from aesdata.progress import Reporter
from aesdata.prompting import user_content
from aesdata.workspace import Workspace

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    """Which model to ask and how; the API key is never here (it comes from the environment)."""

    model: str | None = None
    base_url: str | None = None
    concurrency: int | None = None
    temperature: float = 0.0
    max_tokens: int | None = None
    max_cost: float | None = None
    max_side: int | None = None

    def resolved(self, cot: CotSettings) -> Endpoint:
        """The endpoint with what the command line left out taken from ``[cot]`` settings."""
        if not (self.model or cot.model):
            raise AesdataError("no model given", hint="pass --model or set cot.model in aesdata.toml")
        return replace(self, model=self.model or cot.model, base_url=self.base_url or cot.base_url,
                       concurrency=self.concurrency or cot.concurrency, max_side=self.max_side or cot.max_side)

    def params(self) -> dict[str, Any]:
        """What a run records (no secrets)."""
        return {
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "max_side": self.max_side,
        }


@asynccontextmanager
async def open_client(cot: CotSettings, endpoint: Endpoint) -> AsyncIterator[LLMClient]:
    """The shared client for ``endpoint`` (settings fill what the command line left out), sampling as asked.

    ``client_from_settings`` takes no sampling options; temperature and max_tokens are attributes of the
    client it returns, set here.
    """
    client = client_from_settings(
        cot,
        model=endpoint.model,
        base_url=endpoint.base_url,
        concurrency=endpoint.concurrency,
        max_cost=endpoint.max_cost,
        reject_per_request=True,  # a sample the endpoint refuses (an image too large) fails alone
    )
    client.temperature, client.max_tokens = endpoint.temperature, endpoint.max_tokens
    async with client:
        yield client


def screening_messages(question: str, image_urls: Sequence[str]) -> list[dict[str, Any]]:
    """One user turn: captioned source and candidates A-D, then the question and the answer format."""
    return [{"role": "user", "content": user_content(question, lambda i: image_part(image_urls[i]))}]


@dataclass(frozen=True)
class Rollouts:
    """K replies to one sample: raw texts, parsed predictions, and what they cost."""

    texts: tuple[str, ...]
    predictions: tuple[Prediction, ...]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


async def ask(client: ChatClient, messages: list[dict[str, Any]], k: int) -> Rollouts:
    """K independent completions of the same messages (in flight together, within the client's bound)."""
    outcomes = await asyncio.gather(*(client.chat(messages) for _ in range(k)), return_exceptions=True)
    # batch mode: while any rollout waits for a batch the sample is undecided, whatever the others did
    failure = next((o for o in outcomes if isinstance(o, Pending)), None)
    failure = failure or next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:  # raised once every rollout has ended: none is left running unobserved
        raise failure
    results: list[ChatResult] = outcomes  # type: ignore[assignment]
    return Rollouts(
        texts=tuple(r.text for r in results),
        predictions=tuple(parse_reply(r.text) for r in results),
        prompt_tokens=sum(r.usage.prompt_tokens for r in results),
        completion_tokens=sum(r.usage.completion_tokens for r in results),
        cost_usd=sum(r.usage.cost_usd for r in results),
    )


def sample_workers(concurrency: int, rollouts: int) -> int:
    """Samples in flight: enough to keep ``concurrency`` requests busy with K rollouts each, plus one
    whose images are being encoded meanwhile."""
    return max(1, -(-concurrency // rollouts)) + 1


@dataclass(frozen=True)
class Asking(Generic[T]):
    """What a stage asks, and what it does with each outcome (both callbacks run on the event loop).

    ``messages(item)`` builds the item's screening messages (encoding its images off the loop);
    ``on_answer(item, rollouts)`` stores an answered item; ``on_failure(item, error)`` records one whose
    requests still failed after every retry, and the run goes on with the rest.
    """

    messages: Callable[[T], Awaitable[list[dict[str, Any]]]]
    on_answer: Callable[[T, Rollouts], None]
    on_failure: Callable[[T, RequestFailed], None]


@dataclass(frozen=True)
class Batching(Generic[T]):
    """Batch mode for :func:`ask_each`: the workspace that records the batches, each item's key, and how
    to read the items with given keys again (they are replayed as their batches end)."""

    ws: Workspace | None
    key: Callable[[T], str]
    again: Callable[[set[str]], Iterable[T]]


def ask_each(
    cot: CotSettings,
    endpoint: Endpoint,
    items: Iterable[T],
    asking: Asking[T],
    *,
    rollouts: int,
    total: int | None,
    description: str,
    reporter: Reporter,
    batch: Batching[T] | None = None,
) -> dict[str, int]:
    """Ask every item ``rollouts`` times through one client, a bounded number of items at a time; return
    the client's request statistics (requests, retries, timeouts, rate-limited, server errors).

    ``items`` may be a stream: it is read only as workers become free. With ``batch`` the requests go
    through the endpoint's Batch API (:mod:`aesdata.llm.batch`) and ``--max-cost`` is checked before
    each request joins a batch; reaching it raises :class:`BudgetExceeded` once every open batch is in.
    """

    async def main() -> dict[str, int]:
        online = replace(endpoint, max_cost=None) if batch else endpoint  # batch mode prices at batch rates
        async with open_client(cot, online) as client:
            asker: LLMClient | BatchClient = client
            if batch is not None:
                asker = open_batch_client(batch.ws, client, stage=description, cot=cot, reporter=reporter,
                                          max_side=int(endpoint.max_side or cot.max_side), max_cost=endpoint.max_cost)
            with reporter.task(f"{description} {client.model}", total) as task:

                async def work(item: T) -> None:
                    try:
                        got = await ask(asker, await asking.messages(item), rollouts)
                    except RequestFailed as exc:
                        asking.on_failure(item, exc)
                    else:
                        asking.on_answer(item, got)
                    task.advance()

                if isinstance(asker, BatchClient) and batch is not None:
                    await asker.run(items, batch.again, batch.key, work)
                else:
                    await each(items, work, sample_workers(endpoint.concurrency or cot.concurrency, rollouts))
            if isinstance(asker, BatchClient):
                if asker.stopped:
                    raise BudgetExceeded(
                        f"--max-cost ${endpoint.max_cost:.4f} reached: {asker.batch.held} request(s) not submitted",
                        hint="work done so far is stored; raise --max-cost and run again to continue",
                    )
                return {**asdict(asker.stats), **{f"batch_{k}": v for k, v in asdict(asker.batch).items()}}
            return asdict(client.stats)

    return model_loop.run(main())


def check_rollouts(rollouts: int, temperature: float | None, *, need_sampling: bool) -> float:
    """The temperature to sample with: given, else 0 for one rollout and 1 for several."""
    if rollouts < 1:
        raise AesdataError(f"--rollouts {rollouts}: must be at least 1")
    if temperature is None:
        temperature = 1.0 if (need_sampling or rollouts > 1) else 0.0
    if temperature < 0:
        raise AesdataError(f"--temperature {temperature}: must be >= 0")
    if need_sampling and temperature == 0:
        raise AesdataError("--temperature 0: mining needs sampling (temperature > 0) so K rollouts differ")
    return temperature

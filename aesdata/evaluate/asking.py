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
from aesdata.llm.client import ChatResult, LLMClient, RequestFailed, client_from_settings, image_part
from aesdata.progress import Reporter
from aesdata.prompting import user_content

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


async def ask(client: LLMClient, messages: list[dict[str, Any]], k: int) -> Rollouts:
    """K independent completions of the same messages (in flight together, within the client's bound)."""
    outcomes = await asyncio.gather(*(client.chat(messages) for _ in range(k)), return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
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


async def pool(items: Iterable[T], work: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run ``work`` on every item with ``workers`` tasks pulling from one iterator, in order of arrival.

    A ``RequestFailed`` is the worker's to handle (one sample failed); any other error stops every
    worker and is raised (a rejected endpoint, an exhausted budget, Ctrl-C).
    """
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # one shared iterator: each item goes to exactly one worker
            await work(item)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, workers))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
) -> dict[str, int]:
    """Ask every item ``rollouts`` times through one client, a bounded number of items at a time; return
    the client's request statistics (requests, retries, timeouts, rate-limited, server errors).

    ``items`` may be a stream: it is read only as workers become free.
    """

    async def main() -> dict[str, int]:
        async with open_client(cot, endpoint) as client:
            with reporter.task(f"{description} {client.model}", total) as task:

                async def work(item: T) -> None:
                    try:
                        got = await ask(client, await asking.messages(item), rollouts)
                    except RequestFailed as exc:
                        asking.on_failure(item, exc)
                    else:
                        asking.on_answer(item, got)
                    task.advance()

                await pool(items, work, sample_workers(endpoint.concurrency or cot.concurrency, rollouts))
            return asdict(client.stats)

    return asyncio.run(main())


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

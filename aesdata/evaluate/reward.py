"""The scorer as reward functions with the signature TRL's ``GRPOTrainer`` calls.

``GRPOTrainer(reward_funcs=[proportional_reward], ...)`` calls ``f(completions=..., solution=..., **columns)``
with one completion per generated rollout: a string for standard prompts, a list of messages for
conversational ones. ``solution`` is the column the ``aesdata export --format grpo`` rows carry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aesdata.evaluate.answers import parse_reply
from aesdata.evaluate.scoring import Prediction, exact, proportional
from aesdata.schema import parse_answer


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the last message's content (string or text parts)."""
    if isinstance(completion, str):
        return completion
    content = completion[-1]["content"] if completion else ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content if part.get("type") == "text")


def _reward(score: Callable[[Prediction, frozenset[str]], float]) -> Callable[..., list[float]]:
    def reward(completions: Sequence[Any], solution: Sequence[str], **_: Any) -> list[float]:
        return [
            score(parse_reply(completion_text(c)), parse_answer(s)) for c, s in zip(completions, solution, strict=True)
        ]

    reward.__name__ = f"{score.__name__}_reward"
    reward.__doc__ = f"GRPO reward: the {score.__name__} score of each completion against its solution."
    return reward


proportional_reward = _reward(proportional)
exact_reward = _reward(exact)

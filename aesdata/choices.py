"""Choices and bounds the command line offers, kept free of pydantic so that building the CLI is cheap.

``aesdata --help`` resolves every command's option types; importing the pydantic models for two Literals
and two numbers would cost each start-up ~0.2 s. :mod:`aesdata.schema` and :mod:`aesdata.cot.validate`
re-export these, so they stay the single definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

CotMode = Literal["answer-driven", "automated", "manual", "template"]
COT_MODES: tuple[CotMode, ...] = get_args(CotMode)
#: Which stored rationales ``cot --redo`` rewrites.
Redo = Literal["failed", "stale", "all"]


@dataclass(frozen=True)
class Limits:
    """Length bounds of a rationale's reasoning, in characters."""

    min_chars: int = 200
    max_chars: int = 6000

"""Prompt templates from ``annotation/prompts/``, versioned by their hash.

Templates are plain markdown with ``$name`` placeholders (``string.Template``: JSON braces in the
text need no escaping). Each rationale records the hash of the files that produced it, so a changed
template is visible in the manifest and re-runnable with ``--redo all``. Inside a cot run the files
come from the workspace's ``assets/`` first (:func:`aesdata.assets.scoped`), and so does the hash.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from string import Template
from typing import Any

from aesdata.assets import read_asset
from aesdata.cot.validate import Limits
from aesdata.llm.body import Fixed
from aesdata.llm.client import image_part, text_part
from aesdata.prompting import CAPTIONS
from aesdata.regions import place
from aesdata.schema import SLOTS, CotMode, Judgement

#: Files each mode reads; their contents together make the mode's prompt hash.
MODE_FILES: dict[CotMode, tuple[str, ...]] = {
    "answer-driven": ("system.md", "answer_driven.md", "repair.md"),
    "automated": ("system.md", "automated.md", "repair.md"),
    "manual": ("template.toml",),
    "template": ("template.toml",),
}


def _read(name: str) -> str:
    return read_asset(f"annotation/prompts/{name}").text


def files_hash(names: tuple[str, ...]) -> str:
    """12 hex digits over the files' names and contents (the files this run reads)."""
    return _texts_hash({name: _read(name) for name in names})


def _texts_hash(texts: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name, text in texts.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:12]


def mode_hash(mode: CotMode) -> str:
    return files_hash(MODE_FILES[mode])


def phrases() -> dict[str, Any]:
    """The template mode's phrase bank (``template.toml``)."""
    return _parse_toml(_read("template.toml"))


@cache
def _parse_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def describe_result(judgement: Judgement) -> str:
    """The label as the answer-driven prompt states it."""
    accepted = ", ".join(judgement.answer) or "none"
    lines = [f"Acceptable candidates: {accepted}"]
    for slot in SLOTS:
        regions = judgement.regions.get(slot, ())
        named = [d + "".join(f" (in the {place(r.box)})" for r in regions if r.dimension == d)
                 for d in judgement.defects[slot]]
        lines.append(f"Candidate {slot}: {', '.join(named) or 'no defect'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Conversation:
    """Builds the chat messages of one LLM mode.

    Its template files are read once, when it is made: every request of a run is then built from the
    same texts, and :attr:`prompt_hash` (what its rationales record) is the hash of exactly those
    (reading them per request cost about a fifth of the event loop's time at 256 requests in flight).
    """

    mode: CotMode
    limits: Limits
    texts: dict[str, str] = field(init=False, repr=False, compare=False)
    prompt_hash: str = field(init=False, compare=False)
    _fixed: tuple[Fixed, ...] = field(init=False, repr=False, compare=False)  # system message, captions

    def __post_init__(self) -> None:
        texts = {name: _read(name) for name in MODE_FILES[self.mode]}
        object.__setattr__(self, "texts", texts)
        object.__setattr__(self, "prompt_hash", _texts_hash(texts))
        parts = (Fixed(role="system", content=texts["system.md"]), *(Fixed(text_part(c)) for c in CAPTIONS))
        object.__setattr__(self, "_fixed", parts)

    def messages(self, images: list[str], judgement: Judgement | None) -> list[dict[str, Any]]:
        """System prompt, then one user message: the task text, the source and the four candidates.

        ``images`` is the source then candidates A-D (data URLs); ``judgement`` only for answer-driven.
        """
        task_file = "answer_driven.md" if self.mode == "answer-driven" else "automated.md"
        values = {"min_chars": self.limits.min_chars, "max_chars": self.limits.max_chars}
        if self.mode == "answer-driven":
            if judgement is None:
                raise ValueError("answer-driven prompts need the label")
            values["result"] = describe_result(judgement)
        task = Template(self.texts[task_file]).substitute(values)
        system, *captions = self._fixed  # the same objects in every request: their JSON is written once
        content: list[dict[str, Any]] = [text_part(task)]
        for caption, url in zip(captions, images, strict=True):
            content += [caption, image_part(url)]
        return [system, {"role": "user", "content": content}]

    def repair(self, messages: list[dict[str, Any]], raw: str, problems: list[str]) -> list[dict[str, Any]]:
        """The conversation continued with the rejected reply and the validator's reasons."""
        text = Template(self.texts["repair.md"]).substitute(problems="\n".join(f"- {p}" for p in problems))
        return [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": text}]

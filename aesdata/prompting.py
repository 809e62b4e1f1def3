"""The prompt contract: the screening question, the image captions, the answer format and their hash.

Every stage that shows a model a sample takes its words from here: publish writes :data:`QUESTION`
into each row, cot captions the images it sends with :data:`CAPTIONS`, and eval, mine-hard and the
training exports build the screening prompt with :func:`user_content`, so a model is trained on exactly
the prompt it is measured with. Images are placeholders here; eval fills them with data URLs, exports
with ``{"type": "image"}`` parts and an ``images`` list (the order of the parts is the order of that
list). :data:`PROMPT_HASH` is recorded with every screening result, so a changed prompt is visible and
re-runnable (the question is not in it: eval asks each row's own question, which the row carries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aesdata.schema import SLOTS

#: The question every published row asks; models see the source first, then candidates A-D in slot order.
QUESTION = (
    "The first image is a product photo. Images A, B, C and D were generated from it by placing the "
    "product in a new scene. A candidate is acceptable only if it has no defect in appearance (the product "
    "deformed or altered), physical shadow (lighting or shadows inconsistent), placement layout (wrong "
    "scale, position or perspective) or extension rationality (an implausible or broken generated scene). "
    "Which candidates are acceptable? Answer with the acceptable letters separated by commas, or 'none'."
)

#: Text before each image: the source, then candidates A-D (the order of a published row's images).
CAPTIONS: tuple[str, ...] = ("Source product photo:", *(f"Candidate {slot}:" for slot in SLOTS))

ANSWER_FORMAT = (
    "Reason step by step inside <think>...</think>, looking at every candidate, then give the acceptable "
    "candidates inside <answer>...</answer> as letters separated by commas, e.g. <answer>A,C</answer>, or "
    "<answer>none</answer> when no candidate is acceptable."
)

PROMPT_HASH = hashlib.sha256("\x1f".join([*CAPTIONS, ANSWER_FORMAT]).encode()).hexdigest()[:12]

Part = dict[str, Any]


def user_content(question: str, image_part: Callable[[int], Part]) -> list[Part]:
    """The user message's parts: a caption and an image per picture, then the question and format.

    ``image_part(i)`` makes the part for picture ``i`` (0 = source, 1-4 = A-D).
    """
    parts: list[Part] = []
    for i, caption in enumerate(CAPTIONS):
        parts += [{"type": "text", "text": caption}, image_part(i)]
    parts.append({"type": "text", "text": f"{question.strip()}\n\n{ANSWER_FORMAT}"})
    return parts

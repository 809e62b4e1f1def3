"""The screening prompt a model is shown: the source, candidates A-D, the row's question, the answer format.

One builder serves eval, mine-hard and the training exports, so a model is trained on exactly the
prompt it is measured with. Images are placeholders here; eval fills them with data URLs, exports with
``{"type": "image"}`` parts and an ``images`` list (the order of the parts is the order of that list).
The prompt's hash is recorded with every result, so a changed prompt is visible and re-runnable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aesdata.schema import SLOTS

#: Text before each image, in :data:`aesdata.evaluate.dataset.IMAGE_NAMES` order.
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

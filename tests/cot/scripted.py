"""A scripted "model" for the test server: it knows each sample's label by its source image.

The client sends the source photo first; its data URL (made by the same ``ImageEncoder`` settings)
identifies the sample. Each sample follows a script of behaviours, one per request it receives:

``correct``   a reply consistent with the label
``wrong``     every slot's verdict flipped (answer and observations disagree with the label)
``leak``      correct, but the reasoning mentions "the given answer"
``short``     correct but a one-line reasoning
``malformed`` not JSON at all
``fenced``    correct, wrapped in prose and a ```json fence (tolerant extraction)
``thinking``  correct, after a reasoning model's ``<think>`` block that holds a stray JSON object
``truncated`` cut off mid-JSON with ``finish_reason: length``
``429``       rate-limited, with Retry-After
``500``       a server error
``400``       a refusal of this request only ("the image is too large")
``stall``     answers only after ``stall_s`` seconds (past the client's timeout)

After its script runs out a sample gets ``then`` (default ``correct``).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

from aesdata.llm.images import ImageEncoder
from aesdata.schema import DIMENSIONS, SLOTS, Judgement
from aesdata.store import iter_labelled
from aesdata.workspace import Workspace
from tests.openai_server import Reply, image_digest, request_images


def reply_json(judgement: Judgement, *, flip: bool = False, extra: str = "", short: bool = False) -> str:
    """A CotReply for ``judgement`` (or its opposite with ``flip``)."""
    defects = {
        s: ([] if judgement.defects[s] else ["physical_shadow"]) if flip else judgement.defects[s] for s in SLOTS
    }
    observations = [
        {
            "slot": s,
            "dimension": d,
            "defective": d in defects[s],
            "note": f"{d.replace('_', ' ')} {'looks wrong' if d in defects[s] else 'looks right'} in this image",
        }
        for s in SLOTS
        for d in DIMENSIONS
    ]
    answer = [s for s in SLOTS if not defects[s]]
    sentences = [
        f"Candidate {s} "
        + (
            f"has problems with {', '.join(defects[s])}, so it is rejected."
            if defects[s]
            else "matches the source product, with sound lighting and layout."
        )
        for s in SLOTS
    ]
    reasoning = "Comparing each candidate with the source photo. " + " ".join(sentences)
    if short:
        reasoning = "A B C D."
    reasoning += extra
    return json.dumps({"observations": observations, "reasoning": reasoning, "final_answer": answer})


class ScriptedModel:
    """The policy: ``(request_json, call_index) -> Reply``, thread-safe."""

    def __init__(
        self,
        truth: dict[str, Judgement],
        scripts: dict[str, list[str]] | None = None,
        *,
        then: str = "correct",
        stall_s: float = 5.0,
        retry_after: float = 0.05,
    ) -> None:
        self.truth, self.scripts, self.then = truth, scripts or {}, then
        self.stall_s, self.retry_after = stall_s, retry_after
        self.seen: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @classmethod
    def for_workspace(
        cls, ws: Workspace, max_side: int, scripts: dict[str, list[str]] | None = None, **kwargs: object
    ) -> ScriptedModel:
        """Truth keyed by each labelled sample's source data URL; scripts keyed by sample id."""
        encoder = ImageEncoder(ws.blobs, max_side=max_side)
        truth, keyed = {}, {}
        for sample, label in iter_labelled(ws.db):
            key = image_digest(encoder.url(sample.source_id))
            truth[key] = label.judgement
            if scripts and sample.id in scripts:
                keyed[key] = scripts[sample.id]
        return cls(truth, keyed, **kwargs)  # type: ignore[arg-type]

    def __call__(self, body: dict, call_index: int) -> Reply | str:
        key = image_digest(request_images(body)[0])
        with self._lock:
            n = self.seen[key]
            self.seen[key] += 1
        script = self.scripts.get(key, [])
        behaviour = script[n] if n < len(script) else self.then
        judgement = self.truth[key]
        match behaviour:
            case "correct":
                return reply_json(judgement)
            case "wrong":
                return reply_json(judgement, flip=True)
            case "leak":
                return reply_json(judgement, extra=" This agrees with the given answer.")
            case "short":
                return reply_json(judgement, short=True)
            case "malformed":
                return "Sure! {observations: [slot A looks fine"
            case "thinking":
                return '<think>Maybe {"final_answer": "bogus"... no.</think>\n' + reply_json(judgement)
            case "truncated":
                return Reply(content=reply_json(judgement)[:300], finish_reason="length")
            case "fenced":
                return "Here is my screening:\n```json\n" + reply_json(judgement) + "\n```\nHope it helps."
            case "429":
                return Reply.fail(429, retry_after=self.retry_after)
            case "500":
                return Reply.fail(500)
            case "400":
                return Reply.fail(400, "the image is too large")
            case "stall":
                return Reply.stall(self.stall_s, reply_json(judgement))
        raise ValueError(f"unknown behaviour {behaviour!r}")


def save_truth(model: ScriptedModel, path: Path) -> None:
    """Write the truth table for a server in a subprocess (see :func:`from_truth_file`)."""
    path.write_text(json.dumps({k: j.model_dump() for k, j in model.truth.items()}))


def from_truth_file(path: str) -> ScriptedModel:
    """Policy factory for ``python -m tests.openai_server --policy tests/cot/scripted.py:from_truth_file``."""
    data = json.loads(Path(path).read_text())
    return ScriptedModel({k: Judgement.model_validate(v) for k, v in data.items()})

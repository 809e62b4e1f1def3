"""The ``manual`` mode: rationales annotators wrote in Label Studio, normalised and validated.

The text is the annotator's own; the observations come from that annotator's defect tags (worded
from the template phrase bank); the answer is that annotator's pick. The validators then hold it to
the effective label like any other rationale: an annotator who disagreed with the consensus, skipped
a candidate or wrote too little yields a failed rationale with those reasons. Among several
annotators, the first (by pseudonym) whose judgement equals the label is used.
"""

from __future__ import annotations

import re

from aesdata.cot.template import finish, observations_from
from aesdata.cot.validate import Limits, validate
from aesdata.schema import Annotation, CotReply, Judgement, Rationale


def normalise_text(text: str) -> str:
    """Annotator text as reasoning: ``<think>``/``<answer>`` markup dropped, whitespace tidied."""
    text = re.sub(r"<answer>.*?</answer>", " ", text, flags=re.S | re.I)
    text = re.sub(r"</?think>", " ", text, flags=re.I)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def manual_rationale(
    sample_id: str, judgement: Judgement, annotations: list[Annotation], limits: Limits
) -> Rationale | None:
    """The sample's manual rationale, or None when no annotator wrote one."""
    written = [a for a in annotations if a.rationale and normalise_text(a.rationale)]
    if not written:
        return None
    agreeing = [a for a in written if a.judgement == judgement]
    chosen = (agreeing or written)[0]
    reply = CotReply(
        observations=observations_from(chosen.judgement, sample_id),
        reasoning=normalise_text(chosen.rationale or ""),
        final_answer=list(chosen.judgement.answer),
    )
    return finish(sample_id, "manual", reply, validate(reply, judgement, limits), raw=chosen.rationale)

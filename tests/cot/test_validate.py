"""Pure validators, tolerant parsing and the template writer (no server)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aesdata.cot.parse import ReplyError, _normalise, extract_json, parse_reply
from aesdata.cot.prompts import Conversation, describe_result, mode_hash
from aesdata.cot.template import template_rationale
from aesdata.cot.validate import _LEAKS, _LIST, _TAGGED, Limits, leaks, mentioned_slots, validate
from aesdata.schema import DIMENSIONS, SLOTS, CotReply, Judgement, parse_rationale
from tests.cot.scripted import reply_json

LABEL = Judgement.from_defects({"B": ["physical_shadow"], "D": ["placement_layout", "extension_rationality"]})
LIMITS = Limits(min_chars=50, max_chars=2000)


def reasons(text: str, judgement: Judgement = LABEL) -> list[str]:
    return [p.reason for p in validate(parse_reply(text), judgement, LIMITS)]


def test_a_consistent_reply_passes() -> None:
    assert reasons(reply_json(LABEL)) == []


def test_wrong_answer_and_observations_are_named() -> None:
    problems = validate(parse_reply(reply_json(LABEL, flip=True)), LABEL, LIMITS)
    text = [p.reason for p in problems]
    assert "final answer B,D differs from the screening result A,C" in text
    assert "candidate A is called defective in physical_shadow, which is not a defect of it" in text
    assert "candidate D is called clean in placement_layout, but it is defective there" in text
    assert all(p.about_label for p in problems)


def test_missing_observations_and_candidates() -> None:
    data = json.loads(reply_json(LABEL))
    data["observations"] = [o for o in data["observations"] if o["slot"] != "C"]
    data["reasoning"] = "Candidate A is fine, candidates B and D have defects visible in the photos here."
    problems = validate(parse_reply(json.dumps(data)), LABEL, LIMITS)
    assert any("no observation for C/appearance_deformation" in p.reason for p in problems)
    assert any(p.reason == "the reasoning does not discuss candidate(s) C" and not p.about_label for p in problems)


@pytest.mark.parametrize(
    "phrase",
    ["the given answer", "the ground truth", "as labelled", "the annotator chose", "We were told", "answer key"],
)
def test_leaks_are_refused(phrase: str) -> None:
    assert leaks(f"Candidate A looks fine; {phrase} agrees.")


@pytest.mark.parametrize(
    "text",
    [
        "The printed label on the bottle is sharp and readable.",
        "Candidate B's label is smeared, so the product's appearance changed.",
        "The nutrition label and logo match the source.",
    ],
)
def test_a_product_label_is_not_a_leak(text: str) -> None:
    assert leaks(text) == []


def test_length_bounds() -> None:
    assert any("too short" in r for r in reasons(reply_json(LABEL, short=True)))
    long = json.loads(reply_json(LABEL))
    long["reasoning"] += " More detail." * 300
    assert any("too long" in r for r in reasons(json.dumps(long)))


def test_mentions() -> None:
    assert mentioned_slots("Candidates A, B and D are fine; (C) is not") == set("ABCD")
    assert mentioned_slots("Images a buyer sees: A product on a table") == set()


MENTION_PIECES = ["Candidate", "candidates", "IMAGE", "Slot", "pictures", "option", "ſlot", "A", "B", "C", "D", "E",
                  "a", " ", "  ", "\n", "\t", "\x1c", "(", ")", "[", "]", ":", "-", ",", "and", "or", "&", "/", "x",
                  "é", "Apple"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(MENTION_PIECES), max_size=14).map("".join))
@example("A- fine\nB -\tC - ok, [D] too")
@example("(A)(B) A:B: slots C and D Apple")
def test_mentions_are_what_the_patterns_find_anywhere(text: str) -> None:
    """The scan that tries the patterns only where a match can begin finds what their own scan finds."""
    found = {s for m in _LIST.finditer(text) for s in re.findall("[A-D]", m.group(1))} | set(_TAGGED.findall(text))
    assert mentioned_slots(text) == found & set(SLOTS)


def test_tolerant_parsing() -> None:
    data = json.loads(reply_json(LABEL))
    data["final_answer"] = "Candidate A, C"
    data["observations"][0].update(slot="Candidate A", dimension="Appearance Deformation", defective="no")
    reply = parse_reply("Sure, here it is:\n```json\n" + json.dumps(data) + "\n```")
    assert reply.final_answer == ["A", "C"]
    assert reply.observations[0].slot == "A" and reply.observations[0].defective is False
    assert parse_reply(json.dumps({**data, "final_answer": "none"})).final_answer == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("no json here", "no JSON object"),
        ('{"observations": [], "reasoning": "x"}', "final_answer"),
        ('{"observations": [{"slot": "E"}], "reasoning": "x", "final_answer": []}', "observations.0"),
    ],
)
def test_unreadable_replies(text: str, why: str) -> None:
    with pytest.raises(ReplyError, match=why):
        parse_reply(text)


def tolerant(text: str) -> CotReply | str:
    """What the tolerant path alone makes of ``text`` (the reply, or the error's message)."""
    try:
        reply = CotReply.model_validate(_normalise(extract_json(text)))
    except (ReplyError, ValueError) as exc:
        return type(exc).__name__
    if not reply.reasoning.strip() or len(set(reply.final_answer)) != len(reply.final_answer):
        return "ReplyError"
    return reply.model_copy(update={"final_answer": [s for s in SLOTS if s in reply.final_answer]})


spellings = st.fixed_dictionaries({
    "slot": st.sampled_from([*SLOTS, "a", "Candidate B", "E", 3]),
    "dimension": st.sampled_from([*DIMENSIONS, "Physical Shadow", "colour"]),
    "defective": st.sampled_from([True, False, "yes", "no", "on", "defective", "clean", 1, 0, 2, None]),
    "note": st.sampled_from(["looks right", ""]),
})
replies = st.fixed_dictionaries(
    {"observations": st.lists(spellings, max_size=4), "reasoning": st.sampled_from(["Candidate A is fine.", " "]),
     "final_answer": st.one_of(st.lists(st.sampled_from([*SLOTS, "b", "Z"]), max_size=4), st.just("A, C"))},
    optional={"answer": st.just(["D"]), "extra": st.just({"final_answer": ["B"]})},
)


@settings(max_examples=300, deadline=None)
@given(data=replies, drop=st.sampled_from([None, "final_answer", "observations"]), prose=st.booleans())
def test_a_reply_read_as_asked_reads_as_the_tolerant_path_reads_it(data: dict, drop: str | None, prose: bool) -> None:
    """The fast path for clean JSON (validated straight from the text) agrees with the tolerant path on
    every spelling it meets: the same reply, or both refuse it."""
    if drop is not None:
        data.pop(drop)
    text = ("Here:\n" if prose else "") + json.dumps(data)
    try:
        got: CotReply | str = parse_reply(text)
    except ReplyError:
        got = "ReplyError"
    want = tolerant(text)
    assert got == want or (got == "ReplyError" and want in ("ReplyError", "ValidationError"))


judgements = st.dictionaries(
    st.sampled_from(SLOTS), st.lists(st.sampled_from(DIMENSIONS), min_size=1, max_size=4, unique=True)
).map(Judgement.from_defects)


@settings(max_examples=60, deadline=None)
@given(judgement=judgements, sample_id=st.from_regex(r"[0-9a-f]{16}", fullmatch=True))
def test_template_rationales_always_validate(judgement: Judgement, sample_id: str) -> None:
    rationale = template_rationale(sample_id, judgement, Limits())
    assert rationale.status == "valid", rationale.errors
    assert rationale.answer == judgement.answer
    think, answer = parse_rationale(rationale.text)
    assert answer == set(judgement.answer) and think
    assert template_rationale(sample_id, judgement, Limits()).think == rationale.think  # deterministic


def test_prompts_carry_the_label_only_when_answer_driven() -> None:
    images = [f"data:image/jpeg;base64,{i}" for i in range(5)]
    told = Conversation("answer-driven", Limits()).messages(images, LABEL)
    blind = Conversation("automated", Limits()).messages(images, None)
    told_text, blind_text = json.dumps(told), json.dumps(blind)
    assert describe_result(LABEL).splitlines()[0] in told_text
    assert "Acceptable candidates" not in blind_text and "Candidate D: placement_layout" not in blind_text
    assert [p["image_url"]["url"] for p in told[1]["content"] if p["type"] == "image_url"] == images
    assert len({mode_hash("answer-driven"), mode_hash("automated"), mode_hash("template")}) == 3


PIECES = [
    "Candidate A",
    "the given answer",
    "ground truth",
    "the printed label",
    "labelled as defective",
    "annotators",
    "we were told",
    "verified result",
    "shadow",
    "answer key",
    "The",
    "LABELED AS GOOD",
    " ",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map(" ".join))
def test_leak_prefilter_never_hides_a_leak(text: str) -> None:
    assert leaks(text) == sorted({m.group(0).strip() for m in _LEAKS.finditer(text)})

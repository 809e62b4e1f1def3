"""Pure validators for a rationale against the sample's label: each returns the reasons it rejects.

A :class:`Problem` says whether it concerns the label (a different answer, a defect called where the
label tags none or missed where it tags one) or only the form of the reply (coverage, leakage,
length). The automated mode must never be told the label, so it repairs form problems only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aesdata.choices import Limits  # noqa: F401 (re-exported: defined there for a cheap CLI)
from aesdata.regions import contradicts, place
from aesdata.schema import DIMENSIONS, SLOTS, CotReply, Judgement, Observation, format_answer


@dataclass(frozen=True)
class Problem:
    reason: str
    about_label: bool = False


# Phrases that betray a rationale written from a given answer. "label" alone is allowed: a product's
# printed label is a normal thing to discuss; only its use as the task's answer is refused.
_LEAKS = re.compile(
    r"""
      \b(?:given|provided|expected|reference|correct|true|target|official)\s+(?:answer|result|label|labels|solution)\b
    | \bground[\s-]?truth\b
    | \bannotat(?:or|ors|ion|ions|ed)\b
    | \bas\s+label(?:l)?ed\b
    | \blabel(?:l)?ed\s+(?:as\s+)?(?:acceptable|unacceptable|defective|correct|wrong|bad|good)\b
    | \b(?:the|this)\s+label\s+(?:says|states|marks|tags|indicates)\s+(?:candidate|that\s+candidate|it\s+as)\b
    | \banswer\s+key\b
    | \b(?:I|we)\s+(?:was|were|am|are)\s+(?:told|given)\b
    | \bverified\s+(?:screening\s+)?result\b
    """,
    re.I | re.X,
)

_SLOT = r"[A-D]"
_NOUN = r"(?i:candidates?|images?|options?|slots?|pictures?)"
_LIST = re.compile(rf"\b{_NOUN}\s+({_SLOT}(?:\s*(?:,|and|&|/|or)\s*{_SLOT})*)\b")
_TAGGED = re.compile(rf"(?:^|[\s(\[])({_SLOT})(?:[:)\]]|\s*-\s)", re.M)


_NOUNS = ("candidate", "image", "option", "slot", "picture")
_LETTER = re.compile(_SLOT)


def mentioned_slots(text: str) -> set[str]:
    """Candidates the text refers to: "Candidate B", "candidates A and C", "(D)", "A:"."""
    if text.isascii():
        lists, tagged = _matches(_LIST, _noun_starts(text), text), _matches(_TAGGED, _letter_starts(text), text)
    else:  # case-insensitive nouns beyond ASCII ("ſlot"): the patterns' own scan
        lists, tagged = _LIST.finditer(text), _TAGGED.finditer(text)
    found: set[str] = set()
    for match in lists:
        found.update(_LETTER.findall(match.group(1)))
    found.update(match.group(1) for match in tagged)
    return found & set(SLOTS)


def _matches(pattern: re.Pattern[str], starts: list[int], text: str) -> list[re.Match[str]]:
    """What ``pattern.finditer(text)`` finds, trying only ``starts`` (every place a match can begin, in
    order): the patterns' own scan tries each of a reply's characters, a fifth of a validation's CPU."""
    found: list[re.Match[str]] = []
    end = 0
    for start in starts:
        if start >= end and (match := pattern.match(text, start)):
            found.append(match)
            end = match.end()
    return found


def _noun_starts(text: str) -> list[int]:
    """Where a noun of ``_LIST`` begins, in any case (ASCII ``text``: its lowered form has its indices)."""
    lowered = text.lower()
    starts: list[int] = []
    for noun in _NOUNS:
        at = lowered.find(noun)
        while at >= 0:
            starts.append(at)
            at = lowered.find(noun, at + 1)
    return sorted(starts)


#: What can follow a tagged slot letter in ASCII text: ``[:)\]]``, or ``\s*-\s`` (whitespace, a hyphen).
_AFTER_TAG = frozenset(":)]-" + "".join(c for c in map(chr, range(128)) if c.isspace()))


def _letter_starts(text: str) -> list[int]:
    """Where a match of ``_TAGGED`` can begin: at a slot letter (a line's start) or the character before it,
    for a letter followed by what a tag needs (not the "C" of "Candidate")."""
    starts: list[int] = []
    for letter in _LETTER.finditer(text):
        if text[letter.end():letter.end() + 1] in _AFTER_TAG:
            at = letter.start()
            starts += (at - 1, at) if at else (at,)
    return starts


#: Every leak phrase contains one of these: a plain substring test first keeps clean text cheap.
_LEAK_WORDS = ("answer", "result", "label", "solution", "truth", "annotat", "told", "given")


def leaks(text: str) -> list[str]:
    """The leaking phrases found in ``text``, as written."""
    lowered = text.lower()
    if not any(word in lowered for word in _LEAK_WORDS):
        return []
    return sorted({m.group(0).strip() for m in _LEAKS.finditer(text)})


def check_answer(answer: list[str] | set[str] | frozenset[str], judgement: Judgement) -> list[Problem]:
    given, expected = set(answer), set(judgement.answer)
    if given == expected:
        return []
    return [
        Problem(
            f"final answer {format_answer(given)} differs from the screening result {format_answer(expected)}",
            about_label=True,
        )
    ]


def check_observations(observations: list[Observation], judgement: Judgement) -> list[Problem]:
    """One observation per candidate per dimension, defective exactly where the label tags a defect."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Observation] = {}
    for obs in observations:
        key = (obs.slot, obs.dimension)
        if key in seen and seen[key].defective != obs.defective:
            problems.append(Problem(f"candidate {obs.slot} / {obs.dimension}: contradictory observations"))
        seen[key] = obs
    missing = [f"{s}/{d}" for s in SLOTS for d in DIMENSIONS if (s, d) not in seen]
    if missing:
        problems.append(Problem(f"no observation for {', '.join(missing)} (one per candidate per dimension)"))
    for (slot, dim), obs in seen.items():
        tagged = dim in judgement.defects[slot]  # type: ignore[index]
        if obs.defective and not tagged:
            problems.append(
                Problem(f"candidate {slot} is called defective in {dim}, which is not a defect of it", about_label=True)
            )
        elif tagged and not obs.defective:
            problems.append(
                Problem(f"candidate {slot} is called clean in {dim}, but it is defective there", about_label=True)
            )
    return problems


def check_locations(observations: list[Observation], judgement: Judgement) -> list[Problem]:
    """A defect's note that states a location must agree with the defect's marked region, where there is one."""
    problems: list[Problem] = []
    for obs in observations:
        boxes = [r.box for r in judgement.regions.get(obs.slot, ()) if r.dimension == obs.dimension]
        if not (obs.defective and boxes):
            continue
        stated = contradicts(obs.note, boxes)
        if stated is not None:
            where = " and ".join(place(b) for b in boxes)
            problems.append(Problem(f"candidate {obs.slot} / {obs.dimension}: the note puts the defect in the "
                                    f"{stated}, but it is in the {where} of the image", about_label=True))
    return problems


def check_text(text: str, notes: list[str], limits: Limits) -> list[Problem]:
    """Coverage of all four candidates, no leakage, length within bounds."""
    problems: list[Problem] = []
    mentioned = mentioned_slots(text)
    missing = [s for s in SLOTS if s not in mentioned]
    if missing:
        problems.append(Problem(f"the reasoning does not discuss candidate(s) {', '.join(missing)}"))
    leaked = leaks("\n".join([text, *notes]))
    if leaked:
        problems.append(Problem(f"the text reveals it was given the answer: {'; '.join(repr(p) for p in leaked)}"))
    n = len(text.strip())
    if n < limits.min_chars:
        problems.append(Problem(f"the reasoning is too short: {n} characters (at least {limits.min_chars})"))
    elif n > limits.max_chars:
        problems.append(Problem(f"the reasoning is too long: {n} characters (at most {limits.max_chars})"))
    return problems


def validate(reply: CotReply, judgement: Judgement, limits: Limits) -> list[Problem]:
    """Every reason ``reply`` is not a valid rationale for ``judgement`` (empty when it is)."""
    return [
        *check_answer(reply.final_answer, judgement),
        *check_observations(reply.observations, judgement),
        *check_locations(reply.observations, judgement),
        *check_text(reply.reasoning, [o.note for o in reply.observations], limits),
    ]

"""The scorer, the random baseline and the answer parser: unit and property tests."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aesdata.evaluate.answers import parse_reply
from aesdata.evaluate.scoring import (
    ALL_SUBSETS,
    exact,
    proportional,
    random_sample_score,
    score_sample,
    summarise,
)
from aesdata.schema import DIMENSIONS, SLOTS, format_answer

subsets = st.frozensets(st.sampled_from(SLOTS))
predictions = st.one_of(st.none(), subsets)


# --------------------------------------------------------------------------- scorer


@pytest.mark.parametrize(
    ("pred", "answer", "want_exact", "want_prop"),
    [
        ({"A", "C"}, {"A", "C"}, 1.0, 1.0),
        ({"A"}, {"A", "C"}, 0.0, 0.5),
        ({"A", "B"}, {"A", "C"}, 0.0, 0.0),
        (set(), {"A", "C"}, 0.0, 0.0),
        (set(), set(), 1.0, 1.0),
        ({"D"}, set(), 0.0, 0.0),
        ({"A", "B", "C"}, {"A", "B", "C", "D"}, 0.0, 0.75),
        (None, set(), 0.0, 0.0),
        (None, {"B"}, 0.0, 0.0),
    ],
)
def test_scorer_examples(
    pred: set[str] | None, answer: set[str], want_exact: float, want_prop: float
) -> None:
    p = None if pred is None else frozenset(pred)
    assert exact(p, frozenset(answer)) == want_exact
    assert proportional(p, frozenset(answer)) == want_prop


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(predictions, subsets)
def test_proportional_is_one_exactly_when_exact(pred: frozenset[str] | None, answer: frozenset[str]) -> None:
    assert (proportional(pred, answer) == 1.0) == (exact(pred, answer) == 1.0)


@settings(deadline=None)
@given(subsets, subsets)
def test_a_wrong_pick_scores_zero(pred: frozenset[str], answer: frozenset[str]) -> None:
    if pred - answer:
        assert proportional(pred, answer) == 0.0
    assert 0.0 <= proportional(pred, answer) <= 1.0


@settings(deadline=None)
@given(subsets, st.data())
def test_monotone_in_correct_picks(answer: frozenset[str], data: st.DataObject) -> None:
    """Adding a correct slot to a prediction without wrong slots raises its score."""
    pred = data.draw(st.frozensets(st.sampled_from(sorted(answer)))) if answer else frozenset()
    missing = sorted(answer - pred)
    if not missing:
        return
    more = pred | {data.draw(st.sampled_from(missing))}
    assert proportional(more, answer) > proportional(pred, answer)


# --------------------------------------------------------------------------- random baseline


def test_all_subsets_are_the_16_distinct_subsets() -> None:
    assert len(ALL_SUBSETS) == 16 == len(set(ALL_SUBSETS))


@settings(deadline=None)
@given(subsets, st.integers(1, 8))
def test_random_baseline_closed_form(answer: frozenset[str], k: int) -> None:
    """Independent closed form: P(exact) = 1/16; E[proportional] = 2^(|answer|-1)/16 (1/16 when empty)."""
    score = random_sample_score(answer, {}, rollouts=k)
    assert score.exact == pytest.approx(1 / 16)
    want = 1 / 16 if not answer else 2 ** (len(answer) - 1) / 16
    assert score.proportional == pytest.approx(want)
    assert score.pass_at_k == pytest.approx(1 - (15 / 16) ** k)


def test_random_baseline_equals_a_large_simulation() -> None:
    rng = random.Random(7)
    n = 40_000
    for answer in (frozenset(), frozenset("B"), frozenset("AC"), frozenset("ABD"), frozenset(SLOTS)):
        defects = {s: [DIMENSIONS[i % 4]] for i, s in enumerate(SLOTS) if s not in answer}
        draws = [frozenset(s for s in SLOTS if rng.random() < 0.5) for _ in range(n)]
        simulated = score_sample(draws, answer, defects)
        expected = random_sample_score(answer, defects)
        # 5 standard errors of a [0,1] mean of n draws: a wrong expectation fails, chance almost never does.
        tol = 5 * 0.5 / n**0.5
        assert simulated.exact == pytest.approx(expected.exact, abs=tol)
        assert simulated.proportional == pytest.approx(expected.proportional, abs=tol)
        for d in DIMENSIONS:
            assert simulated.rejected[d] == pytest.approx(expected.rejected[d], abs=4 * tol)


# --------------------------------------------------------------------------- aggregation


def test_summarise_per_dimension_counts() -> None:
    answer = frozenset("AB")
    defects = {"C": ["physical_shadow"], "D": ["physical_shadow", "placement_layout"]}
    good = score_sample([frozenset("AB"), frozenset("AD")], answer, defects)
    other = score_sample([None], frozenset(SLOTS), {})
    report = summarise([good, other])
    assert report["samples"] == 2 and report["replies"] == 3 and report["unparseable"] == 1
    assert report["exact"] == pytest.approx((0.5 + 0.0) / 2)
    assert report["proportional"] == pytest.approx((0.5 + 0.0) / 2)
    assert report["pass_at_k"] == pytest.approx(0.5)
    dims = report["per_dimension"]
    # shadow: C and D defective; rollout 1 left both out, rollout 2 picked D -> (2 + 1) / 2 / 2 caught
    assert dims["physical_shadow"] == {"samples": 1, "exact": 0.5, "proportional": 0.5, "caught": 0.75}
    assert dims["placement_layout"]["caught"] == pytest.approx(0.5)
    assert dims["appearance_deformation"] == {
        "samples": 0,
        "exact": None,
        "proportional": None,
        "caught": None,
    }


# --------------------------------------------------------------------------- answer parsing


@pytest.mark.parametrize(
    ("reply", "want"),
    [
        ("A and C", "A,C"),
        ("A, C", "A,C"),
        ("<answer>A,C</answer>", "A,C"),
        ("<think>C looks fine, <answer>D</answer>?</think>\n<answer>B</answer>", "B"),
        ("none", "none"),
        ("None of them.", "none"),
        ("a, c", "A,C"),
        ("AC", "A,C"),
        ("The answer is B.", "B"),
        ("Final answer: **B, D**", "B,D"),
        ("Candidates A and C are acceptable.", "A,C"),
        ('{"final_answer": ["A", "C"]}', "A,C"),
        ('```json\n{"final_answer": []}\n```', "none"),
        (r"Final answer: \boxed{A,C}", "A,C"),
        (r"\boxed{\text{none}}", "none"),
        ("Answer: A, C (B and D have warped labels)", "A,C"),
        ("**Answer:** B", "B"),
        ("junk", None),
        ("A or C", None),
        ("none, A", None),
        ("I think A", None),
        ("<answer></answer>", None),
        ("", None),
        ("first line\nsecond line", None),
    ],
)
def test_parse_reply_examples(reply: str, want: str | None) -> None:
    got = parse_reply(reply)
    assert (None if got is None else format_answer(got)) == want


@settings(deadline=None)
@given(subsets, st.sampled_from([",", ", ", " and ", " ", ";"]), st.booleans(), st.booleans())
def test_parse_reply_reads_any_spelling_of_a_subset(
    answer: frozenset[str], sep: str, lower: bool, tagged: bool
) -> None:
    letters = [s.lower() if lower else s for s in SLOTS if s in answer]
    text = sep.join(letters) or "none"
    if tagged:
        text = f"<think>Looking at A, B, C and D.</think><answer>{text}</answer>"
    assert parse_reply(text) == answer


@settings(deadline=None)
@given(st.text())
def test_parse_reply_never_raises_and_returns_slots(text: str) -> None:
    got = parse_reply(text)
    assert got is None or got <= frozenset(SLOTS)

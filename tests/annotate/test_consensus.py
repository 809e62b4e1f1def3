"""Consensus and Krippendorff's alpha: pure functions, checked against textbook values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aesdata.annotate.consensus import agreement_report, consensus, krippendorff_alpha_nominal, merged_boxes
from aesdata.regions import merge
from aesdata.schema import DIMENSIONS, SLOTS, Judgement, Region


def columns(*coders: str) -> list[dict[str, str]]:
    """Reliability data as in the papers: one string per coder, '.' for a missing value."""
    rows = [c.split() for c in coders]
    return [{f"c{i}": v for i, v in enumerate(unit) if v != "."} for unit in zip(*rows, strict=True)]


def test_alpha_matches_krippendorff_2011_nominal_example():
    # "Computing Krippendorff's Alpha-Reliability" (2011), 4 coders, 12 units, missing data: 0.743.
    units = columns(
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    )
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.743, abs=5e-4)


def test_alpha_matches_krippendorff_binary_two_coder_example():
    # Krippendorff, Content Analysis (2004), two observers, ten units, binary: 0.095.
    units = columns("0 1 0 0 0 0 0 0 1 0", "1 1 1 0 0 1 0 0 0 0")
    assert krippendorff_alpha_nominal(units) == pytest.approx(0.095, abs=5e-4)


def test_alpha_perfect_agreement_is_one_and_degenerate_cases_are_undefined():
    assert krippendorff_alpha_nominal(columns("a b a b", "a b a b")) == 1.0
    assert krippendorff_alpha_nominal(columns("a a a", "a a a")) is None  # no expected disagreement
    assert krippendorff_alpha_nominal([{"x": 1}, {"y": 2}]) is None  # nothing pairable


def test_alpha_systematic_disagreement_is_negative():
    assert krippendorff_alpha_nominal(columns("a b a b", "b a b a")) < 0


A = Judgement.from_defects({"B": ["physical_shadow"], "C": ["placement_layout"], "D": ["placement_layout"]})
AB = Judgement.from_defects({"C": ["placement_layout"], "D": ["appearance_deformation"]})


def test_one_annotator_is_the_label():
    result = consensus([AB])
    assert result.judgement == AB and result.agreement == 1.0 and not result.needs_review


def test_majority_per_slot_and_disagreement_flags_review():
    result = consensus([A, A, AB])
    assert result.judgement.answer == ["A"]
    assert result.judgement.defects["B"] == ["physical_shadow"]
    assert result.judgement.defects["D"] == ["placement_layout"]  # 2 of 3 rejecters tagged it
    assert result.agreement == pytest.approx(2 / 3)
    assert result.needs_review


def test_a_tie_is_not_acceptable_and_needs_review():
    result = consensus([A, AB])
    assert result.judgement.answer == ["A"]  # B: one accepts, one rejects
    assert result.judgement.defects["B"] == ["physical_shadow"]
    # D: the two rejecters disagree on why, so both most frequent tags stay.
    assert result.judgement.defects["D"] == ["appearance_deformation", "placement_layout"]
    assert result.needs_review and result.agreement == 0.5


def test_consensus_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        consensus([])


judgements = st.builds(
    Judgement.from_defects,
    st.fixed_dictionaries({s: st.sets(st.sampled_from(DIMENSIONS), max_size=2) for s in SLOTS}),
)


@given(st.lists(judgements, min_size=1, max_size=5))
def test_consensus_is_always_a_valid_judgement_and_unanimity_is_never_flagged(js):
    result = consensus(js)
    assert set(result.judgement.answer) <= set(SLOTS)
    if all(j.answer == js[0].answer for j in js):
        assert not result.needs_review and result.judgement.answer == js[0].answer


@given(judgements)
def test_identical_annotators_agree_fully(j):
    report = agreement_report({"s1": {"x": j, "y": j}, "s2": {"x": j, "y": j}})
    assert report["full_agreement"] == 1.0
    assert report["alpha_acceptance"] in (1.0, None)  # None when every slot had the same value


def test_agreement_report_ignores_single_annotator_samples():
    report = agreement_report({"s1": {"x": A}})
    assert report["full_agreement"] is None and report["alpha_acceptance"] is None


def _boxed(slot: str, dims: list[str], *boxes: tuple[str, tuple[float, float, float, float]]) -> Judgement:
    return Judgement.from_defects({slot: dims}, {slot: [Region(dimension=d, box=b) for d, b in boxes]})


def test_consensus_merges_the_boxes_of_the_annotators_who_tagged_the_dimension():
    shadow, deform = "physical_shadow", "appearance_deformation"
    judgements = [
        _boxed("B", [shadow, deform], (shadow, (0.1, 0.1, 0.4, 0.4)), (deform, (0.7, 0.7, 0.2, 0.2))),
        _boxed("B", [shadow], (shadow, (0.2, 0.1, 0.4, 0.5))),
        _boxed("B", [shadow], (shadow, (0.1, 0.2, 0.3, 0.3)), (shadow, (0.8, 0.0, 0.1, 0.1))),  # a lone extra box
        _boxed("B", [deform], (deform, (0.0, 0.0, 0.5, 0.5))),  # did not tag the shadow: its boxes do not count
    ]
    result = consensus(judgements).judgement
    assert result.defects["B"] == [shadow]  # deformation: 2 of 4
    [merged] = result.regions["B"]
    assert merged.dimension == shadow  # the median corners of the three overlapping shadow boxes
    assert merged.box == pytest.approx((0.1, 0.1, 0.4, 0.4))


def test_merged_boxes_keep_each_defect_marked_by_half_of_those_who_drew():
    left, right = (0.0, 0.0, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)
    nudged = (0.05, 0.0, 0.2, 0.2)
    assert merged_boxes([[left, right], [right, nudged], []]) == [merge([left, nudged]), merge([right, right])]
    assert merged_boxes([[left], [right], [right]]) == [merge([right, right])]  # left: 1 of 3
    assert merged_boxes([[], []]) == []


def test_box_agreement_is_the_mean_pairwise_iou_per_dimension():
    shadow = "physical_shadow"
    same = _boxed("A", [shadow], (shadow, (0.0, 0.0, 0.5, 0.5)))
    half = _boxed("A", [shadow], (shadow, (0.0, 0.0, 0.5, 0.25)))
    untouched = _boxed("A", [shadow])  # tagged, no box: not a pair
    figures = agreement_report({"s1": {"a": same, "b": half, "c": untouched}, "s2": {"a": same, "b": same}})
    assert figures["iou_physical_shadow"] == pytest.approx((0.5 + 1.0) / 2)
    assert figures["iou_appearance_deformation"] is None

"""Region geometry and words: IoU, consensus boxes, grounding, and locations checked in rationales."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aesdata.cot.template import template_rationale
from aesdata.cot.validate import Limits, check_locations
from aesdata.regions import best_match, contradicts, grounding, iou, merge, place, stated_places
from aesdata.schema import Judgement, Observation, Region

frac = st.floats(0.0, 0.5, allow_nan=False)
size = st.floats(0.01, 0.5, allow_nan=False)
boxes = st.tuples(frac, frac, size, size)


@given(boxes, boxes)
def test_iou_is_symmetric_bounded_and_one_on_itself(a: tuple[float, ...], b: tuple[float, ...]) -> None:
    assert iou(a, b) == pytest.approx(iou(b, a))
    assert 0.0 <= iou(a, b) <= 1.0 + 1e-9
    assert iou(a, a) == pytest.approx(1.0)


def test_iou_of_known_boxes() -> None:
    assert iou((0, 0, 0.5, 0.5), (0.25, 0, 0.5, 0.5)) == pytest.approx(1 / 3)
    assert iou((0, 0, 0.1, 0.1), (0.5, 0.5, 0.1, 0.1)) == 0.0


def test_merge_takes_the_median_so_one_careless_box_does_not_drag_it() -> None:
    close = [(0.10, 0.10, 0.20, 0.20), (0.12, 0.11, 0.20, 0.19), (0.11, 0.09, 0.21, 0.22)]
    merged = merge([*close, (0.7, 0.7, 0.25, 0.25)])
    assert all(iou(merged, b) > 0.75 for b in close)
    with pytest.raises(ValueError):
        merge([])


def test_grounding_scores_only_dimensions_with_a_true_region() -> None:
    truth = {"A": [Region(dimension="physical_shadow", box=(0.0, 0.5, 0.5, 0.5))],
             "C": [Region(dimension="appearance_deformation", box=(0.25, 0.25, 0.5, 0.5))]}
    predicted = {"A": [Region(dimension="physical_shadow", box=(0.0, 0.5, 0.5, 0.5))]}
    assert grounding(predicted, truth) == {"physical_shadow": 1.0, "appearance_deformation": 0.0}
    assert best_match([(0.25, 0.25, 0.5, 0.5)], [(0.25, 0.25, 0.5, 0.5), (0.0, 0.0, 0.1, 0.1)]) == 0.5


PLACES = [((0.0, 0.0, 0.2, 0.2), "upper left"), ((0.4, 0.4, 0.2, 0.2), "centre"),
          ((0.7, 0.8, 0.2, 0.1), "lower right"), ((0.4, 0.0, 0.2, 0.2), "top centre"), ((0.0, 0.4, 0.2, 0.2), "left")]


@pytest.mark.parametrize(("box", "words"), PLACES)
def test_place_names_the_ninth_of_the_box_centre(box: tuple[float, ...], words: str) -> None:
    assert place(box) == words


def test_only_stated_locations_are_read_not_directions() -> None:
    assert stated_places("a dent in the upper left of the bottle, light from the left") == ["upper left"]
    assert stated_places("the shadow falls toward the right") == []
    assert stated_places("on the right side the label warps; at the bottom edge it tears") == ["right", "bottom"]


def test_a_location_contradicts_a_box_it_does_not_reach() -> None:
    top_left = [(0.05, 0.05, 0.25, 0.25)]
    assert contradicts("a bend in the lower right corner", top_left) == "lower right"
    assert contradicts("a bend in the upper left", top_left) is None
    assert contradicts("the product is bent", top_left) is None  # no place named: nothing to check


def _judgement() -> Judgement:
    return Judgement.from_defects({"C": ["appearance_deformation"]},
                                  {"C": [Region(dimension="appearance_deformation", box=(0.05, 0.05, 0.25, 0.25))]})


def test_the_validator_rejects_a_note_that_puts_the_defect_elsewhere() -> None:
    wrong = Observation(slot="C", dimension="appearance_deformation", defective=True,
                        note="the cap is crushed in the lower right of the image")
    right = wrong.model_copy(update={"note": "the cap is crushed in the upper left"})
    (problem,) = check_locations([wrong], _judgement())
    assert problem.about_label and "lower right" in problem.reason and "upper left" in problem.reason
    assert check_locations([right], _judgement()) == []


def test_template_rationales_say_where_a_marked_defect_is_and_stay_valid() -> None:
    rationale = template_rationale("s1", _judgement(), Limits())
    assert rationale.status == "valid", rationale.errors
    (note,) = [o.note for o in rationale.observations if o.slot == "C" and o.defective]
    assert "in the upper left of the image" in note


def test_boxes_in_a_model_reply_are_read_and_malformed_ones_are_no_boxes() -> None:
    from aesdata.evaluate.answers import parse_regions

    reply = ('<think>C bends</think><answer>A</answer><regions>[{"slot": "c", "dimension": '
             '"appearance_deformation", "box": [0.1, 0.1, 0.3, 0.3]}]</regions>')
    assert parse_regions(reply) == {"C": [Region(dimension="appearance_deformation", box=(0.1, 0.1, 0.3, 0.3))]}
    assert parse_regions("<answer>A</answer>") is None
    shadow = '{"slot": "%s", "dimension": "physical_shadow", "box": %s}'
    assert parse_regions(f"<regions>[{shadow % ('E', '[0, 0, 1, 1]')}]</regions>") is None  # no such slot
    assert parse_regions(f"<regions>[{shadow % ('A', '[0.9, 0, 0.5, 1]')}]</regions>") is None  # off the image
    assert parse_regions("<regions>not json</regions>") is None

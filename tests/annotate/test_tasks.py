"""Judgement <-> Label Studio result, and validation of what the server hands back."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aesdata.annotate.pseudonym import load_key, pseudonym
from aesdata.annotate.tasks import (
    ACCEPTABLE,
    RATIONALE,
    SOURCE_IMAGE,
    data_key,
    defects_control,
    judgement_result,
    parse_result,
    regions_control,
)
from aesdata.assets import asset_path
from aesdata.schema import DIMENSIONS, SLOTS, Judgement, Region

judgements = st.builds(
    Judgement.from_defects,
    st.fixed_dictionaries({s: st.sets(st.sampled_from(DIMENSIONS), max_size=4) for s in SLOTS}),
)


@given(judgements)
def test_result_round_trips(judgement):
    assert parse_result(judgement_result(judgement)) == (judgement, None)


def _rect(slot, x, y, w, h, *labels, rotation=0, size=(640, 480)):
    """A rectangle as Label Studio posts it: percent of the image, with the image's pixel size."""
    return {"from_name": regions_control(slot), "to_name": f"img_{slot}", "type": "rectanglelabels",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": list(labels)}}


TAGGED = [{"from_name": defects_control("B"), "value": {"choices": ["physical_shadow", "placement_layout"]}},
          {"from_name": ACCEPTABLE, "value": {"choices": ["A", "C", "D"]}}]


def test_drawn_rectangles_become_regions_of_their_slot_in_fractions_clipped_to_the_image():
    result = TAGGED + [_rect("B", 10, 20, 30, 40, "physical_shadow"),
                       _rect("B", 80, 90, 35, 25, "placement_layout"),  # drawn past the corner: clipped
                       _rect("B", 50, 10, 20, 10, "physical_shadow")]
    judgement, _ = parse_result(result)
    assert judgement.regions == {"B": [Region(dimension="physical_shadow", box=(0.1, 0.2, 0.3, 0.4)),
                                       Region(dimension="physical_shadow", box=(0.5, 0.1, 0.2, 0.1)),
                                       Region(dimension="placement_layout", box=(0.8, 0.9, 0.2, 0.1))]}
    assert parse_result(judgement_result(judgement))[0] == judgement  # pre-annotations carry the regions
    # a quarter turn (clockwise, about the top-left corner, in pixels) is stored as its upright bounding box
    [turned] = parse_result(TAGGED + [_rect("B", 50, 10, 20, 10, "physical_shadow", rotation=90)])[0].regions["B"]
    assert turned.box == pytest.approx((0.5 - 0.1 * 480 / 640, 0.1, 0.1 * 480 / 640, 0.2 * 640 / 480), abs=1e-6)


@pytest.mark.parametrize(
    ("rect", "reason"),
    [
        (_rect("C", 10, 10, 20, 20, "physical_shadow"),
         "slot C has a region for physical_shadow but no such defect tag"),
        (_rect("B", 10, 10, 20, 20, "extension_rationality"), "slot B has a region for extension_rationality"),
        (_rect("B", 10, 10, 20, 20, "B: shadow"), "unknown label(s) B: shadow"),
        (_rect("B", 10, 10, 20, 20), "a rectangle without a dimension label"),
        (_rect("B", 100, 10, 20, 20, "physical_shadow"), "no area inside the image"),
        ({**_rect("B", 1, 1, 1, 1, "physical_shadow"), "value": {"rectanglelabels": ["physical_shadow"]}},
         "without numeric x, y, width, height"),
    ],
)
def test_a_bad_rectangle_is_one_line_and_the_annotation_is_not_used(rect, reason):
    with pytest.raises(ValueError) as err:
        parse_result(TAGGED + [rect])
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_an_absent_acceptable_choice_is_the_empty_answer():
    """Label Studio leaves an empty Choices out: every candidate tagged, no acceptable item, is "none"."""
    rejected = Judgement.from_defects({s: ["physical_shadow"] for s in SLOTS})
    result = [item for item in judgement_result(rejected) if item["from_name"] != ACCEPTABLE]
    assert [i["from_name"] for i in result] == [defects_control(s) for s in SLOTS]
    judgement, _ = parse_result(result)
    assert judgement.answer == [] and judgement == rejected


def test_acceptable_ticks_are_a_cross_check_of_the_tags():
    """Only tags, no ticks: B's and D's missing ticks contradict their lack of tags."""
    tags_only = [{"from_name": defects_control(s), "value": {"choices": ["placement_layout"]}} for s in "AC"]
    with pytest.raises(ValueError, match="slot B is marked unacceptable but has no defect tag"):
        parse_result(tags_only)
    ticks = [{"from_name": ACCEPTABLE, "value": {"choices": ["B", "D"]}}]
    assert parse_result(tags_only + ticks)[0] == Judgement.from_defects({"A": ["placement_layout"],
                                                                         "C": ["placement_layout"]})


def test_rationale_text_is_kept():
    result = judgement_result(Judgement.from_defects({}))
    result.append(
        {"from_name": RATIONALE, "to_name": SOURCE_IMAGE, "type": "textarea", "value": {"text": [" all fine "]}}
    )
    assert parse_result(result)[1] == "all fine"


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ([], "nothing ticked"),
        ([{"from_name": RATIONALE, "value": {"text": ["looks fine"]}}], "nothing ticked"),
        ([{"from_name": ACCEPTABLE, "value": {"choices": ["A", "E"]}}], "unknown choice(s) E"),
        ([{"from_name": "mood", "value": {"choices": ["x"]}}], "unknown control 'mood'"),
        (
            [{"from_name": ACCEPTABLE, "value": {"choices": ["A", "B", "C"]}}],
            "slot D is marked unacceptable but has no defect tag",
        ),
        (
            [
                {"from_name": ACCEPTABLE, "value": {"choices": ["A", "B", "C", "D"]}},
                {"from_name": defects_control("A"), "value": {"choices": ["physical_shadow"]}},
            ],
            "slot A is marked acceptable but tagged physical_shadow",
        ),
        ([{"from_name": ACCEPTABLE, "value": {"choices": "A"}}], "has no list of choices"),
    ],
)
def test_bad_results_say_why_in_one_line(result, reason):
    with pytest.raises(ValueError) as err:
        parse_result(result)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_labeling_config_names_what_the_code_reads():
    root = ET.parse(asset_path("label_studio_config.xml")).getroot()
    controls = {el.get("name"): el for el in root.iter() if el.tag in ("Choices", "TextArea")}
    assert set(controls) == {ACCEPTABLE, RATIONALE, *(defects_control(s) for s in SLOTS)}
    boxes = {el.get("name"): el for el in root.iter("RectangleLabels")}
    assert set(boxes) == {regions_control(s) for s in SLOTS}
    for slot in SLOTS:  # labelled like the tags, drawn on that candidate's image
        assert boxes[regions_control(slot)].get("toName") == f"img_{slot}"
        assert [(lab.get("value"), lab.get("alias")) for lab in boxes[regions_control(slot)]] == [
            (c.get("value"), c.get("alias")) for c in controls[defects_control(slot)]]
    assert [c.get("value") for c in controls[ACCEPTABLE]] == list(SLOTS)
    for slot in SLOTS:
        assert [c.get("alias") for c in controls[defects_control(slot)]] == list(DIMENSIONS)
    values = {el.get("value") for el in root.iter("Image")}
    assert values == {"$original", *(f"${data_key(s)}" for s in SLOTS)}  # never "$source"
    hotkeys = [c.get("hotkey") for el in [*controls.values(), *boxes.values()] for c in el]
    assert None not in hotkeys and len(set(hotkeys)) == len(hotkeys)
    assert not {"v", "h"} & set(hotkeys)  # Label Studio's pointer and hand tools on an image with boxes
    for slot in SLOTS:  # Shift + a tag's key picks the box label of that tag
        tag_keys = [c.get("hotkey") for c in controls[defects_control(slot)]]
        assert [lab.get("hotkey") for lab in boxes[regions_control(slot)]] == [f"shift+{k}" for k in tag_keys]
    # every control sits in a View with an idAttr (tests and CSS find it)
    parents = {child: parent for parent in root.iter() for child in parent}
    assert all(parents[el].tag == "View" and parents[el].get("idAttr") for el in [*controls.values(), *boxes.values()])


def test_pseudonyms_are_keyed_stable_and_never_the_user_id(tmp_path, monkeypatch):
    monkeypatch.delenv("AESDATA_PSEUDONYM_KEY", raising=False)
    key = load_key(tmp_path)
    assert load_key(tmp_path) == key and (tmp_path / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    p1 = pseudonym(key, "http://127.0.0.1:8080", 1)
    assert p1 == pseudonym(key, "http://127.0.0.1:9999", 1)  # same server, another port
    assert p1 != pseudonym(key, "http://127.0.0.1:8080", 2)
    assert p1 != pseudonym(b"another key", "http://127.0.0.1:8080", 1)
    monkeypatch.setenv("AESDATA_PSEUDONYM_KEY", "shared-key-of-at-least-32-bytes-for-hmac")
    assert load_key(tmp_path) == b"shared-key-of-at-least-32-bytes-for-hmac"

"""The data contract's rules, and the JSON Schemas generated from it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from aesdata import schemas_export
from aesdata.assets import asset_path
from aesdata.schema import (
    DIMENSIONS,
    SLOTS,
    Judgement,
    PublishedRow,
    Rationale,
    format_answer,
    format_rationale,
    parse_answer,
    parse_rationale,
)

defects_st = st.fixed_dictionaries({s: st.sets(st.sampled_from(DIMENSIONS)) for s in SLOTS})


def test_acceptable_exactly_when_no_defect():
    j = Judgement.from_defects({"B": ["physical_shadow"], "D": ["placement_layout", "appearance_deformation"]})
    assert j.answer == ["A", "C"]
    assert j.defects["D"] == ["appearance_deformation", "placement_layout"], "canonical dimension order"
    with pytest.raises(ValidationError, match="slot B is marked acceptable but tagged physical_shadow"):
        Judgement(answer=["A", "B", "C"],
                  defects={"A": [], "B": ["physical_shadow"], "C": [], "D": ["placement_layout"]})
    with pytest.raises(ValidationError, match="slot D is marked unacceptable but has no defect tag"):
        Judgement(answer=["A", "B", "C"], defects={"A": [], "B": [], "C": [], "D": []})


def test_judgement_rejects_missing_slots_unknown_names_and_repeats():
    with pytest.raises(ValidationError, match="missing for slot"):
        Judgement(answer=["A"], defects={"A": []})
    with pytest.raises(ValidationError):
        Judgement.from_defects({"A": ["blurry"]})
    with pytest.raises(ValidationError, match="repeats a slot"):
        Judgement(answer=["A", "A", "B", "C", "D"], defects={s: [] for s in SLOTS})


@given(defects_st)
def test_any_defect_assignment_is_a_consistent_judgement(defects):
    j = Judgement.from_defects(defects)
    assert set(j.answer) == {s for s in SLOTS if not defects[s]}
    assert Judgement.model_validate_json(j.model_dump_json()) == j


@given(st.sets(st.sampled_from(SLOTS)))
def test_answer_text_round_trips(answer):
    text = format_answer(answer)
    assert parse_answer(text) == answer
    assert text == "none" if not answer else "," not in text or text.split(",") == sorted(text.split(","))


def test_parse_answer_names_the_bad_slot():
    with pytest.raises(ValueError, match="not a slot: E"):
        parse_answer("A,E")


def test_rationale_form_round_trips_and_failed_needs_reasons():
    text = format_rationale("B's shadow falls left while the light comes from the left.", {"A", "C"})
    assert text.endswith("<answer>A,C</answer>")
    assert parse_rationale(text)[1] == {"A", "C"}
    with pytest.raises(ValueError):
        parse_rationale("no tags here")
    with pytest.raises(ValidationError, match="must say why"):
        Rationale(sample_id="s", mode="template", status="failed")
    with pytest.raises(ValidationError, match="needs its reasoning"):
        Rationale(sample_id="s", mode="template", status="valid")


def test_published_row_checks_rationale_form():
    base = dict(sample_id="0123456789abcdef", split="train", question="q", answer="A", defects={s: [] for s in SLOTS},
                provenance=dict(generator="g", seeds=[1, 2, 3, 4], annotators=[], label_origin="synthetic"))
    PublishedRow(**base, rationale=format_rationale("ok", {"A"}))
    with pytest.raises(ValidationError):
        PublishedRow(**base, rationale="free text without tags")
    with pytest.raises(ValidationError):  # a sample id is 16 hex digits: it names files in exports
        PublishedRow(**{**base, "sample_id": "../../x"})


def test_schemas_folder_matches_the_models():
    """Fails when a model changed without `make schemas` (or a schema file was hand-edited)."""
    folder = asset_path("schemas")
    expected = schemas_export.render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "schemas/ has missing or stale files: run `make schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} drifted from aesdata/schema.py: run `make schemas`"


def test_schema_export_writes_and_prunes(tmp_path):
    (tmp_path / "old_model.json").write_text("{}")
    written = schemas_export.write(tmp_path)
    assert {p.name for p in written} == set(schemas_export.render())
    assert not (tmp_path / "old_model.json").exists()
    assert schemas_export.write(tmp_path) == [], "a second write changes nothing"

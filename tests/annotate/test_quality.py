"""Who decides a label (settle) and how reliable each annotator is (quality): pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aesdata.annotate.consensus import settle
from aesdata.annotate.quality import below_gold, score_annotators
from aesdata.schema import DIMENSIONS, SLOTS, Judgement, Region

TRUTH = Judgement.from_defects({"B": ["physical_shadow"], "D": ["placement_layout", "appearance_deformation"]})
NONE_OK = Judgement.from_defects({s: ["extension_rationality"] for s in SLOTS})
ALL_OK = Judgement.from_defects({})
B_ONLY = Judgement.from_defects({"D": ["placement_layout"]})  # accepts A, B, C: picks B wrongly

judgements = st.builds(
    Judgement.from_defects,
    st.fixed_dictionaries({s: st.sets(st.sampled_from(DIMENSIONS), max_size=2) for s in SLOTS}),
)


def test_gold_scores_exact_proportional_and_defects_caught_per_dimension():
    per_sample = {"g": {"good": TRUTH, "lax": ALL_OK, "harsh": NONE_OK}, "x": {"good": ALL_OK, "lax": ALL_OK}}
    scores = score_annotators(per_sample, {"g": TRUTH}, {"good": [3.0, 5.0, 10.0]})
    good, lax, harsh = scores["good"], scores["lax"], scores["harsh"]
    assert (good.tasks, good.gold_tasks, good.gold_exact, good.gold_proportional) == (2, 1, 1.0, 1.0)
    assert good.caught == {"appearance_deformation": 1.0, "physical_shadow": 1.0, "placement_layout": 1.0,
                           "extension_rationality": None}  # no gold defect along extension: nothing to catch
    assert (lax.gold_exact, lax.gold_proportional) == (0.0, 0.0)  # picked B and D, which are defective
    assert lax.caught["physical_shadow"] == 0.0
    assert (harsh.gold_exact, harsh.gold_proportional) == (0.0, 0.0)  # empty pick: no slot found
    assert harsh.caught["placement_layout"] == 0.0  # rejected D, but for the wrong reason
    assert good.median_seconds == 5.0 and lax.median_seconds is None


def test_gold_with_regions_scores_each_annotators_localisation_per_dimension():
    shadow, deform = "physical_shadow", "appearance_deformation"
    true = {"B": [Region(dimension=shadow, box=(0.0, 0.0, 0.4, 0.4))],
            "D": [Region(dimension=deform, box=(0.5, 0.5, 0.5, 0.5))]}
    known = Judgement.from_defects(TRUTH.defects, true)
    exact_boxes = known
    half = Judgement.from_defects(TRUTH.defects, {"B": [Region(dimension=shadow, box=(0.0, 0.0, 0.4, 0.2))]})
    per_sample = {"g": {"exact": exact_boxes, "half": half, "tags": TRUTH}, "x": {"exact": ALL_OK}}
    scores = score_annotators(per_sample, {"g": known})
    assert scores["exact"].located == {deform: 1.0, shadow: 1.0, "placement_layout": None,
                                       "extension_rationality": None}  # no true box for placement: unscored
    assert scores["half"].located[shadow] == pytest.approx(0.5) and scores["half"].located[deform] == 0.0
    assert scores["tags"].located[shadow] == 0.0 and scores["tags"].caught[shadow] == 1.0  # tagged, not located
    assert score_annotators(per_sample, {"g": TRUTH})["exact"].located[shadow] is None  # gold without regions


def test_agreement_is_against_the_consensus_of_the_others():
    per_sample = {"s1": {"a": TRUTH, "b": TRUTH, "c": ALL_OK}, "s2": {"a": B_ONLY}}
    scores = score_annotators(per_sample, {})
    assert (scores["a"].compared, scores["a"].agreement) == (1, 1.0)  # b and c tie on B and D: rejected
    assert (scores["c"].compared, scores["c"].agreement) == (1, 0.0)
    assert scores["a"].tasks == 2 and scores["a"].gold_exact is None


def test_only_annotators_measured_on_gold_and_under_the_threshold_are_left_out():
    scores = score_annotators({"g": {"good": TRUTH, "lax": ALL_OK}, "x": {"new": ALL_OK}}, {"g": TRUTH})
    assert below_gold(scores, 0.5) == {"lax"}
    assert below_gold(scores, 0.0) == set()


def test_a_reviewer_settles_and_agreement_is_measured_against_them():
    settled = settle({"a": TRUTH, "b": ALL_OK, "rev": NONE_OK}, reviewers={"rev"})
    assert (settled.judgement, settled.reviewed_by, settled.needs_review) == (NONE_OK, "rev", False)
    assert settled.agreement == 0.0


def test_left_out_annotators_do_not_vote_and_are_recorded():
    settled = settle({"a": TRUTH, "b": TRUTH, "lax": ALL_OK}, left_out={"lax"})
    assert settled.judgement == TRUTH and settled.left_out == ("lax",)
    assert settled.agreement == 1.0 and not settled.needs_review


def test_when_everyone_is_left_out_everyone_votes_and_the_sample_goes_to_review():
    settled = settle({"a": TRUTH}, left_out={"a"})
    assert settled.judgement == TRUTH and settled.left_out == () and settled.needs_review


@given(st.dictionaries(st.sampled_from("abcde"), judgements, min_size=1))
def test_settle_without_team_roles_is_plain_consensus(by):
    from aesdata.annotate.consensus import consensus

    settled = settle(by)
    expected = consensus([by[a] for a in sorted(by)])
    assert settled.judgement == expected.judgement and settled.needs_review == expected.needs_review
    assert settled.agreement == (expected.agreement if len(by) > 1 else None)


def test_settle_needs_a_judgement():
    with pytest.raises(ValueError):
        settle({})


def test_the_dataset_card_shows_overlap_left_out_alpha_and_gold_accuracy():
    from aesdata.publish.card import CardStats, _team_section

    stats = CardStats()
    stats.overlaps.update({3: 7, 1: 2})
    stats.left_out.add("ann-lax")
    stats.annotation_quality = {
        "alpha": {"acceptance": 0.61, "physical_shadow": None, "placement_layout": 0.4},
        "box_iou": {"physical_shadow": None, "placement_layout": 0.52},
        "gold_samples": 2,
        "min_gold_accuracy": 0.5,
        "annotators": [
            {"annotator": "ann-good", "tasks": 9, "gold_tasks": 2, "gold_exact": 1.0, "gold_proportional": 1.0,
             "agreement": 0.75, "left_out": False, "located_placement_layout": 0.8},
            {"annotator": "ann-lax", "tasks": 9, "gold_tasks": 2, "gold_exact": 0.0, "gold_proportional": 0.25,
             "agreement": None, "left_out": True},
        ],
    }
    text = _team_section(stats)
    assert "1 annotator(s): 2 rows, 3 annotator(s): 7 rows" in text
    assert "left out of the consensus for low gold accuracy: 1" in text
    assert "| acceptance | 0.610 |  |" in text and "| physical_shadow | n/a | n/a |" in text
    assert "| placement_layout | 0.400 | 0.520 |" in text  # people agree on where, not only on whether
    assert "| ann-lax | 9 | 2 | 0.000 | 0.250 | n/a | yes |" in text
    assert "| ann-good | n/a | n/a | 0.800 | n/a |" in text and "| ann-lax | n/a | n/a | n/a | n/a |" in text
    del stats.annotation_quality["box_iou"]  # figures pulled before boxes were scored
    for a in stats.annotation_quality["annotators"]:
        a.pop("located_placement_layout", None)
    assert "| placement_layout | 0.400 | n/a |" in _team_section(stats) and "Localisation" not in _team_section(stats)
    assert "scored on 2 gold sample(s)" in text and "under\n0.5 gold accuracy" in text
    assert "(overlap): n/a" in _team_section(CardStats()) and "alpha" not in _team_section(CardStats())


def test_gold_is_chosen_once_among_known_answers_and_a_rerun_chooses_no_more(ws):
    from aesdata.annotate.gold import choose_gold, gold_answers
    from tests.factories import make_samples

    ids = make_samples(ws, 8, seed=2) + make_samples(ws, 2, labelled=False, seed=3)
    first = choose_gold(ws, ids, 0.3)
    assert len(first) == 3 and set(first) <= set(ids[:8])  # only samples with a known answer
    assert choose_gold(ws, ids, 0.3) == sorted(first)  # an interrupted push, run again
    assert set(gold_answers(ws.db)) == set(first)
    assert choose_gold(ws, ids, 0.0) == []


def test_a_label_a_reviewer_settled_is_a_known_answer_and_wins_over_the_synthetic_one(ws):
    from aesdata import store
    from aesdata.annotate.gold import known_answers
    from aesdata.schema import Label
    from tests.factories import make_samples

    reviewed, synthetic_only, unreviewed = make_samples(ws, 3, seed=4)
    with ws.transaction() as db:
        store.upsert_label(db, Label(sample_id=reviewed, origin="human", judgement=NONE_OK, reviewed_by="ann-rev"))
        store.upsert_label(db, Label(sample_id=unreviewed, origin="human", judgement=ALL_OK))
    known = known_answers(ws.db, [reviewed, synthetic_only, unreviewed])
    assert known[reviewed] == (NONE_OK, "reviewed")
    assert known[synthetic_only][1] == "synthetic" and known[unreviewed][1] == "synthetic"

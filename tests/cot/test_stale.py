"""Stale rationales: a relabel (even one that keeps the answer) makes a rationale stale; cot rewrites it,
publish never publishes it and the card says so; review samples are not sent unless asked."""

from __future__ import annotations

from pathlib import Path

from aesdata import store
from aesdata.cot.stage import CotOptions, run_cot
from aesdata.llm.images import ImageEncoder
from aesdata.publish.stage import publish
from aesdata.schema import DIMENSIONS, SLOTS, Judgement, Label, Region
from aesdata.workspace import Workspace
from tests.cot.conftest import MAX_SIDE
from tests.cot.test_stage import rationales, serve
from tests.factories import make_samples
from tests.openai_server import image_digest, request_images
from tests.publish.helpers import load


def relabel_keeping_the_answer(ws: Workspace, sample_id: str) -> Judgement:
    """A human label with the same acceptable slots but another defect on a rejected candidate."""
    label = store.get_label(ws.db, sample_id)
    assert label is not None
    slot = next(s for s in SLOTS if label.judgement.defects[s])
    other = next(d for d in DIMENSIONS if d not in label.judgement.defects[slot])
    defects = {s: list(label.judgement.defects[s]) for s in SLOTS}
    defects[slot] = [other]
    judgement = Judgement.from_defects(defects)
    assert judgement.answer == label.judgement.answer and judgement != label.judgement
    with ws.transaction() as db:
        store.upsert_label(db, Label(sample_id=sample_id, origin="human", judgement=judgement, annotators=["ann-1"]))
    return judgement


def with_defect(ws: Workspace, ids: list[str]) -> str:
    return next(s for s in ids if (lab := store.get_label(ws.db, s)) is not None and len(lab.judgement.answer) < 4)


def test_a_relabel_that_keeps_the_answer_is_never_published_with_the_old_rationale(
    ws: Workspace, tmp_path: Path
) -> None:
    ids = make_samples(ws, 6)
    assert run_cot(ws, CotOptions(mode="template"))["valid"] == 6
    target = with_defect(ws, ids)
    assert rationales(ws, "template")[target].judgement_hash == store.judgement_hash(
        store.get_label(ws.db, target).judgement  # type: ignore[union-attr]
    )
    new = relabel_keeping_the_answer(ws, target)

    summary = publish(ws, "1.0.0", out=tmp_path / "v1", test_fraction=0)
    assert summary["stale_rationales"] == 1
    rows = {r["sample_id"]: r for r in load(tmp_path / "v1")["train"]}
    assert rows[target]["rationale"] is None and rows[target]["defects"] == new.defects  # not the old reasoning
    assert all(rows[s]["rationale"] for s in ids if s != target)
    card = (tmp_path / "v1" / "README.md").read_text()
    assert "## Left out" in card
    assert "rationale left out as stale (written from another judgement than the published label): 1" in card
    strict = publish(ws, "1.0.1", out=tmp_path / "v1s", test_fraction=0, require_rationale=True)
    assert strict["skipped_no_rationale"] == 1 and strict["train"] == 5

    again = run_cot(ws, CotOptions(mode="template"))  # stale by label: the next plain run rewrites it
    assert (again["selected"], again["stale_label"], again["valid"]) == (1, 1, 1)
    assert run_cot(ws, CotOptions(mode="template"))["selected"] == 0
    later = publish(ws, "1.1.0", out=tmp_path / "v2", test_fraction=0)
    assert later["stale_rationales"] == 0
    rows = {r["sample_id"]: r for r in load(tmp_path / "v2")["train"]}
    assert rows[target]["rationale"] == rationales(ws, "template")[target].text


def test_prompt_changes_wait_for_redo_stale_and_unhashed_rationales_count_as_stale(ws: Workspace) -> None:
    ids = make_samples(ws, 3)
    run_cot(ws, CotOptions(mode="template"))
    with ws.transaction() as db:
        db.execute("UPDATE rationales SET prompt_hash = 'older' WHERE sample_id = ?", (ids[0],))
        # as written before judgement hashes were recorded (what m310 leaves in older workspaces)
        db.execute(
            "UPDATE rationales SET judgement_hash = NULL, record = json_remove(record, '$.judgement_hash')"
            " WHERE sample_id = ?",
            (ids[1],),
        )
    plain = run_cot(ws, CotOptions(mode="template"))
    assert (plain["selected"], plain["stale_label"]) == (1, 1)  # the unhashed one: it may be from any label
    assert rationales(ws, "template")[ids[1]].judgement_hash is not None
    redo = run_cot(ws, CotOptions(mode="template", redo="stale"))
    assert redo["selected"] == 1 and "stale_label" not in redo  # the older prompt, only when asked
    assert rationales(ws, "template")[ids[0]].prompt_hash != "older"


def test_answer_driven_asks_again_only_for_the_relabelled_and_not_for_review(cot_ws_path: Path) -> None:
    with Workspace.open(cot_ws_path) as ws:
        ids = make_samples(ws, 5)
        with ws.transaction() as db:
            db.execute("UPDATE labels SET needs_review = 1 WHERE sample_id = ?", (ids[4],))
        server, _ = serve(ws, {})
        with server:
            first = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
            assert (first["selected"], first["valid"], first["awaiting_review"]) == (4, 4, 1)
            assert server.calls == 4
            target = with_defect(ws, ids[:4])
            relabel_keeping_the_answer(ws, target)
            # the scripted model answers from the labels it was built with: rebuild it for the new one
        server, _ = serve(ws, {})
        with server:
            again = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url))
            assert (again["selected"], again["stale_label"], again["valid"]) == (1, 1, 1)
            source = store.get_sample(ws.db, target).source_id  # type: ignore[union-attr]
            expected = image_digest(ImageEncoder(ws.blobs, max_side=MAX_SIDE).url(source))
            assert [image_digest(request_images(r.body)[0]) for r in server.requests] == [expected]
            asked = run_cot(ws, CotOptions(mode="answer-driven", base_url=server.base_url, include_review=True))
            assert (asked["selected"], asked["valid"]) == (1, 1) and server.calls == 2
        got = rationales(ws, "answer-driven")
        assert got[target].judgement_hash == store.judgement_hash(store.get_label(ws.db, target).judgement)  # type: ignore[union-attr]
        assert set(got) == set(ids)


def test_the_migration_backfills_a_judgement_hash_only_where_provable(ws_path: Path) -> None:
    with Workspace.open(ws_path) as ws:
        ids = make_samples(ws, 3)
        with ws.transaction() as db:  # labels settled long before the cot run, but for ids[1]
            db.execute("UPDATE labels SET updated_at = '2026-01-01T00:00:00+00:00' WHERE sample_id != ?", (ids[1],))
        run_cot(ws, CotOptions(mode="template"))
        with ws.transaction() as db:  # as an older workspace holds them: no hash, and for ids[2] no run in sight
            db.execute("UPDATE rationales SET judgement_hash = NULL, record = json_remove(record, '$.judgement_hash')")
            db.execute("UPDATE rationales SET created_at = '2026-02-01T00:00:00+00:00' WHERE sample_id = ?", (ids[2],))
            db.execute("DELETE FROM _migrations WHERE name = 'm310_backfill_judgement_hash'")
    with Workspace.open(ws_path) as ws:  # opening applies the migration again
        got = rationales(ws, "template")
        label = store.get_label(ws.db, ids[0])
        assert label is not None and got[ids[0]].judgement_hash == store.judgement_hash(label.judgement)
        assert got[ids[1]].judgement_hash is None and got[ids[2]].judgement_hash is None
        again = run_cot(ws, CotOptions(mode="template"))
        assert (again["selected"], again["stale_label"]) == (2, 2)


def test_moving_a_region_makes_the_rationale_stale(ws: Workspace) -> None:
    ids = make_samples(ws, 3)
    run_cot(ws, CotOptions(mode="template"))
    target = with_defect(ws, ids)
    label = store.get_label(ws.db, target)
    assert label is not None
    slot = next(s for s in SLOTS if label.judgement.defects[s])
    region = Region(dimension=label.judgement.defects[slot][0], box=(0.1, 0.1, 0.3, 0.3))
    moved = Judgement.from_defects(label.judgement.defects, {slot: [region]})  # type: ignore[arg-type]
    with ws.transaction() as db:
        store.upsert_label(db, label.model_copy(update={"judgement": moved}))
    again = run_cot(ws, CotOptions(mode="template"))  # template rationales say where a defect is
    assert (again["selected"], again["stale_label"]) == (1, 1)
    assert rationales(ws, "template")[target].judgement_hash == store.judgement_hash(moved)

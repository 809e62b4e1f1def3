"""Annotators' paths through the real labelling page: headless Debian chromium driven by Playwright.

Every answer a person can give there is pulled as given: some acceptable, none acceptable (Label Studio
then leaves the empty "acceptable" row out of the result), all acceptable, an edit, a skip, a deletion;
and a team of three walks the label stream, each handed every task, scored on a gold task.
The screenshot of the filled interface is what the README shows (refresh it with ``AESDATA_UPDATE_DOCS=1``;
otherwise it goes to the test's temporary folder only).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from aesdata import store
from aesdata.annotate.gold import gold_answers
from aesdata.annotate.pull import pull
from aesdata.annotate.push import push
from aesdata.annotate.team import add_annotators
from aesdata.cli.main import app
from aesdata.schema import SLOTS, Judgement
from aesdata.scoring import exact
from tests.annotate import page as ui
from tests.factories import make_samples

pytestmark = pytest.mark.slow

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "labelstudio.png"
REJECT_ALL = Judgement.from_defects({s: ["extension_rationality"] for s in SLOTS})
ACCEPT_ALL = Judgement.from_defects({})
TEAM_PASSWORD = "team-password-9f2c"


def _project_and_tasks(ws) -> tuple[int, dict[str, int]]:
    project = int(ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0])
    return project, dict(ws.db.execute("SELECT sample_id, task_id FROM ls_tasks"))


def test_an_annotation_submitted_in_the_browser_is_pulled(label_studio, ls_ws, tmp_path):
    [sample_id] = make_samples(ls_ws, 1, seed=7)
    push(ls_ws, files_root=label_studio.server.files_root, predictions="none")
    project, tasks = _project_and_tasks(ls_ws)
    shot = tmp_path / "labelstudio.png"
    given = Judgement.from_defects(
        {"B": ["physical_shadow"], "C": ["placement_layout"], "D": ["appearance_deformation"]}
    )

    with ui.chromium() as browser:
        page = ui.log_in(browser, label_studio.url, label_studio.server.username, label_studio.server.password,
                         to=ui.data_page(project, tasks[sample_id]))
        ui.wait_for_task(page)
        ui.tick(page, "A")
        page.keyboard.press("s")  # hotkey of "B: shadow"
        ui.tick(page, "C", "placement_layout")
        ui.tick(page, "D", "appearance_deformation")
        page.locator("#aes-rationale textarea").fill("B's shadow falls towards the light.")
        page.screenshot(path=str(shot))
        assert ui.submit(page) == 201

    assert shot.stat().st_size > 50_000
    if os.environ.get("AESDATA_UPDATE_DOCS") == "1":
        DOCS_SHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SHOT)

    summary = pull(ls_ws)
    assert summary["annotations_new"] == 1
    [annotation] = store.get_annotations(ls_ws.db, sample_id)
    assert annotation.judgement == given
    assert annotation.rationale == "B's shadow falls towards the light."
    assert annotation.lead_time_s is not None and annotation.lead_time_s > 0
    assert store.get_label(ls_ws.db, sample_id).origin == "human"


def test_a_box_drawn_on_a_candidate_is_pulled_as_its_region(label_studio, ls_ws, cli):
    """Done-when of the regions issue: a box dragged on C with a dimension label is stored where it was drawn."""
    [sample_id] = make_samples(ls_ws, 1, seed=11)
    push(ls_ws, files_root=label_studio.server.files_root, predictions="none")
    project, tasks = _project_and_tasks(ls_ws)
    drawn = (0.2, 0.3, 0.4, 0.25)

    with ui.chromium() as browser:
        page = ui.log_in(browser, label_studio.url, label_studio.server.username, label_studio.server.password,
                         to=ui.data_page(project, tasks[sample_id]))
        ui.wait_for_task(page)
        ui.fill(page, Judgement.from_defects({"C": ["appearance_deformation"]}))
        ui.draw_box(page, "C", "appearance_deformation", drawn)
        assert ui.submit(page) == 201

    summary = pull(ls_ws)
    assert (summary["annotations_new"], summary["annotations_invalid"]) == (1, 0)
    [annotation] = store.get_annotations(ls_ws.db, sample_id)
    assert annotation.judgement.defects["C"] == ["appearance_deformation"]
    [region] = annotation.judgement.regions["C"]
    assert region.dimension == "appearance_deformation"
    assert region.box == pytest.approx(drawn, abs=0.02)  # where the mouse went, in fractions of the image
    assert store.get_label(ls_ws.db, sample_id).judgement.regions == annotation.judgement.regions
    table = cli.invoke(app, ["annotate", "report"])
    assert table.exit_code == 0 and "box_iou" in table.output, table.output


def test_three_annotators_walk_the_label_stream_and_everything_they_submit_is_pulled(label_studio, ls_ws, cli):
    """Done-when of the annotation-team issue: three accounts, overlap 3, one rejects all four, gold scores."""
    ids = make_samples(ls_ws, 2, seed=21)
    pushed = push(ls_ws, files_root=label_studio.server.files_root, overlap=3, gold_fraction=0.5)
    assert (pushed["pushed"], pushed["gold"], pushed["overlap"]) == (2, 1, 3)
    project, tasks = _project_and_tasks(ls_ws)
    assert label_studio.client.projects.get(id=project).maximum_annotations == 3
    [gold_id] = gold_answers(ls_ws.db)
    known = {tasks[s]: store.get_label(ls_ws.db, s).judgement for s in ids}  # synthetic labels: the truth
    emails = [f"team{i}-{uuid.uuid4().hex[:6]}@aesdata.local" for i in range(3)]
    rows = add_annotators(ls_ws, emails, password_for=lambda email: TEAM_PASSWORD)
    assert [r["status"] for r in rows] == ["created"] * 3
    plans = [  # what each person enters on every task
        {t: REJECT_ALL for t in known},  # rejects all four candidates, "acceptable" row left empty
        known,  # the careful one
        {t: ACCEPT_ALL for t in known},
    ]

    with ui.chromium() as browser:
        for email, plan in zip(emails, plans, strict=True):
            page = ui.log_in(browser, label_studio.url, email, TEAM_PASSWORD, to=ui.data_page(project))
            served, instructions = ui.walk_stream(page, label_studio.url, project, plan)
            assert sorted(served) == sorted(known), f"{email} was not handed every task (overlap 3)"
            assert "What to do, per task" in instructions  # each is shown the guidelines first
            page.context.close()

    summary = pull(ls_ws)
    assert (summary["annotations_new"], summary["annotations_invalid"]) == (6, 0)
    assert summary["alpha_acceptance"] is not None
    by_email = {r["email"]: r["pseudonym"] for r in rows}
    for sample_id in ids:
        stored = {a.annotator: a.judgement for a in store.get_annotations(ls_ws.db, sample_id)}
        task = tasks[sample_id]
        assert stored == {by_email[e]: plan[task] for e, plan in zip(emails, plans, strict=True)}
        label = store.get_label(ls_ws.db, sample_id)
        assert sorted(label.annotators) == sorted(by_email.values()) and label.overlap == 3

    report = cli.invoke(app, ["annotate", "report", "--json"])
    assert report.exit_code == 0, report.output
    figures = json.loads(report.stdout)
    people = {a["annotator"]: a for a in figures["annotators"]}
    assert set(people) == set(by_email.values())
    gold_answer = frozenset(known[tasks[gold_id]].answer)
    for email, plan in zip(emails, plans, strict=True):
        row = people[by_email[email]]
        assert (row["tasks"], row["gold_tasks"], row["compared"]) == (2, 1, 2)
        assert row["gold_exact"] == exact(frozenset(plan[tasks[gold_id]].answer), gold_answer)
        assert row["median_seconds"] is not None and row["median_seconds"] > 0
    assert people[by_email[emails[1]]]["gold_exact"] == 1.0
    assert set(figures["alpha"]) == {"acceptance", "appearance_deformation", "physical_shadow", "placement_layout",
                                     "extension_rationality"}
    listed = cli.invoke(app, ["annotate", "annotators", "--json"])
    assert listed.exit_code == 0, listed.output
    counts = {r["email"]: r["annotations"] for r in json.loads(listed.stdout)}
    assert [counts[e] for e in emails] == [2, 2, 2]


def test_all_accepted_an_edit_a_skip_and_a_deletion_in_the_page_are_pulled(label_studio, ls_ws):
    accepted, skipped = make_samples(ls_ws, 2, seed=33)
    own = ls_ws.root / "assets" / "annotation" / "guidelines.md"  # the team's own edit of the guidelines
    own.parent.mkdir(parents=True)
    own.write_text("# Our rules\n\nA *label* that is cut off is an appearance defect.\n")
    push(ls_ws, files_root=label_studio.server.files_root, predictions="none", overlap=1)
    project, tasks = _project_and_tasks(ls_ws)
    edited = Judgement.from_defects({"C": ["physical_shadow"]})
    user, password = label_studio.server.username, label_studio.server.password

    with ui.chromium() as browser:
        page = ui.log_in(browser, label_studio.url, user, password, to=ui.data_page(project, tasks[accepted]))
        ui.wait_for_task(page)
        ui.fill(page, ACCEPT_ALL)
        assert ui.submit(page) == 201
        first = pull(ls_ws)
        assert first["annotations_new"] == 1
        assert store.get_label(ls_ws.db, accepted).judgement == ACCEPT_ALL

        ui.open_task(page, label_studio.url, project, tasks[accepted])  # the edit: C after all has a defect
        ui.tick(page, "C")
        ui.tick(page, "C", "physical_shadow")
        assert ui.submit(page, update=True) == 200

        task, instructions = ui.skip_next(page, label_studio.url, project)
        assert task == tasks[skipped]  # the stream's only task left
        assert "A label that is cut off is an appearance defect." in instructions
        second = pull(ls_ws)
        assert (second["annotations_updated"], second["annotations_skipped"], second["annotations_new"]) == (1, 1, 0)
        assert store.get_label(ls_ws.db, accepted).judgement == edited
        assert store.get_annotations(ls_ws.db, skipped) == []

        ui.delete_all_annotations(page, label_studio.url, project)
    third = pull(ls_ws)
    assert third["annotations_deleted"] == 1
    assert store.get_annotations(ls_ws.db, accepted) == []
    assert store.get_label(ls_ws.db, accepted).origin == "synthetic"

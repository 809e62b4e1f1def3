"""The team around the data, against the real Label Studio: overlap, onboarding, gold, review, shards.

Annotations here go through the API as each user (the page itself is covered by test_browser.py).
"""

from __future__ import annotations

import json
import uuid

import pytest
from label_studio_sdk import LabelStudio

from aesdata import store
from aesdata.annotate.gold import gold_answers
from aesdata.annotate.pseudonym import pseudonym
from aesdata.annotate.pull import pull
from aesdata.annotate.push import push
from aesdata.annotate.tasks import judgement_result
from aesdata.annotate.team import add_annotators
from aesdata.cli.main import app
from aesdata.schema import SLOTS, Judgement
from aesdata.workspace import Workspace
from tests.annotate import page as ui
from tests.annotate.conftest import PSEUDONYM_KEY
from tests.annotate.throwaway import log_in
from tests.factories import make_samples

pytestmark = pytest.mark.slow

ALL_OK = Judgement.from_defects({})
NONE_OK = Judgement.from_defects({s: ["extension_rationality"] for s in SLOTS})
PASSWORD = "reviewer-password-7d1e"


def set_annotate(ws: Workspace, **values: object) -> None:
    """Set keys of [annotate] in aesdata.toml (the settings are read when the workspace opens)."""
    strip_keys(ws, *values)
    path = ws.root / "aesdata.toml"
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    path.write_text(path.read_text(encoding="utf-8").replace("[annotate]\n", f"[annotate]\n{lines}"), encoding="utf-8")


def strip_keys(ws: Workspace, *keys: str) -> None:
    """Remove keys from aesdata.toml (back to their defaults)."""
    path = ws.root / "aesdata.toml"
    kept = [ln for ln in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if not any(ln.startswith(f"{k} =") for k in keys)]
    path.write_text("".join(kept), encoding="utf-8")


def reopen(ws: Workspace) -> Workspace:
    return Workspace.open(ws.root)


def log_in_client(url: str, email: str, password: str) -> tuple[LabelStudio, int]:
    client = log_in(url, email, password)
    return client, int(client.users.whoami().id)


def project_of(ws: Workspace) -> int:
    return int(ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0])


def tasks_of(ws: Workspace) -> dict[str, int]:
    return dict(ws.db.execute("SELECT sample_id, task_id FROM ls_tasks"))


def test_overlap_is_the_projects_maximum_annotations_and_follows_a_change(label_studio, ls_ws, cli):
    make_samples(ls_ws, 2)
    assert push(ls_ws, files_root=label_studio.server.files_root, overlap=2)["overlap"] == 2
    project = int(ls_ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0])
    assert label_studio.client.projects.get(id=project).maximum_annotations == 2
    result = cli.invoke(app, ["annotate", "push", "--overlap", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert label_studio.client.projects.get(id=project).maximum_annotations == 4
    assert {t.overlap for t in label_studio.client.tasks.list(project=project)} == {4}
    [row] = json.loads(cli.invoke(app, ["annotate", "status", "--json"]).stdout)
    assert row["overlap"] == 4
    task = next(iter(tasks_of(ls_ws).values()))
    label_studio.annotate(task, ALL_OK)
    pull(ls_ws)
    [sample] = [s for s, t in tasks_of(ls_ws).items() if t == task]
    assert store.get_label(ls_ws.db, sample).overlap == 4


def test_add_annotator_creates_an_account_that_logs_in_and_no_password_is_kept(label_studio, ls_ws, cli):
    email = f"new-{uuid.uuid4().hex[:6]}@aesdata.local"
    result = cli.invoke(app, ["annotate", "add-annotator", email, "--json"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["status"] == "created"
    client, user_id = log_in_client(label_studio.url, email, PASSWORD)
    assert row["pseudonym"] == pseudonym(PSEUDONYM_KEY.encode(), label_studio.url, user_id)
    assert client.users.whoami().active_organization == label_studio.client.users.whoami().active_organization
    again = cli.invoke(app, ["annotate", "add-annotator", email, f"x{email}", "--invite", "--json"])
    assert again.exit_code == 0, again.output
    member, invited = json.loads(again.stdout.strip().splitlines()[-1])
    assert member["status"] == "already a member"
    assert "/user/signup/?token=" in invited["link"] and invited["link"].startswith(label_studio.url)
    listed = json.loads(cli.invoke(app, ["annotate", "annotators", "--json"]).stdout)
    assert {r["email"]: r["pseudonym"] for r in listed}[email] == row["pseudonym"]
    for path in ls_ws.root.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    bad = cli.invoke(app, ["annotate", "add-annotator", "not-an-email"])
    assert bad.exit_code == 1 and "not an email address: not-an-email" in bad.stderr


def test_gold_tasks_score_annotators_and_the_unreliable_are_left_out(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 6, seed=6)
    set_annotate(ls_ws, min_gold_accuracy=0.5)
    ws = reopen(ls_ws)
    summary = push(ws, files_root=label_studio.server.files_root, gold_fraction=0.34)
    assert summary["gold"] == 2
    gold = gold_answers(ws.db)
    assert all(j.answer != ALL_OK.answer for j in gold.values()), "factory seed gives gold with a defect"
    project = int(ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0])
    assert list(label_studio.client.predictions.list(project=project)) == []  # nothing gives gold away
    tasks = tasks_of(ws)
    truth = {s: store.get_label(ws.db, s).judgement for s in ids}
    for sample_id in ids:
        label_studio.annotate(tasks[sample_id], truth[sample_id])
        label_studio.annotate(tasks[sample_id], ALL_OK, "second")
    pull(ws)
    admin = pseudonym(PSEUDONYM_KEY.encode(), label_studio.url, label_studio.client.users.whoami().id)
    lax = pseudonym(PSEUDONYM_KEY.encode(), label_studio.url, label_studio.second.users.whoami().id)
    for sample_id in ids:
        label = store.get_label(ws.db, sample_id)
        assert label.judgement == truth[sample_id] and label.left_out == [lax]
        assert not label.needs_review and label.agreement is None
    figures = json.loads(cli.invoke(app, ["annotate", "report", "--json"]).stdout)
    people = {a["annotator"]: a for a in figures["annotators"]}
    assert (people[admin]["gold_exact"], people[admin]["gold_tasks"], people[admin]["left_out"]) == (1.0, 2, False)
    assert (people[lax]["gold_exact"], people[lax]["left_out"]) == (0.0, True)
    # Lowering the bar brings the annotator back into every label on the next pull.
    strip_keys(ws, "min_gold_accuracy")
    ws = reopen(ws)
    assert pull(ws)["labels_updated"] == len(ids)
    assert all(store.get_label(ws.db, s).left_out == [] for s in ids)
    with pytest.raises(Exception, match="give the gold answers away"):
        push(ws, files_root=label_studio.server.files_root, gold_fraction=0.2, predictions="synthetic")


def test_disputes_go_back_to_people_and_a_reviewer_settles_them(label_studio, ls_ws, cli):
    [sample_id] = make_samples(ls_ws, 1, seed=9)
    push(ls_ws, files_root=label_studio.server.files_root, overlap=2, predictions="none")
    [task] = tasks_of(ls_ws).values()
    label_studio.annotate(task, ALL_OK)
    label_studio.annotate(task, NONE_OK, "second")
    pull(ls_ws)
    assert store.get_label(ls_ws.db, sample_id).needs_review
    email = f"reviewer-{uuid.uuid4().hex[:6]}@aesdata.local"
    add_annotators(ls_ws, [email], password_for=lambda _: PASSWORD)
    result = cli.invoke(app, ["annotate", "push", "--review", "--reviewer", email, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["review_requested"], summary["reviewers_added"]) == (1, 1)
    remote = label_studio.client.tasks.get(id=str(task))
    assert (remote.overlap, remote.is_labeled) == (3, False)
    again = json.loads(cli.invoke(app, ["annotate", "push", "--review", "--json"]).stdout.strip().splitlines()[-1])
    assert again["review_requested"] == 0  # asked once
    _, reviewer_id = log_in_client(label_studio.url, email, PASSWORD)
    verdict = Judgement.from_defects({"B": ["physical_shadow"]})
    with ui.chromium() as browser:  # the reviewer opens the label stream in the page: handed the dispute
        page = ui.log_in(browser, label_studio.url, email, PASSWORD, to=ui.data_page(project_of(ls_ws)))
        served, _ = ui.walk_stream(page, label_studio.url, project_of(ls_ws), {task: verdict})
    assert served == [task]
    pull(ls_ws)
    label = store.get_label(ls_ws.db, sample_id)
    assert label.judgement == verdict and not label.needs_review
    assert label.reviewed_by == pseudonym(PSEUDONYM_KEY.encode(), label_studio.url, reviewer_id)
    assert len(label.annotators) == 3


def test_push_shards_past_max_tasks_per_project_and_pull_status_report_read_them_all(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 5, seed=13)
    set_annotate(ls_ws, max_tasks_per_project=2)
    ws = reopen(ls_ws)
    first = push(ws, files_root=label_studio.server.files_root, batch_size=10)
    assert (first["pushed"], first["projects"]) == (5, 3)
    title = ws.settings.annotate.project_title
    rows = ws.db.execute("SELECT title, project_id FROM ls_projects ORDER BY id").fetchall()
    assert [r["title"] for r in rows] == [title, f"{title} #2", f"{title} #3"]
    assert [label_studio.client.projects.get(id=r["project_id"]).task_number for r in rows] == [2, 2, 1]
    tasks = tasks_of(ws)
    assert set(tasks) == set(ids)
    for sample_id in ids:
        label_studio.annotate(tasks[sample_id], ALL_OK)
    summary = pull(ws)
    assert (summary["annotations_new"], summary["labels_updated"]) == (5, 5)
    status = json.loads(cli.invoke(app, ["annotate", "status", "--json"]).stdout)
    assert [(r["project"], r["pushed"], r["annotated"]) for r in status] == [
        (title, 2, 2), (f"{title} #2", 2, 2), (f"{title} #3", 1, 1)]
    report = json.loads(cli.invoke(app, ["annotate", "report", "--json"]).stdout)
    assert report["samples_annotated"] == 5
    more = make_samples(ws, 2, seed=14)
    again = push(ws, files_root=label_studio.server.files_root)
    assert (again["pushed"], again["already"], again["projects"]) == (2, 5, 4)  # one fills #3, one opens #4
    assert set(tasks_of(ws)) == set(ids) | set(more)


def test_an_annotation_without_a_known_annotator_is_one_line_and_nothing_pulled_is_lost(label_studio, ls_ws, cli):
    [sample_id] = make_samples(ls_ws, 1, seed=17)
    push(ls_ws, files_root=label_studio.server.files_root)
    [task] = tasks_of(ls_ws).values()
    email = f"leaver-{uuid.uuid4().hex[:6]}@aesdata.local"
    add_annotators(ls_ws, [email], password_for=lambda _: PASSWORD)
    leaver, leaver_id = log_in_client(label_studio.url, email, PASSWORD)
    leaver.annotations.create(id=task, result=judgement_result(NONE_OK))
    assert pull(ls_ws)["annotations_new"] == 1
    label_studio.client.users.delete(id=leaver_id)
    admin_annotation = label_studio.annotate(task, ALL_OK)  # the task changes, so the next pull reads it again
    result = cli.invoke(app, ["annotate", "pull", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["annotations_new"], summary["annotations_invalid"], summary["annotations_deleted"]) == (1, 1, 0)
    assert f"task {task}" in result.stderr and "annotator" in result.stderr
    assert len([ln for ln in result.stderr.splitlines() if ln.strip()]) == 1
    assert len(store.get_annotations(ls_ws.db, sample_id)) == 2  # the leaver's pulled annotation is kept
    # An edit into another labelling config's result: one more line, the pulled judgement stays.
    foreign = [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": ["Positive"]}}]
    label_studio.client.annotations.update(id=admin_annotation, result=foreign)
    again = cli.invoke(app, ["annotate", "pull", "--json"])
    assert "unknown control 'sentiment'" in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["annotations_invalid"] == 2
    kept = [a.judgement for a in store.get_annotations(ls_ws.db, sample_id)]
    assert len(kept) == 2 and ALL_OK in kept and NONE_OK in kept

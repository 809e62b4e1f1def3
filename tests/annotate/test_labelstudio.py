"""Push, pull, consensus and idempotence against the real Label Studio (session server)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest
from label_studio_sdk import LabelStudio

from aesdata import store
from aesdata.annotate import project as project_mod
from aesdata.annotate import push as push_mod
from aesdata.annotate.pseudonym import pseudonym
from aesdata.annotate.pull import pull
from aesdata.annotate.push import push
from aesdata.annotate.server import free_port, is_healthy
from aesdata.cli.main import app
from aesdata.schema import Judgement, Label, Region
from tests.annotate.conftest import PSEUDONYM_KEY
from tests.annotate.throwaway import PASSWORD, TEMPLATE, TOKEN
from tests.factories import make_samples

pytestmark = pytest.mark.slow

A_OK = Judgement.from_defects({"B": ["physical_shadow"], "C": ["placement_layout"], "D": ["appearance_deformation"]})
AB_OK = Judgement.from_defects({"C": ["placement_layout"], "D": ["appearance_deformation"]})
NONE_OK = Judgement.from_defects({s: ["extension_rationality"] for s in "ABCD"})


def task_ids(ws) -> dict[str, int]:
    return dict(ws.db.execute("SELECT sample_id, task_id FROM ls_tasks"))


def project_id(ws) -> int:
    return int(ws.db.execute("SELECT project_id FROM ls_projects").fetchone()[0])


def cli_json(cli, *args: str) -> dict:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_push_twice_imports_each_sample_once_with_images_and_predictions(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 5)
    first = cli_json(cli, "annotate", "push", "--batch-size", "2")
    second = cli_json(cli, "annotate", "push")
    assert (first["pushed"], first["already"]) == (5, 0)
    assert (second["pushed"], second["already"]) == (0, 5)
    assert set(task_ids(ls_ws)) == set(ids)
    assert label_studio.client.projects.get(id=project_id(ls_ws)).task_number == 5

    task = label_studio.client.tasks.get(id=task_ids(ls_ws)[ids[0]])
    assert task.data["sample_id"] == ids[0]
    assert set(task.data) == {"sample_id", "original", "cand_a", "cand_b", "cand_c", "cand_d"}
    image = httpx.get(label_studio.url + task.data["cand_b"], headers={"Authorization": f"Token {label_studio.token}"})
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    candidate_b = store.get_candidates(ls_ws.db, ids[0])[1]
    assert image.content == ls_ws.blobs.read(candidate_b.sha256)
    # The synthetic label became a pre-annotation with a model version.
    predictions = list(label_studio.client.predictions.list(task=task.id))
    assert [p.model_version for p in predictions] == ["aesdata-synthetic"]
    synthetic = store.get_label(ls_ws.db, ids[0])
    assert synthetic is not None
    acceptable = next(r for r in predictions[0].result if r["from_name"] == "acceptable")
    assert acceptable["value"]["choices"] == synthetic.judgement.answer


def test_push_after_a_crash_between_import_and_recording_pushes_nothing_twice(label_studio, ls_ws, monkeypatch):
    ids = make_samples(ls_ws, 4)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(push_mod, "record_tasks", crash)
    with pytest.raises(KeyboardInterrupt):
        push(ls_ws, batch_size=10)
    assert task_ids(ls_ws) == {}
    monkeypatch.undo()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)

    label_studio.annotate(int(label_studio.client.tasks.list(project=project_id(ls_ws)).items[0].id), A_OK)
    pulled = pull(ls_ws)  # a pull records them too, and reads their annotations
    assert (pulled["tasks_reconciled"], pulled["annotations_new"]) == (4, 1)
    assert pull(ls_ws)["tasks_reconciled"] == 0
    summary = push(ls_ws, files_root=label_studio.server.files_root)
    assert (summary["reconciled"], summary["pushed"], summary["already"]) == (0, 0, 4)
    assert set(task_ids(ls_ws)) == set(ids)
    assert label_studio.client.projects.get(id=project_id(ls_ws)).task_number == 4
    status = ls_ws.db.execute("SELECT status FROM runs WHERE stage = 'annotate-push' ORDER BY id").fetchall()
    assert [r[0] for r in status] == ["interrupted", "done"]


def test_two_annotators_give_labels_agreement_and_a_second_pull_changes_nothing(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 3)
    push(ls_ws, files_root=label_studio.server.files_root)
    tasks = task_ids(ls_ws)
    label_studio.annotate(tasks[ids[0]], A_OK, rationale="B's shadow points the wrong way")
    label_studio.annotate(tasks[ids[0]], A_OK, "second")
    label_studio.annotate(tasks[ids[1]], A_OK)
    label_studio.annotate(tasks[ids[1]], AB_OK, "second")
    label_studio.annotate(tasks[ids[2]], NONE_OK, "second")

    first = cli_json(cli, "annotate", "pull")
    assert first["annotations_new"] == 5 and first["labels_updated"] == 3 and first["annotations_invalid"] == 0
    assert first["full_agreement"] == 0.5
    assert first["alpha_acceptance"] is not None and first["alpha_acceptance"] < 1

    agreed, split, single = (store.get_label(ls_ws.db, i) for i in ids)
    assert agreed.origin == "human" and agreed.judgement == A_OK and not agreed.needs_review
    assert agreed.agreement == 1.0 and len(agreed.annotators) == 2
    assert split.needs_review and split.judgement.answer == ["A"]  # B tied: conservative side
    assert single.judgement == NONE_OK and single.agreement is None and not single.needs_review
    anns = store.get_annotations(ls_ws.db, ids[0])
    assert {a.rationale for a in anns} == {"B's shadow points the wrong way", None}
    user_ids = {label_studio.client.users.whoami().id, label_studio.second.users.whoami().id}
    assert {a.annotator for a in anns} == {pseudonym(PSEUDONYM_KEY.encode(), label_studio.url, i) for i in user_ids}

    again = cli_json(cli, "annotate", "pull")
    assert again["annotations_new"] == again["annotations_updated"] == again["labels_updated"] == 0
    assert again["tasks_unchanged"] == 3
    assert ls_ws.db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] == 5

    status = cli.invoke(app, ["annotate", "status", "--json"])
    assert status.exit_code == 0, status.output
    [row] = json.loads(status.stdout)
    assert (row["pushed"], row["annotated"], row["with_1_annotators"], row["with_2_annotators"], row["in_review"]) == (
        3,
        3,
        1,
        2,
        1,
    )


def test_updated_and_deleted_annotations_update_the_workspace(label_studio, ls_ws):
    ids = make_samples(ls_ws, 2)
    push(ls_ws, files_root=label_studio.server.files_root)
    tasks = task_ids(ls_ws)
    keep = label_studio.annotate(tasks[ids[0]], A_OK)
    gone = label_studio.annotate(tasks[ids[1]], A_OK)
    pull(ls_ws)
    assert store.get_label(ls_ws.db, ids[1]).origin == "human"

    from aesdata.annotate.tasks import judgement_result

    label_studio.client.annotations.update(id=keep, result=judgement_result(NONE_OK))
    label_studio.client.annotations.delete(id=gone)
    summary = pull(ls_ws)
    assert (summary["annotations_updated"], summary["annotations_deleted"]) == (1, 1)
    assert store.get_label(ls_ws.db, ids[0]).judgement == NONE_OK
    assert store.get_annotations(ls_ws.db, ids[1]) == []
    assert store.get_label(ls_ws.db, ids[1]).origin == "synthetic"  # the human label went with it


def test_bad_results_are_reported_with_task_id_and_the_rest_continues(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 3)
    push(ls_ws, files_root=label_studio.server.files_root)
    tasks = task_ids(ls_ws)
    inconsistent = [
        {
            "from_name": "acceptable",
            "to_name": "img_original",
            "type": "choices",
            "value": {"choices": ["A", "B", "C", "D"]},
        },
        {"from_name": "defects_A", "to_name": "img_A", "type": "choices", "value": {"choices": ["physical_shadow"]}},
    ]
    unknown = [{"from_name": "mood", "to_name": "img_original", "type": "choices", "value": {"choices": ["happy"]}}]
    label_studio.annotate_raw(tasks[ids[0]], inconsistent)
    label_studio.annotate_raw(tasks[ids[1]], unknown)
    label_studio.annotate(tasks[ids[2]], AB_OK)

    result = cli.invoke(app, ["annotate", "pull", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["annotations_invalid"], summary["annotations_new"]) == (2, 1)
    assert f"task {tasks[ids[0]]}" in result.stderr and "marked acceptable but tagged" in result.stderr
    assert f"task {tasks[ids[1]]}" in result.stderr and "unknown control 'mood'" in result.stderr
    assert store.get_annotations(ls_ws.db, ids[0]) == []
    assert store.get_label(ls_ws.db, ids[2]).judgement == AB_OK
    # Still reported on the next pull, until someone fixes it.
    again = pull(ls_ws)
    assert again["annotations_invalid"] == 2 and again["annotations_new"] == 0


def test_regions_go_out_as_pre_annotations_come_back_and_an_untagged_box_keeps_the_earlier_annotation(
    label_studio, ls_ws, cli
):
    [sample_id] = make_samples(ls_ws, 1)
    boxed = Judgement.from_defects(
        {"B": ["physical_shadow"], "D": ["placement_layout"]},
        {"B": [Region(dimension="physical_shadow", box=(0.25, 0.5, 0.5, 0.25))]},
    )
    with ls_ws.transaction() as db:
        store.upsert_label(db, Label(sample_id=sample_id, origin="synthetic", judgement=boxed))
    push(ls_ws, files_root=label_studio.server.files_root, predictions="synthetic", gold_fraction=0)
    task = task_ids(ls_ws)[sample_id]
    [predicted] = label_studio.client.predictions.list(task=task)
    label_studio.annotate_raw(task, predicted.result)  # the annotator accepts the pre-annotation as it is
    assert pull(ls_ws)["annotations_new"] == 1
    [kept] = store.get_annotations(ls_ws.db, sample_id)
    assert kept.judgement == boxed

    untagged = {"from_name": "regions_C", "to_name": "img_C", "type": "rectanglelabels",
                "value": {"x": 10, "y": 10, "width": 20, "height": 20, "rectanglelabels": ["physical_shadow"]}}
    label_studio.annotate_raw(task, [*predicted.result, untagged])  # a newer one with a box on untagged C
    result = cli.invoke(app, ["annotate", "pull", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["annotations_invalid"] == 1
    [line] = [ln for ln in result.stderr.splitlines() if f"task {task}" in ln]
    assert "slot C has a region for physical_shadow but no such defect tag" in line
    assert store.get_annotations(ls_ws.db, sample_id) == [kept]  # nothing already pulled is lost

    label_studio.annotate_raw(task, predicted.result, "second")  # a second person draws the same box
    pull(ls_ws)
    from aesdata.publish.card import CardStats, _team_section

    figures = store.get_annotation_quality(ls_ws.db)
    assert figures["box_iou"]["physical_shadow"] == 1.0
    card = _team_section(CardStats(annotation_quality=figures))
    assert re.search(r"^\| physical_shadow \| [^|]+ \| 1\.000 \|$", card, re.M), card


def test_a_task_deleted_in_label_studio_is_reported_and_local_annotations_kept(label_studio, ls_ws):
    ids = make_samples(ls_ws, 2)
    push(ls_ws, files_root=label_studio.server.files_root)
    tasks = task_ids(ls_ws)
    label_studio.annotate(tasks[ids[0]], A_OK)
    pull(ls_ws)
    label_studio.client.tasks.delete(id=str(tasks[ids[0]]))
    summary = pull(ls_ws)
    assert summary["tasks_deleted"] == 1 and summary["annotations_deleted"] == 0
    assert len(store.get_annotations(ls_ws.db, ids[0])) == 1
    assert store.get_label(ls_ws.db, ids[0]).origin == "human"


def test_wrong_token_or_server_down_is_one_error_and_writes_nothing(label_studio, ls_ws, cli, monkeypatch):
    make_samples(ls_ws, 1)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0" * 40)
    result = cli.invoke(app, ["annotate", "push"])
    assert result.exit_code == 1
    assert "refused the token" in result.stderr and "Traceback" not in result.output
    down = cli.invoke(app, ["annotate", "push", "--url", f"http://127.0.0.1:{free_port()}"])
    assert down.exit_code == 1 and "is the server running" in down.stderr
    for table in ("ls_projects", "ls_tasks", "runs"):
        assert ls_ws.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_a_changed_labeling_config_is_sent_again(label_studio, ls_ws):
    make_samples(ls_ws, 1)
    push(ls_ws, files_root=label_studio.server.files_root)
    with ls_ws.transaction() as db:
        db.execute("UPDATE ls_projects SET config_hash = 'stale'")
    label_studio.client.projects.update(
        id=project_id(ls_ws), label_config="<View><Text name='t' value='$sample_id'/></View>"
    )
    push(ls_ws, files_root=label_studio.server.files_root)
    config = label_studio.client.projects.get(id=project_id(ls_ws)).label_config
    assert 'name="acceptable"' in config
    assert ls_ws.db.execute("SELECT config_hash FROM ls_projects").fetchone()[0] != "stale"
    shown = label_studio.client.projects.get(id=project_id(ls_ws))
    assert shown.show_instruction and "<h1>Screening guidelines for annotators</h1>" in shown.expert_instruction
    own = ls_ws.root / "assets" / "annotation" / "guidelines.md"  # an edit of the guidelines alone is sent too
    own.parent.mkdir(parents=True)
    own.write_text("# Ours\n\nZoom in on <every> label.\n")
    push(ls_ws, files_root=label_studio.server.files_root)
    sent = label_studio.client.projects.get(id=project_id(ls_ws)).expert_instruction
    assert "Zoom in on &lt;every&gt; label." in sent


def _serve(tmp_path) -> tuple[subprocess.Popen[bytes], int, list[bytes]]:
    """``aesdata annotate serve`` as a person starts it, on a copy of a made data folder (a restart), with
    the lines it prints collected as they come."""
    data = tmp_path / "data"
    shutil.copytree(TEMPLATE, data)
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_API_KEY": TOKEN, "LABEL_STUDIO_PASSWORD": PASSWORD}
    proc = subprocess.Popen(
        [sys.executable, "-m", "aesdata.cli.main", "annotate", "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    said: list[bytes] = []
    assert proc.stdout is not None
    threading.Thread(target=lambda: said.extend(iter(proc.stdout.readline, b"")), daemon=True).start()
    return proc, port, said


def _wait_for(proc: subprocess.Popen[bytes], said: list[bytes], words: bytes) -> None:
    deadline = time.monotonic() + 180
    while not any(words in line for line in said):
        assert proc.poll() is None and time.monotonic() < deadline, b"".join(said).decode()
        time.sleep(0.2)


def test_serve_command_starts_label_studio_on_the_asked_port_and_stops_on_ctrl_c(label_studio, ls_ws, tmp_path):
    proc, port, said = _serve(tmp_path)
    try:
        _wait_for(proc, said, b"ready at")  # the person uses the server once it says so
        client = LabelStudio(base_url=f"http://127.0.0.1:{port}", api_key=TOKEN)
        assert client.users.whoami().email == "admin@aesdata.local"
        shown = httpx.get(
            f"http://127.0.0.1:{port}/data/local-files/?d=aesdata.toml", headers={"Authorization": f"Token {TOKEN}"}
        )
        assert shown.status_code != 200  # only blobs/ is ever served
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)  # Label Studio gets 20 s to stop, then SIGKILL; a loaded machine is slow
    assert not is_healthy(f"http://127.0.0.1:{port}")
    assert TOKEN.encode() not in b"".join(said)


def test_ctrl_c_while_label_studio_starts_stops_it_too(label_studio, ls_ws, tmp_path):
    """Label Studio runs in its own session: a Ctrl-C before it answers must not leave it running."""
    proc, port, said = _serve(tmp_path)
    _wait_for(proc, said, b"starting Label Studio")
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=180)
    data = str(tmp_path / "data")
    left = [p for p in psutil.process_iter(["cmdline"]) if data in (p.info["cmdline"] or [])]
    for p in left:  # do not leave it to the next test
        p.kill()
    assert not left, "Label Studio still runs after Ctrl-C: " + b"".join(said).decode()


def test_a_project_deleted_in_label_studio_is_made_again_with_every_sample(label_studio, ls_ws, cli):
    ids = make_samples(ls_ws, 2)
    push(ls_ws, files_root=label_studio.server.files_root)
    old = project_id(ls_ws)
    label_studio.client.projects.delete(id=old)
    result = cli.invoke(app, ["annotate", "push", "--json"])
    assert result.exit_code == 0, result.output
    assert "no longer exists" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["pushed"] == 2
    assert project_id(ls_ws) != old and set(task_ids(ls_ws)) == set(ids)
    assert ls_ws.db.execute("SELECT COUNT(*) FROM ls_projects").fetchone()[0] == 1


def test_a_crash_between_creating_the_project_and_recording_it_adopts_that_project(label_studio, ls_ws,
                                                                                     monkeypatch):
    ids = make_samples(ls_ws, 2)
    real_call = project_mod.call

    def crash_after_create(url, what, fn):
        result = real_call(url, what, fn)
        if what == "create the project":
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(project_mod, "call", crash_after_create)
    with pytest.raises(KeyboardInterrupt):
        push(ls_ws, files_root=label_studio.server.files_root)
    assert ls_ws.db.execute("SELECT COUNT(*) FROM ls_projects").fetchone()[0] == 0
    monkeypatch.undo()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)

    summary = push(ls_ws, files_root=label_studio.server.files_root)
    assert summary["pushed"] == 2 and set(task_ids(ls_ws)) == set(ids)
    title = ls_ws.settings.annotate.project_title
    same_title = [p.id for p in label_studio.client.projects.list(title=title)]
    assert same_title == [project_id(ls_ws)], "the interrupted push's project was adopted, not duplicated"
    assert ls_ws.db.execute("SELECT COUNT(*) FROM ls_pending_projects").fetchone()[0] == 0


def test_serve_on_a_data_folder_made_with_another_token_says_so_and_stops(label_studio, ls_ws, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(TEMPLATE, data)
    env = {**os.environ, "LABEL_STUDIO_API_KEY": "f" * 40, "LABEL_STUDIO_PASSWORD": PASSWORD}
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "aesdata.cli.main", "annotate", "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 1 and "set up with another token" in done.stderr
    assert not is_healthy(f"http://127.0.0.1:{port}")

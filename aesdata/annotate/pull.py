"""``aesdata annotate pull``: annotations from Label Studio into the workspace, and labels from them.

Incremental: each task's ``updated_at`` (which Label Studio bumps on every annotation created,
updated or deleted) is remembered in ``ls_tasks.seen_updated_at``; a pull lists the project's tasks
(ids and timestamps only) and exports, as JSON, only the tasks changed since. JSON_MIN is not used:
it turns one choice into a string and several into a dict.

Per task: every annotation is validated (:func:`aesdata.annotate.tasks.parse_result`); a bad one is
reported with its task id and skipped (the annotator's earlier annotation, if any, stays) and the task
is read again on the next pull. One annotation per annotator per sample is stored, the annotator
pseudonymised; annotations deleted in Label Studio are deleted here. A task deleted in Label Studio is
reported and the sample's local annotations are kept. A skipped task (``was_cancelled``) is counted,
not a judgement. An annotation without a known annotator (no ``completed_by``, or a user the server no
longer lists) is bad input like any other. Then the sample's human label is derived
(:func:`aesdata.annotate.consensus.settle`): a reviewer's judgement settles it, annotators under
``[annotate] min_gold_accuracy`` on gold do not vote (recorded as ``left_out``), and the project's
overlap is recorded. When the set of annotators left out changes, every label they touch is derived again.
Every shard of the title is read (:func:`aesdata.annotate.project.shards`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from label_studio_sdk import LabelStudio

from aesdata import store
from aesdata.annotate.client import api_errors, call, connect, normalise_url
from aesdata.annotate.consensus import agreement_report, settle
from aesdata.annotate.gold import gold_answers
from aesdata.annotate.project import ProjectRef, list_tasks, reconcile, require_recorded
from aesdata.annotate.pseudonym import load_key, pseudonym
from aesdata.annotate.quality import below_gold, score_annotators
from aesdata.annotate.report import all_judgements, card_summary
from aesdata.annotate.review import reviewers
from aesdata.annotate.tasks import parse_result
from aesdata.progress import LogReporter, Reporter
from aesdata.schema import Annotation, Label
from aesdata.workspace import RunRecorder, Workspace

#: Task ids per export request: they travel as `ids[]` query fields, and Django refuses more than 1000.
EXPORT_CHUNK = 500


@dataclass(frozen=True)
class LocalTask:
    sample_id: str
    task_id: int
    seen: str | None


@dataclass(frozen=True)
class PullContext:
    """What every task of a pull is read against."""

    ref: ProjectRef
    key: bytes
    users: frozenset[int]  # ids the server lists (an annotation by anyone else is refused)
    team: Team
    reporter: Reporter
    run: RunRecorder


@dataclass(frozen=True)
class Team:
    """Who settles and who does not vote, and the overlap each project asked for."""

    reviewers: frozenset[str]
    left_out: frozenset[str]
    overlap: dict[str, int]  # sample id -> overlap of the project its task is in


COUNTS = (
    "annotations_new",
    "annotations_updated",
    "annotations_deleted",
    "annotations_invalid",
    "annotations_skipped",
    "labels_updated",
    "tasks_deleted",
    "tasks_reconciled",
    "tasks_unchanged",
)


def pull(
    ws: Workspace,
    *,
    url: str | None = None,
    project_title: str | None = None,
    token: str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Pull changed annotations from every shard, derive labels, report agreement; return the figures."""
    reporter = reporter or LogReporter()
    # 1. The recorded projects and a checked connection: nothing is written before both are known.
    url = normalise_url(url or ws.settings.annotate.url)
    refs = require_recorded(ws.db, url, project_title or ws.settings.annotate.project_title)
    client = connect(url, token)
    key = load_key(ws.root)
    with ws.run("annotate-pull", {"url": url, "project_title": refs[0].title}) as run:
        users = frozenset(int(u.id) for u in call(url, "list users", client.users.list) if u.id is not None)
        team = team_of(ws.db, ws.settings.annotate.min_gold_accuracy)
        # 2. Each shard: tasks a crashed push imported, then what changed since last time.
        for ref in refs:
            _pull_project(ws, client, PullContext(ref, key, users, team, reporter, run))
        # 3. Labels that depend on who is left out, where that changed (the gold scores or the threshold).
        after = team_of(ws.db, ws.settings.annotate.min_gold_accuracy)
        with ws.transaction() as db:
            for sample_id in _touched_by(db, after.left_out):
                if derive_label(db, sample_id, after):
                    run.count("labels_updated")
        # 4. Agreement over every sample with several annotators; the team's figures for the dataset card,
        #    computed again only when something changed.
        judgements = all_judgements(ws.db)
        figures = {k: None if v is None else round(v, 4) for k, v in agreement_report(judgements).items()}
        changed = any(run.counts.get(k) for k in COUNTS[:3] + ("labels_updated",))
        if changed or store.get_annotation_quality(ws.db) is None:
            with ws.transaction() as db:
                store.put_annotation_quality(db, card_summary(ws, judgements))
        return {**{k: run.counts.get(k, 0) for k in COUNTS}, **figures}


def team_of(db: sqlite3.Connection, min_gold_accuracy: float) -> Team:
    """Reviewers, annotators under the gold threshold, and each sample's overlap, from the workspace."""
    left_out: set[str] = set()
    if min_gold_accuracy > 0:  # scoring everyone is only needed when someone may be left out
        left_out = below_gold(score_annotators(all_judgements(db), gold_answers(db)), min_gold_accuracy)
    overlap = dict(db.execute("SELECT t.sample_id, p.overlap FROM ls_tasks t JOIN ls_projects p ON p.id = t.project"))
    return Team(frozenset(reviewers(db)), frozenset(left_out), overlap)


def _pull_project(ws: Workspace, client: LabelStudio, ctx: PullContext) -> None:
    ref, run, reporter = ctx.ref, ctx.run, ctx.reporter
    run.count("tasks_reconciled", reconcile(ws, client, ref, reporter))
    remote = {int(t.id): t for t in list_tasks(client, ref, "id,updated_at,total_annotations,cancelled_annotations")}
    local = _local_tasks(ws.db, ref)
    _report_deleted_tasks(ws.db, local, remote, reporter, run)
    changed = [lt for tid, lt in local.items() if tid in remote and _stamp(remote[tid].updated_at) != lt.seen]
    annotated = _tasks_with_local_annotations(ws.db, ref)

    def readable(lt: LocalTask) -> bool:
        task = remote[lt.task_id]
        return bool(task.total_annotations or task.cancelled_annotations or lt.task_id in annotated)

    to_export = [lt for lt in changed if readable(lt)]
    with ws.transaction() as db:  # changed but nothing to read (no annotation here or there)
        for lt in changed:
            if not readable(lt):
                _set_seen(db, ref, lt.task_id, _stamp(remote[lt.task_id].updated_at))
    run.count("tasks_unchanged", sum(1 for tid in local if tid in remote) - len(changed))
    # Export the changed tasks in chunks; each chunk commits on its own.
    with reporter.task(f"pull from Label Studio ({ref.title})", len(to_export)) as bar:
        for chunk in _chunks(to_export, EXPORT_CHUNK):
            exported = export_tasks(client, ref, [lt.task_id for lt in chunk])
            by_id = {lt.task_id: lt for lt in chunk}
            with ws.transaction() as db:
                for task in exported:
                    lt = by_id.pop(int(task["id"]), None)
                    if lt is not None:
                        _apply_task(db, lt, task, ctx)
                for lt in by_id.values():  # deleted between the listing and the export
                    reporter.problem(f"task {lt.task_id} (sample {lt.sample_id}) vanished during the pull")
            bar.advance(len(chunk))


def _touched_by(db: sqlite3.Connection, left_out: frozenset[str]) -> list[str]:
    """Samples with an annotation by someone now left out, or a label that left someone out."""
    marks = ",".join("?" * len(left_out))
    by_annotator = f"SELECT sample_id FROM annotations WHERE annotator IN ({marks})" if left_out else "SELECT NULL"
    rows = db.execute(
        f"{by_annotator} UNION SELECT sample_id FROM labels WHERE origin = 'human' AND left_out != '[]'",
        tuple(left_out),
    )
    return sorted(r[0] for r in rows if r[0] is not None)


def export_tasks(client: LabelStudio, ref: ProjectRef, task_ids: Sequence[int]) -> list[dict[str, Any]]:
    """JSON export of the given tasks, annotated or not.

    The server reads ``ids[]`` (the SDK's own ``ids`` argument is ignored by Label Studio 1.23), so
    the ids go in as an extra query parameter.
    """
    with api_errors(ref.url, f"export {len(task_ids)} task(s)"):
        chunks = client.projects.exports.download_sync(
            id=ref.project_id,
            export_type="JSON",
            download_all_tasks=True,
            request_options={"additional_query_parameters": {"ids[]": list(task_ids)}},
        )
        return list(json.loads(b"".join(chunks)))


def _stamp(value: datetime | str | None) -> str | None:
    """One spelling of a Label Studio timestamp (the listing gives datetimes, the export strings)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.astimezone(UTC).isoformat()


def _local_tasks(db: sqlite3.Connection, ref: ProjectRef) -> dict[int, LocalTask]:
    rows = db.execute("SELECT sample_id, task_id, seen_updated_at FROM ls_tasks WHERE project = ?", (ref.local_id,))
    return {r["task_id"]: LocalTask(r["sample_id"], r["task_id"], r["seen_updated_at"]) for r in rows}


def _tasks_with_local_annotations(db: sqlite3.Connection, ref: ProjectRef) -> set[int]:
    rows = db.execute(
        "SELECT DISTINCT t.task_id FROM ls_tasks t JOIN annotations a"
        " ON a.sample_id = t.sample_id AND a.task_id = t.task_id WHERE t.project = ?",
        (ref.local_id,),
    )
    return {r[0] for r in rows}


def _report_deleted_tasks(
    db: sqlite3.Connection, local: dict[int, LocalTask], remote: dict[int, Any], reporter: Reporter, run: RunRecorder
) -> None:
    for tid, lt in local.items():
        if tid in remote:
            continue
        run.count("tasks_deleted")
        kept = db.execute(
            "SELECT COUNT(*) FROM annotations WHERE sample_id = ? AND task_id = ?", (lt.sample_id, tid)
        ).fetchone()[0]
        reporter.problem(
            f"task {tid} (sample {lt.sample_id}) was deleted in Label Studio; {kept} local annotation(s) kept"
        )


def _set_seen(db: sqlite3.Connection, ref: ProjectRef, task_id: int, stamp: str | None) -> None:
    db.execute(
        "UPDATE ls_tasks SET seen_updated_at = ? WHERE project = ? AND task_id = ?", (stamp, ref.local_id, task_id)
    )


def _apply_task(db: sqlite3.Connection, lt: LocalTask, task: dict[str, Any], ctx: PullContext) -> None:
    """Bring one sample's annotations from one task up to date, then its human label."""
    current: dict[str, Annotation] = {}
    invalid: set[str] = set()  # annotators whose stored annotation stays (their new one is bad)
    unattributed: set[int] = set()  # annotation ids without a known annotator: their stored copy stays too
    for raw in task.get("annotations") or []:
        where = f"task {lt.task_id} (sample {lt.sample_id}), annotation {raw.get('id')}"
        if raw.get("was_cancelled"):
            ctx.run.count("annotations_skipped")  # a skipped task is not a judgement
            continue
        user_id: int | None = None
        try:
            user_id = _user_id(raw.get("completed_by"), ctx.users)
            judgement, rationale = parse_result(raw.get("result") or [])
        except ValueError as exc:
            ctx.reporter.problem(f"{where}: {exc}")
            ctx.run.count("annotations_invalid")
            if user_id is not None:  # their earlier annotation stays
                invalid.add(pseudonym(ctx.key, ctx.ref.url, user_id))
            elif isinstance(raw.get("id"), int):
                unattributed.add(raw["id"])
            continue
        who = pseudonym(ctx.key, ctx.ref.url, user_id)
        ann = Annotation(
            sample_id=lt.sample_id,
            annotator=who,
            judgement=judgement,
            rationale=rationale,
            task_id=lt.task_id,
            annotation_id=int(raw["id"]),
            lead_time_s=_lead_time(raw.get("lead_time")),
            updated_at=datetime.fromisoformat(str(raw["updated_at"]).replace("Z", "+00:00")),
        )
        if who not in current or ann.updated_at > current[who].updated_at:
            current[who] = ann
    stored = {a.annotator: a for a in store.get_annotations(db, lt.sample_id) if a.task_id == lt.task_id}
    changed = False
    for who, ann in current.items():
        if stored.get(who) != ann:
            store.upsert_annotation(db, ann)
            ctx.run.count("annotations_updated" if who in stored else "annotations_new")
            changed = True
    keep = invalid | {who for who, a in stored.items() if a.annotation_id in unattributed}
    for who in stored.keys() - current.keys() - keep:
        db.execute("DELETE FROM annotations WHERE sample_id = ? AND annotator = ?", (lt.sample_id, who))
        ctx.run.count("annotations_deleted")
        changed = True
    if changed and derive_label(db, lt.sample_id, ctx.team):
        ctx.run.count("labels_updated")
    # A task with an invalid annotation is read again next time, so the problem is reported until fixed.
    _set_seen(db, ctx.ref, lt.task_id, None if invalid or unattributed else _stamp(task.get("updated_at")))


def derive_label(db: sqlite3.Connection, sample_id: str, team: Team) -> bool:
    """The sample's human label from all its annotations (removed when none is left); True if it changed."""
    annotations = store.get_annotations(db, sample_id)
    if not annotations:
        return db.execute("DELETE FROM labels WHERE sample_id = ? AND origin = 'human'", (sample_id,)).rowcount > 0
    settled = settle(
        {a.annotator: a.judgement for a in annotations}, left_out=team.left_out, reviewers=team.reviewers
    )
    label = Label(
        sample_id=sample_id,
        origin="human",
        judgement=settled.judgement,
        annotators=[a.annotator for a in annotations],
        agreement=settled.agreement,
        needs_review=settled.needs_review,
        overlap=team.overlap.get(sample_id),
        left_out=list(settled.left_out),
        reviewed_by=settled.reviewed_by,
    )
    old = store.get_label(db, sample_id)
    if old is not None and old.origin == "human" and old.model_copy(update={"updated_at": label.updated_at}) == label:
        return False
    store.upsert_label(db, label)
    return True


def _user_id(completed_by: Any, users: frozenset[int]) -> int:
    """Label Studio gives the annotator as an integer id (or, in some views, a user object)."""
    raw = completed_by.get("id") if isinstance(completed_by, dict) else completed_by
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError(f"no annotator (completed_by is {completed_by!r})")
    if raw not in users:
        raise ValueError(f"annotator {raw} is not a user of this server (deleted, or another server's export?)")
    return raw


def _lead_time(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _chunks(items: list[LocalTask], size: int) -> Iterator[list[LocalTask]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

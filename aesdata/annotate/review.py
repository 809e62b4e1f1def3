"""Disputes go back to people: ``annotate push --review [--reviewer EMAIL]``.

A sample whose consensus needs review (annotators disagreed on a slot, or everyone was left out) has
its task's ``overlap`` raised to one more than the annotators it has, and ``is_labeled`` cleared, so the
label stream offers it to one more person: another annotator, or a reviewer. Reviewers are Label Studio
users named by email once; only their pseudonym is kept (``ls_reviewers``). On the next pull a
reviewer's judgement settles the sample (:func:`aesdata.annotate.consensus.settle`). Requests are
recorded (``ls_review_requests``), so re-running asks for nobody twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from label_studio_sdk import LabelStudio

from aesdata.annotate.client import api_errors, call
from aesdata.annotate.project import ProjectRef
from aesdata.annotate.pseudonym import load_key, pseudonym
from aesdata.progress import Reporter
from aesdata.schema import utcnow
from aesdata.workspace import Workspace


def user_ids_by_email(client: LabelStudio, url: str) -> dict[str, int]:
    """The server's users (those the token may see: its organisation), by lower-case email."""
    users = call(url, "list users", client.users.list)
    return {(u.email or "").lower(): int(u.id) for u in users if u.id is not None and u.email}


def add_reviewers(ws: Workspace, client: LabelStudio, url: str, emails: Sequence[str], reporter: Reporter) -> int:
    """Record the pseudonyms of the named users as reviewers; an unknown email is one line, skipped."""
    if not emails:
        return 0
    known = user_ids_by_email(client, url)
    key = load_key(ws.root)
    added = 0
    with ws.transaction() as db:
        for email in emails:
            user_id = known.get(email.strip().lower())
            if user_id is None:
                reporter.problem(f"reviewer {email}: no such user at {url} (add them with `annotate add-annotator`)")
                continue
            cur = db.execute(
                "INSERT OR IGNORE INTO ls_reviewers (annotator, added_at) VALUES (?, ?)",
                (pseudonym(key, url, user_id), utcnow().isoformat()),
            )
            added += cur.rowcount
    return added


def reviewers(db: sqlite3.Connection) -> set[str]:
    """Pseudonyms whose judgement settles a sample in review."""
    return {r[0] for r in db.execute("SELECT annotator FROM ls_reviewers")}


def request_reviews(
    ws: Workspace, client: LabelStudio, refs: Sequence[ProjectRef], emails: Sequence[str], reporter: Reporter
) -> dict[str, int]:
    """Add the reviewers, then re-queue every sample in review for one more person; return counts."""
    added = add_reviewers(ws, client, refs[0].url, emails, reporter) if refs else 0
    requested = 0
    for ref in refs:
        rows = ws.db.execute(
            "SELECT t.sample_id, t.task_id, r.want_annotators,"
            " (SELECT COUNT(*) FROM annotations a WHERE a.sample_id = t.sample_id) AS n"
            " FROM ls_tasks t JOIN labels l ON l.sample_id = t.sample_id AND l.origin = 'human'"
            " LEFT JOIN ls_review_requests r ON r.sample_id = t.sample_id AND r.project = t.project"
            " WHERE t.project = ? AND l.needs_review = 1",
            (ref.local_id,),
        ).fetchall()
        for row in rows:
            want = int(row["n"]) + 1
            if row["want_annotators"] is not None and row["want_annotators"] >= want:
                continue
            task_id = str(row["task_id"])
            with api_errors(ref.url, f"re-queue task {task_id} for review"):
                client.tasks.update(id=task_id, overlap=want, is_labeled=False)
            with ws.transaction() as db:
                db.execute(
                    "INSERT INTO ls_review_requests (sample_id, project, want_annotators, requested_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT(sample_id, project) DO UPDATE SET"
                    " want_annotators = excluded.want_annotators, requested_at = excluded.requested_at",
                    (row["sample_id"], ref.local_id, want, utcnow().isoformat()),
                )
            requested += 1
    if requested:
        reporter.info(f"{requested} sample(s) in review re-queued for one more annotator or a reviewer")
    return {"review_requested": requested, "reviewers_added": added}

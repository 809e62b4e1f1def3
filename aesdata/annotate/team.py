"""The annotation team on a Label Studio Community server: ``annotate add-annotator`` and ``annotators``.

Community has one organisation and no API that sets a password (``users.create`` leaves the account
unusable), but it has the organisation's invite link (``/api/invite``: ``/user/signup/?token=...``),
and ``annotate serve`` only allows sign-up through it. So an annotator is added the way Label Studio
adds one: through that sign-up form, with a password the person types in (read by the CLI without echo,
sent once over the form, never stored or logged). Without a password the invite link is printed, and the
person signs up with it themselves. Either way the account joins the organisation and can log in.

Emails are shown to the lead who runs the command but never written to the workspace: ``annotators``
joins the server's list of users with the local counts through the pseudonym.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from label_studio_sdk import LabelStudio

from aesdata.annotate.client import call, connect, normalise_url
from aesdata.annotate.gold import gold_answers
from aesdata.annotate.pseudonym import load_key, pseudonym
from aesdata.annotate.quality import score_annotators
from aesdata.annotate.report import all_judgements
from aesdata.annotate.review import reviewers, user_ids_by_email
from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter
from aesdata.workspace import Workspace

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def invite_url(client: LabelStudio, url: str) -> str:
    """The organisation's sign-up link (anyone holding it can join: hand it out privately)."""
    link = call(url, "read the invite link", client.organizations.invites.get_invite_link)
    return url + str(link.invite_url)


def sign_up(url: str, link: str, email: str, password: str) -> None:
    """Create the account through Label Studio's own sign-up form, as the person would."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=60) as session:
        try:
            session.get(link)
            done = session.post(
                link,
                headers={"Referer": url + link},
                data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
            )
        except httpx.HTTPError as exc:
            raise AesdataError(f"Label Studio at {url}: cannot sign {email} up: {type(exc).__name__}: {exc}") from exc
    if done.status_code != 302:  # the form comes back with its errors instead of redirecting
        errors = re.findall(r'class="[^"]*(?:error|field_errors)[^"]*"[^>]*>\s*([^<]+)', done.text)
        reason = "; ".join(e.strip() for e in errors if e.strip()) or f"HTTP {done.status_code}"
        raise AesdataError(f"Label Studio at {url} refused to sign {email} up: {reason}")


def add_annotators(
    ws: Workspace,
    emails: Sequence[str],
    *,
    password_for: Callable[[str], str | None],
    url: str | None = None,
    token: str | None = None,
    reporter: Reporter | None = None,
) -> list[dict[str, Any]]:
    """Make each email an account of the server's organisation; one row per email says what happened."""
    reporter = reporter or LogReporter()
    url = normalise_url(url or ws.settings.annotate.url)
    bad = [e for e in emails if not EMAIL.match(e)]
    if bad:
        raise AesdataError(f"not an email address: {', '.join(bad)}")
    client = connect(url, token)
    key = load_key(ws.root)
    known = user_ids_by_email(client, url)
    link = invite_url(client, url)
    rows = []
    for email in emails:
        user_id = known.get(email.lower())
        if user_id is not None:
            rows.append({"email": email, "status": "already a member", "pseudonym": pseudonym(key, url, user_id)})
            continue
        password = password_for(email)
        if not password:
            rows.append({"email": email, "status": "invite: sign up at the link", "link": link})
            continue
        try:
            sign_up(url, link, email, password)
        except AesdataError as exc:
            reporter.problem(str(exc))
            rows.append({"email": email, "status": "failed"})
            continue
        user_id = user_ids_by_email(client, url).get(email.lower())
        if user_id is None:
            reporter.problem(f"{email}: signed up, but {url} does not list the account")
            rows.append({"email": email, "status": "failed"})
            continue
        rows.append({"email": email, "status": "created", "pseudonym": pseudonym(key, url, user_id)})
    return rows


def list_annotators(ws: Workspace, *, url: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """The server's users with their pseudonyms and what this workspace holds from each."""
    url = normalise_url(url or ws.settings.annotate.url)
    client = connect(url, token)
    key = load_key(ws.root)
    counts = _local_counts(ws.db)
    review = reviewers(ws.db)
    rows = []
    for email, user_id in sorted(user_ids_by_email(client, url).items()):
        who = pseudonym(key, url, user_id)
        tasks, gold = counts.get(who, (0, None))
        rows.append(
            {
                "email": email,
                "pseudonym": who,
                "annotations": tasks,
                "gold_exact": None if gold is None else round(gold, 3),
                "reviewer": who in review,
            }
        )
    return rows


def _local_counts(db: sqlite3.Connection) -> dict[str, tuple[int, float | None]]:
    scores = score_annotators(all_judgements(db), gold_answers(db))
    return {who: (s.tasks, s.gold_exact) for who, s in scores.items()}

"""The Label Studio project a workspace pushes to: recorded in ``ls_projects``, created or updated.

A project is identified locally by (server URL, title). The labeling config and the guidelines (as the
project's instructions, shown to each annotator before the label stream starts) are sent when the
project is made and again whenever their hash changes, so an edited ``label_studio_config.xml`` or
``annotation/guidelines.md`` reaches the server on the next push. A nonce is committed before a project
is created and written into its description, so a push killed between creating the project and
recording it adopts that project on the next run instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from aesdata.annotate.client import api_errors, call
from aesdata.assets import read_asset
from aesdata.errors import AesdataError
from aesdata.progress import Reporter
from aesdata.schema import utcnow
from aesdata.workspace import Workspace

CONFIG_FILE = "label_studio_config.xml"
GUIDELINES_FILE = "annotation/guidelines.md"
MARKER = "aesdata-project:"  # followed by the nonce recorded in ls_pending_projects
LIST_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ProjectRef:
    local_id: int  # ls_projects.id
    project_id: int  # Label Studio's id
    url: str
    title: str


def shard_title(base: str, shard: int) -> str:
    """Title of the ``shard``-th project (0-based) of a dataset titled ``base``."""
    return base if shard == 0 else f"{base} #{shard + 1}"


def label_config(root: Path | None = None) -> str:
    """The labelling config workspace ``root`` uses (its assets/ copy, else the shipped one)."""
    return read_asset(CONFIG_FILE, root).text


def instructions(root: Path | None = None) -> str:
    """The guidelines of workspace ``root`` as the HTML Label Studio shows annotators (CommonMark, with any
    raw HTML in them escaped: the page shows the markdown, never runs it)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).render(read_asset(GUIDELINES_FILE, root).text)


def _settings(root: Path) -> tuple[dict[str, Any], str]:
    """What the project must hold (config and instructions) and its hash (``ls_projects.config_hash``)."""
    config, shown = label_config(root), instructions(root)
    digest = hashlib.sha256(f"{config}\0{shown}".encode()).hexdigest()
    return {"label_config": config, "expert_instruction": shown, "show_instruction": True}, digest


def recorded(db: sqlite3.Connection, url: str, title: str) -> ProjectRef | None:
    row = db.execute("SELECT id, project_id FROM ls_projects WHERE url = ? AND title = ?", (url, title)).fetchone()
    return ProjectRef(row["id"], row["project_id"], url, title) if row else None


def shards(db: sqlite3.Connection, url: str, base: str) -> list[ProjectRef]:
    """Every recorded project of the dataset titled ``base`` on ``url``, in shard order."""
    rows = db.execute(
        "SELECT id, project_id, title FROM ls_projects WHERE url = ? AND COALESCE(base_title, title) = ? ORDER BY id",
        (url, base),
    )
    return [ProjectRef(r["id"], r["project_id"], url, r["title"]) for r in rows]


def require_recorded(db: sqlite3.Connection, url: str, title: str) -> list[ProjectRef]:
    """The shards of ``title`` (at least one), or one error saying nothing was pushed there."""
    refs = shards(db, url, title)
    if not refs:
        raise AesdataError(
            f"nothing pushed to project {title!r} at {url} from this workspace",
            hint="run `aesdata annotate push` first (or pass the --url/--project-title used then)",
        )
    return refs


def _exists(client: LabelStudio, url: str, project_id: int) -> bool:
    with api_errors(url, f"read project {project_id}"):
        try:
            client.projects.get(id=project_id)
        except ApiError as exc:
            if exc.status_code == 404:
                return False
            raise
    return True


def _claim(ws: Workspace, url: str, title: str) -> str:
    """The nonce marking the project this workspace is about to create (committed before creating it)."""
    row = ws.db.execute(
        "SELECT nonce FROM ls_pending_projects WHERE url = ? AND title = ?", (url, title)
    ).fetchone()
    if row:
        return str(row[0])
    nonce = secrets.token_hex(8)
    with ws.transaction() as db:
        db.execute("INSERT INTO ls_pending_projects (url, title, nonce) VALUES (?, ?, ?)", (url, title, nonce))
    return nonce


def _adopt(client: LabelStudio, url: str, title: str, nonce: str) -> int | None:
    """A project an interrupted push created (its description carries ``nonce``), if there is one."""
    with api_errors(url, "list projects"):
        for project in client.projects.list(title=title):
            if project.id is not None and f"{MARKER}{nonce}" in (client.projects.get(id=project.id).description or ""):
                return int(project.id)
    return None


def ensure_project(
    ws: Workspace,
    client: LabelStudio,
    url: str,
    title: str,
    reporter: Reporter,
    *,
    overlap: int = 1,
    base_title: str | None = None,
) -> ProjectRef:
    """The recorded project (config and overlap updated when they changed), or a new one."""
    ref = _ensure_project(ws, client, url, title, reporter, base_title)
    _ensure_overlap(ws, client, ref, overlap, reporter)
    return ref


def _ensure_overlap(ws: Workspace, client: LabelStudio, ref: ProjectRef, overlap: int, reporter: Reporter) -> None:
    row = ws.db.execute("SELECT overlap FROM ls_projects WHERE id = ?", (ref.local_id,)).fetchone()
    remote = call(ref.url, "read the project", lambda: client.projects.get(id=ref.project_id))
    if row["overlap"] == overlap and remote.maximum_annotations == overlap:
        return
    call(
        ref.url,
        f"set the overlap to {overlap}",
        lambda: client.projects.update(id=ref.project_id, maximum_annotations=overlap),
    )
    with ws.transaction() as db:
        db.execute("UPDATE ls_projects SET overlap = ? WHERE id = ?", (overlap, ref.local_id))
    reporter.info(f"project {ref.project_id}: each task goes to {overlap} annotator(s)")


def _ensure_project(
    ws: Workspace, client: LabelStudio, url: str, title: str, reporter: Reporter, base_title: str | None
) -> ProjectRef:
    settings, digest = _settings(ws.root)
    ref = recorded(ws.db, url, title)
    if ref is not None:
        if _exists(client, url, ref.project_id):
            row = ws.db.execute("SELECT config_hash FROM ls_projects WHERE id = ?", (ref.local_id,)).fetchone()
            if row["config_hash"] != digest:
                call(
                    url,
                    "update the labeling config and instructions",
                    lambda: client.projects.update(id=ref.project_id, **settings),
                )
                with ws.transaction() as db:
                    db.execute("UPDATE ls_projects SET config_hash = ? WHERE id = ?", (digest, ref.local_id))
                reporter.info(f"labeling config and instructions of project {ref.project_id} updated")
            return ref
        reporter.problem(
            f"project {ref.project_id} ({title!r}) no longer exists at {url}: creating a new "
            "one and pushing every sample to it again"
        )
    nonce = _claim(ws, url, title)
    project_id = _adopt(client, url, title, nonce)
    if project_id is None:
        created = call(
            url,
            "create the project",
            lambda: client.projects.create(
                title=title,
                **settings,
                description="aesdata screening: pick the acceptable candidates, tag the defects of the others"
                f" [{MARKER}{nonce}]",
            ),
        )
        assert created.id is not None
        project_id = created.id
    else:
        reporter.info(f"adopted project {project_id} ({title!r}), created by a push that stopped before recording it")
    with ws.transaction() as db:
        db.execute("DELETE FROM ls_pending_projects WHERE url = ? AND title = ?", (url, title))
        if ref is not None:
            db.execute("DELETE FROM ls_tasks WHERE project = ?", (ref.local_id,))
            db.execute(
                "UPDATE ls_projects SET project_id = ?, config_hash = ? WHERE id = ?",
                (project_id, digest, ref.local_id),
            )
            return ProjectRef(ref.local_id, project_id, url, title)
        cur = db.execute(
            "INSERT INTO ls_projects (url, title, project_id, config_hash, created_at, base_title)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (url, title, project_id, digest, utcnow().isoformat(), base_title if base_title != title else None),
        )
    return ProjectRef(int(cur.lastrowid or 0), project_id, url, title)


def list_tasks(client: LabelStudio, ref: ProjectRef, include: str) -> list[Any]:
    """Every task of the project with only the fields named in ``include`` (the data manager API)."""
    with api_errors(ref.url, "list tasks"):
        return list(
            client.tasks.list(project=ref.project_id, fields="task_only", include=include, page_size=LIST_PAGE_SIZE)
        )


def reconcile(ws: Workspace, client: LabelStudio, ref: ProjectRef, reporter: Reporter) -> int:
    """Record tasks of ours that the project holds but the workspace does not; return how many."""
    project = call(ref.url, "read the project", lambda: client.projects.get(id=ref.project_id))
    if (project.task_number or 0) == recorded_count(ws.db, ref):
        return 0
    known = {r[0] for r in ws.db.execute("SELECT id FROM samples")}
    recorded = dict(ws.db.execute("SELECT sample_id, task_id FROM ls_tasks WHERE project = ?", (ref.local_id,)))
    found: list[tuple[str, int]] = []
    for task in list_tasks(client, ref, "id,data"):
        task_id, sample_id = int(task.id), (task.data or {}).get("sample_id")
        if sample_id not in known:
            continue
        if sample_id not in recorded:
            found.append((sample_id, task_id))
            recorded[sample_id] = task_id
        elif recorded[sample_id] != task_id:
            reporter.problem(
                f"task {task_id}: sample {sample_id} is already task {recorded[sample_id]} "
                "of this project (a duplicate made outside aesdata?)"
            )
    record_tasks(ws, ref, found)
    return len(found)


def record_tasks(ws: Workspace, ref: ProjectRef, pairs: list[tuple[str, int]]) -> None:
    """Record (sample id, task id) pairs for the project, in one transaction."""
    now = utcnow().isoformat()
    with ws.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO ls_tasks (sample_id, project, task_id, pushed_at) VALUES (?, ?, ?, ?)",
            [(sid, ref.local_id, tid, now) for sid, tid in pairs],
        )


def recorded_count(db: sqlite3.Connection, ref: ProjectRef) -> int:
    return int(db.execute("SELECT COUNT(*) FROM ls_tasks WHERE project = ?", (ref.local_id,)).fetchone()[0])

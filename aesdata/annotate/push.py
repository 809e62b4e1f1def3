"""``aesdata annotate push``: every sample not yet in the project becomes a Label Studio task.

Steps: check inputs and the connection (nothing is written before the server accepted the token);
create or reuse the project; connect the images; reconcile with tasks already in the project; import
the rest in batches, each batch recorded in ``ls_tasks`` in one transaction.

A crash between an import and its recording would leave tasks the workspace does not know about.
Each task carries its ``sample_id`` in its data, and whenever the project holds a different number of
tasks than recorded, the push first lists the project's tasks and records those it recognises, so
re-running never imports a sample twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from label_studio_sdk import LabelStudio

from aesdata import store
from aesdata.annotate import tasks as ls_tasks
from aesdata.annotate.client import call, connect, is_local, normalise_url
from aesdata.annotate.project import ProjectRef, ensure_project, reconcile, record_tasks, recorded_count
from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter
from aesdata.workspace import Workspace

Predictions = Literal["synthetic", "none"]


def push(
    ws: Workspace,
    *,
    url: str | None = None,
    project_title: str | None = None,
    predictions: Predictions = "synthetic",
    files_root: Path | None = None,
    image_url_prefix: str | None = None,
    batch_size: int = 500,
    token: str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, int]:
    """Push every sample not yet in the project; return counts: pushed, already (before), reconciled."""
    reporter = reporter or LogReporter()
    # 1. Inputs, then the connection: a bad one fails before anything is written.
    url = normalise_url(url or ws.settings.annotate.url)
    title = project_title or ws.settings.annotate.project_title
    if len(title.strip()) < 3:
        raise AesdataError(f"project title {title!r}: Label Studio needs at least 3 characters")
    if predictions not in ("synthetic", "none"):
        raise AesdataError(f"--predictions {predictions!r}: expected synthetic or none")
    if batch_size < 1:
        raise AesdataError(f"batch size {batch_size}: must be at least 1")
    url_for = image_urls(ws, url, files_root, image_url_prefix)
    client = connect(url, token)
    params = {"url": url, "project_title": title, "predictions": predictions, "batch_size": batch_size}
    with ws.run("annotate-push", params) as run:
        # 2. The project and its images.
        ref = ensure_project(ws, client, url, title, reporter)
        if image_url_prefix is None:  # local files: the server reads blobs/ itself
            ensure_local_storage(client, url, ref.project_id, ws.blobs.root.resolve())
        # 3. Tasks imported earlier but never recorded.
        run.count("reconciled", reconcile(ws, client, ref, reporter))
        # 4. Everything else, batch by batch.
        pending = _pending(ws.db, ref)
        run.count("already", recorded_count(ws.db, ref))
        with reporter.task("push to Label Studio", len(pending)) as bar:
            for batch in _chunks(pending, batch_size):
                task_ids = import_batch(client, url, ref, _payload(ws, batch, url_for, predictions))
                record_tasks(ws, ref, list(zip(batch, task_ids, strict=True)))
                run.count("pushed", len(task_ids))
                bar.advance(len(batch))
        return {
            "project_id": ref.project_id,
            **{k: run.counts.get(k, 0) for k in ("pushed", "already", "reconciled")},
        }


def image_urls(ws: Workspace, url: str, files_root: Path | None, image_url_prefix: str | None) -> Callable[[str], str]:
    """How tasks name images: local-files URLs for a server on this machine, else ``prefix + path``."""
    if image_url_prefix:
        prefix = image_url_prefix.rstrip("/") + "/"
        return lambda sha: prefix + ws.blobs.relpath(sha)
    if not is_local(url):
        raise AesdataError(
            f"Label Studio at {url} is not on this machine, so it cannot read the blob folder",
            hint="serve the workspace's blobs/ over HTTP and pass --image-url-prefix URL",
        )
    root = (files_root or ws.root).resolve()
    blobs = ws.blobs.root.resolve()
    if blobs == root or not blobs.is_relative_to(root):
        raise AesdataError(
            f"blob folder {blobs} is not a sub-folder of the served files root {root}",
            hint="start the server with `aesdata annotate serve` from this workspace",
        )
    prefix = blobs.relative_to(root).as_posix()
    return lambda sha: f"/data/local-files/?d={prefix}/{ws.blobs.relpath(sha)}"


def ensure_local_storage(client: LabelStudio, url: str, project_id: int, root: Path) -> None:
    """A local-files import storage over the blob folder: Label Studio serves only files inside one.

    It is never synced: syncing would turn every image into a task of its own. (The storage must be a
    sub-folder of the server's document root, which is why ``serve`` serves the workspace folder.)
    """
    existing = call(url, "list storages", lambda: list(client.import_storage.local.list(project=project_id)))
    if any(Path(s.path or "") == root for s in existing):
        return
    call(
        url,
        f"connect the image folder {root}",
        lambda: client.import_storage.local.create(
            project=project_id, path=str(root), use_blob_urls=False, title="aesdata blobs"
        ),
    )


def import_batch(client: LabelStudio, url: str, ref: ProjectRef, payload: list[dict[str, Any]]) -> list[int]:
    """Import one batch (tasks with their predictions inline); return the new task ids in order."""
    response = call(
        url,
        f"import {len(payload)} task(s)",
        lambda: client.projects.import_tasks(id=ref.project_id, request=payload, return_task_ids=True),
    )  # type: ignore[arg-type]
    ids = list(response.task_ids or [])
    if len(ids) != len(payload):
        raise AesdataError(
            f"Label Studio at {url} returned {len(ids)} task id(s) for {len(payload)} task(s)",
            hint="run the push again: it records tasks already imported and skips them",
        )
    return ids


def _pending(db: sqlite3.Connection, ref: ProjectRef) -> list[str]:
    rows = db.execute(
        "SELECT id FROM samples WHERE id NOT IN (SELECT sample_id FROM ls_tasks WHERE project = ?) ORDER BY rowid",
        (ref.local_id,),
    )
    return [r[0] for r in rows]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payload(
    ws: Workspace, sample_ids: list[str], url_for: Callable[[str], str], predictions: Predictions
) -> list[dict[str, Any]]:
    """Task dicts for a batch, with the synthetic label as a pre-annotation when asked for."""
    payload = []
    for sample_id in sample_ids:
        sample = store.get_sample(ws.db, sample_id)
        assert sample is not None  # ids come from the samples table
        task: dict[str, Any] = {"data": ls_tasks.task_data(sample, store.get_candidates(ws.db, sample_id), url_for)}
        label = store.get_label(ws.db, sample_id) if predictions == "synthetic" else None
        if label is not None and label.origin == "synthetic":
            task["predictions"] = [ls_tasks.prediction(label.judgement)]
        payload.append(task)
    return payload

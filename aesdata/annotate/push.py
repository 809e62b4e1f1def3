"""``aesdata annotate push``: every sample not yet in the project becomes a Label Studio task.

Steps: check inputs and the connection (nothing is written before the server accepted the token);
create or reuse the project; connect the images; reconcile with tasks already in the project; import
the rest in batches, each batch recorded in ``ls_tasks`` in one transaction.

A crash between an import and its recording would leave tasks the workspace does not know about.
Each task carries its ``sample_id`` in its data, and whenever the project holds a different number of
tasks than recorded, the push first lists the project's tasks and records those it recognises, so
re-running never imports a sample twice.

Team settings travel with the push: ``overlap`` becomes the project's ``maximum_annotations`` (the
label stream then hands each task to that many distinct annotators); a ``gold_fraction`` of the newly
pushed tasks are gold (:mod:`aesdata.annotate.gold`), and since a pre-annotation would give their
answer away, a push with gold sends no predictions at all; past ``max_tasks_per_project`` the samples go
to further shards (``title #2`` ...). ``review`` sends samples in dispute back to people
(:mod:`aesdata.annotate.review`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from label_studio_sdk import LabelStudio

from aesdata import store
from aesdata.annotate import tasks as ls_tasks
from aesdata.annotate.client import call, connect, is_local, normalise_url
from aesdata.annotate.gold import choose_gold
from aesdata.annotate.project import (
    ProjectRef,
    ensure_project,
    reconcile,
    record_tasks,
    recorded_count,
    shard_title,
    shards,
)
from aesdata.annotate.review import request_reviews
from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter
from aesdata.workspace import Workspace

Predictions = Literal["synthetic", "none"]


def push(
    ws: Workspace,
    *,
    url: str | None = None,
    project_title: str | None = None,
    predictions: Predictions | None = None,
    overlap: int | None = None,
    gold_fraction: float | None = None,
    max_tasks_per_project: int | None = None,
    review: bool = False,
    reviewers: Sequence[str] = (),
    files_root: Path | None = None,
    image_url_prefix: str | None = None,
    batch_size: int = 500,
    token: str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, int]:
    """Push every sample not yet in a project of this title; return the counts."""
    reporter = reporter or LogReporter()
    settings = ws.settings.annotate
    # 1. Inputs, then the connection: a bad one fails before anything is written.
    url = normalise_url(url or settings.url)
    title = project_title or settings.project_title
    overlap = settings.overlap if overlap is None else overlap
    gold_fraction = settings.gold_fraction if gold_fraction is None else gold_fraction
    capacity = max_tasks_per_project or settings.max_tasks_per_project
    if len(title.strip()) < 3:
        raise AesdataError(f"project title {title!r}: Label Studio needs at least 3 characters")
    if predictions is None:
        predictions = "none" if gold_fraction > 0 else "synthetic"
    if predictions not in ("synthetic", "none"):
        raise AesdataError(f"--predictions {predictions!r}: expected synthetic or none")
    if predictions == "synthetic" and gold_fraction > 0:
        raise AesdataError(
            "--predictions synthetic with gold tasks: the pre-annotations would give the gold answers away",
            hint="push gold tasks with --predictions none",
        )
    if not 1 <= overlap <= 50:
        raise AesdataError(f"overlap {overlap}: expected 1 to 50 annotators per task")
    if not 0 <= gold_fraction <= 0.5:
        raise AesdataError(f"gold fraction {gold_fraction}: expected 0 to 0.5")
    if batch_size < 1 or capacity < 1:
        raise AesdataError(f"batch size {batch_size} / max tasks per project {capacity}: must be at least 1")
    url_for = image_urls(ws, url, files_root, image_url_prefix)
    client = connect(url, token)
    params = {"url": url, "project_title": title, "predictions": predictions, "batch_size": batch_size,
              "overlap": overlap, "gold_fraction": gold_fraction, "max_tasks_per_project": capacity}
    with ws.run("annotate-push", params) as run:
        # 2. Every shard made so far: config, overlap, images, tasks imported but never recorded.
        refs = [_open_shard(ws, client, url, title, k, overlap, image_url_prefix, reporter)
                for k in range(max(1, len(shards(ws.db, url, title))))]
        for ref in refs:
            run.count("reconciled", reconcile(ws, client, ref, reporter))
        run.count("already", sum(recorded_count(ws.db, ref) for ref in refs))
        # 3. Gold tasks chosen (and recorded) among the samples still to push, before any import.
        pending = _pending(ws.db, url, title)
        run.count("gold", len(choose_gold(ws, pending, gold_fraction)))
        # 4. Everything else, shard by shard, batch by batch.
        with reporter.task("push to Label Studio", len(pending)) as bar:
            shard = 0
            while pending:
                if shard == len(refs):
                    refs.append(_open_shard(ws, client, url, title, shard, overlap, image_url_prefix, reporter))
                ref = refs[shard]
                room = capacity - recorded_count(ws.db, ref)
                for batch in _chunks(pending[: max(room, 0)], batch_size):
                    task_ids = import_batch(client, url, ref, _payload(ws, batch, url_for, predictions))
                    record_tasks(ws, ref, list(zip(batch, task_ids, strict=True)))
                    run.count("pushed", len(task_ids))
                    bar.advance(len(batch))
                pending = pending[max(room, 0):]
                shard += 1
        # 5. Samples in dispute back to people.
        if review or reviewers:
            for key, n in request_reviews(ws, client, refs, reviewers, reporter).items():
                run.count(key, n)
        counts = ("pushed", "already", "reconciled", "gold", "review_requested", "reviewers_added")
        return {
            "project_id": refs[0].project_id,
            "projects": len(refs),
            "overlap": overlap,
            **{k: run.counts.get(k, 0) for k in counts},
        }


def _open_shard(
    ws: Workspace,
    client: LabelStudio,
    url: str,
    title: str,
    shard: int,
    overlap: int,
    image_url_prefix: str | None,
    reporter: Reporter,
) -> ProjectRef:
    """The ``shard``-th project of the title, made or brought up to date, with its images connected."""
    ref = ensure_project(ws, client, url, shard_title(title, shard), reporter, overlap=overlap, base_title=title)
    if image_url_prefix is None:  # local files: the server reads blobs/ itself
        ensure_local_storage(client, url, ref.project_id, ws.blobs.root.resolve())
    return ref


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


def _pending(db: sqlite3.Connection, url: str, title: str) -> list[str]:
    """Samples in no shard of the title yet, in the order they were made."""
    rows = db.execute(
        "SELECT id FROM samples WHERE id NOT IN (SELECT t.sample_id FROM ls_tasks t JOIN ls_projects p"
        " ON p.id = t.project WHERE p.url = ? AND COALESCE(p.base_title, p.title) = ?) ORDER BY rowid",
        (url, title),
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

"""``aesdata ingest`` and ``aesdata dupes``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors


@handle_errors
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Image files, folders or glob patterns.")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    hf_dataset: Annotated[str | None, typer.Option(help="Hugging Face dataset id or local folder.")] = None,
    split: Annotated[str, typer.Option(help="Split of --hf-dataset.")] = "train",
    image_column: Annotated[str, typer.Option(help="Image column of --hf-dataset.")] = "image",
    workers: Annotated[int | None, typer.Option(min=1, help="Decoding processes (default: CPU count).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Import source images: stored once by content, near-duplicates linked, bad files skipped."""
    from aesdata.ingest import ingest as ingest_stage
    from aesdata.workspace import Workspace

    out = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = ingest_stage(ws, paths or [], recursive=recursive, hf_dataset=hf_dataset, split=split,
                               image_column=image_column, workers=workers, reporter=out)
    out.result(summary.as_dict(), title="ingest")


@handle_errors
def dupes(
    rebuild_links: Annotated[bool, typer.Option(
        "--rebuild", help="Decide near-duplicates and links again with the current thresholds.")] = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """List near-duplicate groups: each source with its near-duplicates and related sources."""
    from aesdata.dedup import duplicate_groups, link_unlinked, rebuild
    from aesdata.workspace import Workspace

    out = output(json)
    with Workspace.open(workspace) as ws:
        if rebuild_links:
            with ws.run("dupes-rebuild", {"near_duplicate_threshold": ws.settings.ingest.near_duplicate_threshold,
                                          "group_threshold": ws.settings.ingest.group_threshold}) as run:
                summary = rebuild(ws.db, ws.blobs, ws.settings.ingest, reporter=out)
                run.counts.update(summary.as_dict())
            out.result(summary.as_dict(), title="dupes --rebuild")
            return
        link_unlinked(ws.db, ws.settings.ingest)  # sources an interrupted ingest left unlinked
        groups = duplicate_groups(ws.db)
    rows = [
        {"source": g.origin, "kind": kind, "image": origin, "distance": d}
        for g in groups
        for kind, members in (("near-duplicate", g.duplicates), ("related source", g.related))
        for origin, d in members
    ]
    out.table(rows, title="near-duplicate groups")

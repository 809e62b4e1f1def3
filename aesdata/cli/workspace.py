"""``aesdata init``, ``aesdata status`` and ``aesdata schemas``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors


@handle_errors
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the workspace in.")],
    assets: Annotated[
        bool, typer.Option("--assets", help="Also copy the shipped prompts, guidelines, labelling config and "
                                            "presets into DIR/assets/ for editing.")
    ] = False,
) -> None:
    """Create a workspace: aesdata.toml (settings), aesdata.db (manifest), blobs/ (images)."""
    from aesdata.workspace import Workspace

    with Workspace.init(directory) as ws:
        if assets:
            from aesdata.assets import copy_defaults, workspace_assets

            copied = copy_defaults(ws.root)
            output().line(f"{copied['copied']} asset file(s) copied to {workspace_assets(ws.root)}"
                          f" ({copied['kept']} already there kept)")
        output().line(f"workspace ready: {ws.root}")


@handle_errors
def status_cmd(workspace: WorkspaceOpt = None, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Counts per stage: sources, duplicates, candidates, labels, rationales, versions; interrupted runs."""
    from aesdata import status
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        report, out = status.report(ws), output(json, quiet)
        if out.json_mode:
            out.result(report)
            return
        runs = report.pop("interrupted")
        out.result(report, title=f"aesdata workspace {ws.root}")
        if runs:
            out.table(runs, title="interrupted runs (killed before they ended; run the stage again to finish)")


@handle_errors
def schemas(
    out: Annotated[Path | None, typer.Option(help="Folder to write to (default: the project's schemas/).")] = None,
) -> None:
    """Regenerate the JSON Schemas from the pydantic models."""
    from aesdata import schemas_export
    from aesdata.assets import shipped_path

    folder = out or shipped_path("schemas")
    written = schemas_export.write(folder)
    output().line(f"{len(written)} schema file(s) updated in {folder}")

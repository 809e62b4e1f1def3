"""``aesdata assets init|diff``: a workspace's own prompts, guidelines, labelling config and presets."""

from __future__ import annotations

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors

app = typer.Typer(help="A workspace's own prompts, guidelines, labelling config and presets.", no_args_is_help=True)


@app.command("init")
@handle_errors
def init(workspace: WorkspaceOpt = None, json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Copy the shipped assets into WORKSPACE/assets/ for editing (files already there are kept)."""
    from aesdata import assets
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        summary = assets.copy_defaults(ws.root)
        folder = assets.workspace_assets(ws.root)
    output(json, quiet).result({**summary, "folder": str(folder)}, title="assets init")


@app.command("diff")
@handle_errors
def diff(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """How this workspace's assets differ from the shipped ones (unified diffs of the edited files)."""
    from aesdata import assets
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        changes = assets.diff(ws.root)
    out = output(json)
    if json:
        out.result({"files": [{"name": c.name, "status": c.status, "diff": c.diff} for c in changes]})
        return
    for change in changes:
        if change.diff:
            out.line(change.diff.rstrip("\n"))
    out.table([{"file": c.name, "status": c.status} for c in changes if c.status != "unchanged"],
              title=f"workspace assets differing from the shipped ones ({sum(c.status == 'unchanged' for c in changes)}"
                    " unchanged)")

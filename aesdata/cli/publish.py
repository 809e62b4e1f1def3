"""``aesdata publish``, ``aesdata versions`` and ``aesdata diff``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors

VersionArg = Annotated[str, typer.Argument(help="A published version, e.g. 1.0.0.")]


OutOpt = Annotated[
    Path | None,
    typer.Option(help="Folder to write (default: WORKSPACE/published/vX.Y.Z).", show_default=False),
]
RepoOpt = Annotated[
    str | None,
    typer.Option(help="Hub dataset repo ORG/NAME to upload to (token: HF_TOKEN).", show_default=False),
]
PrivateOpt = Annotated[bool, typer.Option("--private", help="Create the Hub repo private.")]
RequireOpt = Annotated[bool, typer.Option("--require-rationale", help="Leave out samples without a valid rationale.")]
FractionOpt = Annotated[
    float | None,
    typer.Option(min=0, max=0.99, show_default=False, help="Target test share (default: publish.test_fraction)."),
]


@handle_errors
def publish(
    version: Annotated[str, typer.Option("--version", help="Version to publish, X.Y.Z.", show_default=False)],
    out: OutOpt = None,
    repo_id: RepoOpt = None,
    private: PrivateOpt = False,
    require_rationale: RequireOpt = False,
    test_fraction: FractionOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Publish labelled samples as a versioned dataset folder (and Hub repo), with its dataset card."""
    from aesdata.publish.stage import publish as publish_stage
    from aesdata.workspace import Workspace

    out_ = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = publish_stage(
            ws,
            version,
            out=out,
            repo_id=repo_id,
            private=private,
            require_rationale=require_rationale,
            test_fraction=test_fraction,
            reporter=out_,
        )
    out_.result(summary, title=f"publish {version}")


@handle_errors
def versions(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """List published versions: counts per split, folder, Hub repo and commit."""
    from aesdata import store
    from aesdata.publish import versions as versions_mod
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        rows = [
            {
                "version": v.version,
                "train": v.counts.get("train", 0),
                "test": v.counts.get("test", 0),
                "created": f"{v.created_at:%Y-%m-%d %H:%M}",
                "out": v.out_dir or "-",
                "repo": v.repo_id or "-",
                "commit": (v.commit_id or "-")[:12],
            }
            for v in sorted(store.get_versions(ws.db), key=lambda v: versions_mod.semver(v.version))
        ]
    output(json).table(rows, title="published versions")


@handle_errors
def diff(a: VersionArg, b: VersionArg, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """What changed from version A to version B: samples added, removed, relabelled, moved to test."""
    from aesdata.publish import versions as versions_mod
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        log = versions_mod.diff(ws.db, a, b)
    out = output(json)
    if json:
        out.result(
            {
                **log.summary(),
                "added_ids": log.added,
                "removed_ids": log.removed,
                "relabelled_ids": log.relabelled,
                "rationale_changed_ids": log.rationale_changed,
                "moved_to_test_ids": log.moved_to_test,
            }
        )
    else:
        out.result(log.summary(), title=f"diff {a} -> {b}")

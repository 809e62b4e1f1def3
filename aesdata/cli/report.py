"""``aesdata report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors


@handle_errors
def report(
    version: Annotated[str | None, typer.Option(help="Published version to report (default: the latest).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder to write (default: WORKSPACE/report).")] = None,
    eval_reports: Annotated[list[Path] | None, typer.Option(
        "--eval", help="Eval report JSON files or folders of them (default: WORKSPACE/reports).")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a static HTML report: counts, samples per dimension, annotators, disagreements, models."""
    from aesdata.report.build import write_report
    from aesdata.workspace import Workspace

    out_ = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = write_report(ws, version=version, out=out, evals=eval_reports or None)
    out_.result(summary, title="report")

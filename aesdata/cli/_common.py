"""Options shared by several commands, declared once as ``Annotated`` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._output import Output

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace folder (default: $AESDATA_WORKSPACE, then the current folder).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Process at most N items.")]
BatchOpt = Annotated[
    bool, typer.Option("--batch", help="Through the endpoint's Batch API (cheaper, slower); a re-run polls.")
]


def output(json_mode: bool = False, quiet: bool = False) -> Output:
    return Output(json_mode=json_mode, quiet=quiet)

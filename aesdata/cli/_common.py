"""Options shared by several commands, declared once as ``Annotated`` aliases.

Importing this module (and every ``aesdata.cli`` module) must stay cheap: ``aesdata --help`` imports every
CLI module for the commands' help text and each command imports its own, so only typer, the standard
library and light aesdata modules are imported at the top; stages are imported inside the commands that
run them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from aesdata.cli._output import Output

_WORKSPACE_HELP = "Workspace folder (default: $AESDATA_WORKSPACE, then the current folder)."


def _or_root_workspace(ctx: typer.Context, value: Path | None) -> Path | None:
    """``-w`` after the subcommand wins; else the one given before it (``aesdata -w ws status``)."""
    if value is not None:
        return value
    root = ctx.find_root()
    return root.params.get("workspace") if root is not ctx else None


#: On the root app: ``aesdata -w ws COMMAND``, like ``git -C``.
RootWorkspaceOpt = Annotated[
    Path | None, typer.Option("--workspace", "-w", help=_WORKSPACE_HELP, show_default=False),
]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help=_WORKSPACE_HELP, show_default=False, callback=_or_root_workspace),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Process at most N items.")]
BatchOpt = Annotated[
    bool, typer.Option("--batch", help="Through the endpoint's Batch API (cheaper, slower); a re-run polls.")
]


def output(json_mode: bool = False, quiet: bool = False) -> Output:
    from aesdata.cli._output import Output

    return Output(json_mode=json_mode, quiet=quiet)

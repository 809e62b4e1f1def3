"""The root ``aesdata`` app: it only wires the per-noun modules.

Each subcommand is named as ``"module:attribute"`` and built by typer when it runs (:mod:`aesdata.cli._lazy`):
``aesdata status`` builds and imports the status command alone, ``aesdata --help`` lists every command
without building any. The noun modules import their stages inside the commands, so neither loads torch,
diffusers, openai, label_studio_sdk or datasets (tests/foundation/test_cli_startup.py checks it).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar

import typer

from aesdata.cli._common import RootWorkspaceOpt
from aesdata.cli._lazy import LazyGroup


class RootGroup(LazyGroup):
    #: In the order ``--help`` lists them: commands, then the groups (typer's order for a built tree).
    lazy_subcommands: ClassVar[dict[str, str]] = {
        "init": "aesdata.cli.workspace:init",
        "status": "aesdata.cli.workspace:status_cmd",
        "schemas": "aesdata.cli.workspace:schemas",
        "ingest": "aesdata.cli.ingest:ingest",
        "dupes": "aesdata.cli.ingest:dupes",
        "demo-sources": "aesdata.cli.generate:demo_sources",
        "generate": "aesdata.cli.generate:generate",
        "cot": "aesdata.cli.cot:cot",
        "publish": "aesdata.cli.publish:publish",
        "versions": "aesdata.cli.publish:versions",
        "diff": "aesdata.cli.publish:diff",
        "mine-hard": "aesdata.cli.evaluate:mine_hard",
        "export": "aesdata.cli.evaluate:export",
        "report": "aesdata.cli.report:report",
        "assets": "aesdata.cli.assets:app",
        "annotate": "aesdata.cli.annotate:app",
        "eval": "aesdata.cli.evaluate:eval_app",
    }


app = typer.Typer(
    name="aesdata",
    cls=RootGroup,
    help="Build image-screening datasets: ingest, generate, annotate, cot, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from aesdata import __version__

        print(f"aesdata {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    workspace: RootWorkspaceOpt = None,
) -> None:
    """aesdata: source images -> four candidates -> human labels -> CoT -> versioned dataset."""


def main() -> None:
    """Console entry point: logs to stderr, warnings and above unless AESDATA_LOG says otherwise."""
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("AESDATA_LOG", "WARNING").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()

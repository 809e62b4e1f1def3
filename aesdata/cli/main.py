"""The root ``aesdata`` app: it only registers the per-noun modules.

The noun modules import their stages inside the commands, so building this app (``aesdata --help``,
``aesdata status``) loads no torch, diffusers, openai, label_studio_sdk or datasets
(tests/foundation/test_cli_startup.py checks it).
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from aesdata.cli import annotate as annotate_cli
from aesdata.cli import assets as assets_cli
from aesdata.cli import cot as cot_cli
from aesdata.cli import evaluate as evaluate_cli
from aesdata.cli import generate as generate_cli
from aesdata.cli import ingest, workspace
from aesdata.cli import publish as publish_cli
from aesdata.cli import report as report_cli
from aesdata.cli._common import RootWorkspaceOpt

app = typer.Typer(
    name="aesdata",
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


app.command("init")(workspace.init)
app.command("status")(workspace.status_cmd)
app.command("schemas")(workspace.schemas)
app.add_typer(assets_cli.app, name="assets")
app.command("ingest")(ingest.ingest)
app.command("dupes")(ingest.dupes)
app.command("demo-sources")(generate_cli.demo_sources)
app.command("generate")(generate_cli.generate)
app.add_typer(annotate_cli.app, name="annotate")
app.command("cot")(cot_cli.cot)
app.command("publish")(publish_cli.publish)
app.command("versions")(publish_cli.versions)
app.command("diff")(publish_cli.diff)
app.add_typer(evaluate_cli.eval_app, name="eval")
app.command("mine-hard")(evaluate_cli.mine_hard)
app.command("export")(evaluate_cli.export)
app.command("report")(report_cli.report)


def main() -> None:
    """Console entry point: logs to stderr, warnings and above unless AESDATA_LOG says otherwise."""
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("AESDATA_LOG", "WARNING").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()

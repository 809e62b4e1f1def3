"""``aesdata annotate serve|push|pull|status|report|add-annotator|annotators``: human annotation in Label Studio."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors

app = typer.Typer(help="Human annotation in Label Studio: serve, push samples, pull annotations.", no_args_is_help=True)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Label Studio URL (default: [annotate] url in aesdata.toml).", show_default=False),
]
VenvOpt = Annotated[
    Path | None,
    typer.Option(envvar="AESDATA_LABEL_STUDIO_VENV", show_default=False,
                 help="Label Studio's virtualenv (default: the one `annotate install` made, then .venv-labelstudio)."),
]
TitleOpt = Annotated[
    str | None, typer.Option("--project-title", help="Project title (default: from aesdata.toml).", show_default=False)
]


@app.command()
@handle_errors
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8080,
    data_dir: Annotated[
        Path | None, typer.Option(help="Label Studio's data folder (default: ~/.local/share/aesdata/label-studio).")
    ] = None,
    venv: VenvOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Run a local Label Studio serving this workspace's images (token and password from the environment)."""
    from aesdata.annotate.server import serve as serve_stage
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        root = ws.root
    code = serve_stage(root, port=port, data_dir=data_dir, venv=venv, reporter=output())
    raise typer.Exit(code)


@app.command()
@handle_errors
def install(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Virtualenv to make (default: ~/.local/share/aesdata/label-studio-venv, "
                            "or under $XDG_DATA_HOME).", show_default=False),
    ] = None,
    python: Annotated[str | None, typer.Option(help="Interpreter to base it on (default: this one).",
                                               show_default=False)] = None,
    find_links: Annotated[
        Path | None, typer.Option(help="Install offline from this folder of wheels only.", show_default=False)
    ] = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Make Label Studio's own virtualenv for `annotate serve` (a finished one is left as it is)."""
    from aesdata.annotate.server import install as install_stage

    out = output(json, quiet)
    pip_args = ["--no-index", "--find-links", str(find_links)] if find_links else []
    out.result(install_stage(directory, python=python, pip_args=pip_args, reporter=out), title="annotate install")


@app.command()
@handle_errors
def push(
    url: UrlOpt = None,
    project_title: TitleOpt = None,
    predictions: Annotated[
        str | None,
        typer.Option(help="Pre-annotations: synthetic (from synthetic labels) or none (default with gold tasks).",
                     show_default=False),
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option(min=1, max=50, help="Distinct annotators per task (default: [annotate] overlap).",
                     show_default=False),
    ] = None,
    gold_fraction: Annotated[
        float | None,
        typer.Option(min=0, max=0.5, help="Share of new tasks that are gold (default: [annotate] gold_fraction).",
                     show_default=False),
    ] = None,
    review: Annotated[
        bool, typer.Option("--review", help="Re-queue samples in review for one more annotator or a reviewer.")
    ] = False,
    reviewer: Annotated[
        list[str] | None,
        typer.Option("--reviewer", help="Email of a user whose judgement settles disputes (repeatable).",
                     show_default=False),
    ] = None,
    image_url_prefix: Annotated[
        str | None, typer.Option(help="For a remote server: URL where blobs/ is served.")
    ] = None,
    files_root: Annotated[
        Path | None,
        typer.Option(
            envvar="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT",
            help="Local server: the folder it serves local files from (default: the workspace folder).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Tasks per import request.")] = 500,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Import every sample not yet pushed as a task (N annotators each, gold mixed in); nothing twice."""
    from aesdata.annotate.push import push as push_stage
    from aesdata.workspace import Workspace

    out = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = push_stage(
            ws,
            url=url,
            project_title=project_title,
            predictions=predictions,  # type: ignore[arg-type]
            overlap=overlap,
            gold_fraction=gold_fraction,
            review=review,
            reviewers=reviewer or (),
            files_root=files_root,
            image_url_prefix=image_url_prefix,
            batch_size=batch_size,
            reporter=out,
        )
    out.result(summary, title="annotate push")


@app.command()
@handle_errors
def pull(
    url: UrlOpt = None,
    project_title: TitleOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Store changed annotations (pseudonymised), derive labels, report agreement (Krippendorff's alpha)."""
    from aesdata.annotate.pull import pull as pull_stage
    from aesdata.workspace import Workspace

    out = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = pull_stage(ws, url=url, project_title=project_title, reporter=out)
    out.result(summary, title="annotate pull")


@app.command()
@handle_errors
def status(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Per project: tasks pushed, annotated, with N annotators, in review."""
    from aesdata.annotate.status import project_status
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        rows = project_status(ws)
    output(json).table(rows, title="Label Studio projects")


@app.command()
@handle_errors
def report(workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """Per annotator: tasks, gold accuracy, agreement with the others, seconds per task; alpha; disputes."""
    from aesdata.annotate.report import quality_report
    from aesdata.workspace import Workspace

    out = output(json)
    with Workspace.open(workspace) as ws:
        figures = quality_report(ws)
    if json:
        out.result(figures)
        return
    out.table(figures["annotators"], title="Annotators")
    box_iou = figures["box_iou"]
    agreement = [{"dimension": k, "alpha": v, "box_iou": box_iou.get(k)} for k, v in figures["alpha"].items()]
    out.table(agreement, title="Agreement: Krippendorff's alpha on tags, mean pairwise IoU of boxes")
    rest = {k: v for k, v in figures.items() if k not in ("annotators", "alpha", "box_iou", "in_dispute")}
    out.result({**rest, "in_dispute": len(figures["in_dispute"])}, title="annotate report")
    for sample_id in figures["in_dispute"]:
        out.line(f"in dispute: {sample_id}")


@app.command("add-annotator")
@handle_errors
def add_annotator(
    emails: Annotated[list[str], typer.Argument(help="Email address of each new annotator.")],
    invite: Annotated[
        bool, typer.Option("--invite", help="Print the invite link instead of asking for passwords.")
    ] = False,
    url: UrlOpt = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create annotator accounts in the server's organisation; each person types a password (never stored)."""
    from aesdata.annotate.team import add_annotators
    from aesdata.workspace import Workspace

    out = output(json)
    with Workspace.open(workspace) as ws:
        rows = add_annotators(ws, emails, password_for=_no_password if invite else _ask_password, url=url,
                              reporter=out)
    out.table(rows, title="Annotators added")


def _ask_password(email: str) -> str | None:
    """Typed by the person, twice, without echo; empty means "send the invite link instead"."""
    password = typer.prompt(f"password for {email} (empty: print the invite link)", hide_input=True,
                            default="", show_default=False, confirmation_prompt=True)
    return password or None


def _no_password(email: str) -> None:
    return None


@app.command()
@handle_errors
def annotators(url: UrlOpt = None, workspace: WorkspaceOpt = None, json: JsonOpt = False) -> None:
    """The server's users with their pseudonyms and how many of their annotations this workspace holds."""
    from aesdata.annotate.team import list_annotators
    from aesdata.workspace import Workspace

    with Workspace.open(workspace) as ws:
        rows = list_annotators(ws, url=url)
    output(json).table(rows, title="Annotators")

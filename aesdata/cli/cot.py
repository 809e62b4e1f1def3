"""``aesdata cot``: chain-of-thought rationales for the labelled samples."""

from __future__ import annotations

from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, LimitOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors
from aesdata.cot.stage import CotOptions, Redo, run_cot
from aesdata.cot.validate import Limits
from aesdata.schema import CotMode
from aesdata.workspace import Workspace


@handle_errors
def cot(
    mode: Annotated[CotMode, typer.Option(help="Which rationales to write.")] = "template",
    model: Annotated[str | None, typer.Option(help="Model name (default: cot.model).")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL (default: cot.base_url).")] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight (default: cot.concurrency).")
    ] = None,
    limit: LimitOpt = None,
    max_cost: Annotated[
        float | None,
        typer.Option(min=0, help="Stop starting requests once this many USD are spent (needs a price in cot.prices)."),
    ] = None,
    max_side: Annotated[
        int | None, typer.Option(min=16, help="Resize images to this longer side (default: cot.max_side).")
    ] = None,
    attempts: Annotated[
        int | None, typer.Option(min=1, help="automated: tries per sample (default: cot.attempts).")
    ] = None,
    redo: Annotated[
        Redo | None,
        typer.Option(
            help="Also rewrite: failed ones, stale ones (older prompts or labels), or all. Rationales written"
            " from another label than the current one are always rewritten."
        ),
    ] = None,
    include_review: Annotated[
        bool, typer.Option("--include-review", help="Also write for samples whose label waits for review.")
    ] = False,
    min_chars: Annotated[int, typer.Option(min=0, help="Shortest reasoning accepted.")] = Limits.min_chars,
    max_chars: Annotated[int, typer.Option(min=1, help="Longest reasoning accepted.")] = Limits.max_chars,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write one validated rationale per labelled sample in MODE; a re-run does only what is missing.

    The API key comes from the environment variable named by cot.api_key_env (OPENAI_API_KEY).
    """
    opts = CotOptions(
        mode=mode,
        model=model,
        base_url=base_url,
        concurrency=concurrency,
        limit=limit,
        max_cost=max_cost,
        max_side=max_side,
        attempts=attempts,
        redo=redo,
        include_review=include_review,
        limits=Limits(min_chars=min_chars, max_chars=max_chars),
    )
    out = output(json, quiet)
    with Workspace.open(workspace) as ws:
        out.result(run_cot(ws, opts, reporter=out), title=f"cot {mode}")

"""``aesdata eval`` (and ``eval compare``), ``aesdata mine-hard`` and ``aesdata export``.

``eval`` is a group whose callback runs when no subcommand is named, so both ``aesdata eval --model M``
and ``aesdata eval compare A.json B.json`` work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from aesdata.cli._common import BatchOpt, JsonOpt, LimitOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors

if TYPE_CHECKING:
    from aesdata.workspace import Workspace

ModelOpt = Annotated[
    str | None, typer.Option("--model", help="Model name (default: cot.model).", show_default=False)
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint (default: cot.base_url).", show_default=False),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option(min=1, help="Requests in flight (default: cot.concurrency).", show_default=False)
]
TemperatureOpt = Annotated[
    float | None,
    typer.Option(min=0, help="Sampling temperature (default: 0 for one rollout, 1 for several).",
                 show_default=False),
]
MaxTokensOpt = Annotated[int | None, typer.Option(min=1, help="Cap on reply tokens.", show_default=False)]
MaxCostOpt = Annotated[
    float | None, typer.Option(min=0, help="Stop starting requests at this spend (USD).", show_default=False)
]
MaxSideOpt = Annotated[
    int | None, typer.Option(min=16, help="Resize images to this longer side (default: cot.max_side).",
                             show_default=False)
]
VersionOpt = Annotated[
    str | None, typer.Option("--version", help="A version published from this workspace.", show_default=False)
]
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="A published folder or Hub repo instead of --version.", show_default=False),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="A named config of the dataset, e.g. hard (training rows mostly failed).",
                 show_default=False),
]
SplitOpt = Annotated[str, typer.Option("--split", help="Split to evaluate.")]

eval_app = typer.Typer(help="Score a model on a published split (or `eval compare A.json B.json`).")


def _workspace(path: Path | None, *, required: bool) -> Workspace | None:
    """The workspace; with ``--dataset`` there may be none (then nothing is recorded in runs)."""
    from aesdata.errors import WorkspaceNotFound
    from aesdata.workspace import Workspace

    try:
        return Workspace.open(path)
    except WorkspaceNotFound:
        if required or path is not None:
            raise
        return None


@eval_app.callback(invoke_without_command=True)
@handle_errors
def eval_cmd(
    ctx: typer.Context,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    version: VersionOpt = None,
    dataset_: DatasetOpt = None,
    config: ConfigOpt = None,
    split: SplitOpt = "test",
    rollouts: Annotated[int, typer.Option(min=1, help="Replies per sample (K).")] = 1,
    temperature: TemperatureOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    max_side: MaxSideOpt = None,
    baseline: Annotated[
        Literal["random"] | None,
        typer.Option("--baseline", help="Score a baseline instead of a model (exact expectation).",
                     show_default=False),
    ] = None,
    limit: LimitOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report JSON (default: eval-MODEL-VERSION-SPLIT.json here).", show_default=False),
    ] = None,
    batch: BatchOpt = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Ask a model the screening question for every row of a split; score it exactly and with partial credit."""
    if ctx.invoked_subcommand is not None:
        return
    from aesdata.evaluate import dataset, run
    from aesdata.evaluate.asking import Endpoint, check_rollouts

    temp = check_rollouts(rollouts, temperature, need_sampling=False)
    out_ = output(json, quiet)
    ws = _workspace(workspace, required=version is not None)
    try:
        ref = dataset.resolve(ws, version=version, dataset=dataset_, config=config)
        endpoint = None if baseline == "random" else Endpoint(
            model=model, base_url=base_url, concurrency=concurrency, temperature=temp, max_tokens=max_tokens,
            max_cost=max_cost, max_side=max_side)
        report, path = run.run_eval(ws, ref, endpoint, split=split, rollouts=rollouts, limit=limit, out=out,
                                    batch=batch, reporter=out_)
    finally:
        if ws is not None:
            ws.close()
    metrics, failed, cost = report["metrics"], len(report["failed"]), report["usage"]["cost_usd"]
    if out_.human:
        out_.table(list(run.table_rows(report)), title=f"{report['model']} on {report['dataset']} {split}")
        out_.line(f"report written to {path} ({failed} sample(s) failed, ${cost:.4f} spent)")
    else:
        figures = {k: metrics[k] for k in ("samples", "exact", "proportional", "unparseable")}
        out_.result({"report": str(path), **figures, "failed": failed, "cost_usd": cost})


@eval_app.command("compare")
@handle_errors
def compare_cmd(
    a: Annotated[Path, typer.Argument(help="Report A (the reference).")],
    b: Annotated[Path, typer.Argument(help="Report B (compared against A).")],
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare two eval reports sample by sample: deltas, wins and losses, a sign test."""
    from aesdata.evaluate import compare as compare_mod
    from aesdata.evaluate import run

    result = compare_mod.compare(run.read_report(a), run.read_report(b))
    shown = {k: v for k, v in result.items() if not k.endswith("_samples")} if not json else result
    output(json, quiet).result(shown, title="eval compare (B - A)")


@handle_errors
def mine_hard(
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    rollouts: Annotated[int, typer.Option(min=1, help="Replies per sample (K).")] = 4,
    temperature: Annotated[float, typer.Option(min=0, help="Sampling temperature (must be > 0).")] = 1.0,
    concurrency: ConcurrencyOpt = None,
    max_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    max_side: MaxSideOpt = None,
    limit: LimitOpt = None,
    redo: Annotated[bool, typer.Option("--redo", help="Ask again samples already mined.")] = False,
    batch: BatchOpt = False,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Ask each training sample K times and store its pass rate (publish: difficulty column, hard config)."""
    from aesdata.evaluate import mining
    from aesdata.evaluate.asking import Endpoint, check_rollouts
    from aesdata.workspace import Workspace

    temp = check_rollouts(rollouts, temperature, need_sampling=True)
    out_ = output(json, quiet)
    endpoint = Endpoint(model=model, base_url=base_url, concurrency=concurrency, temperature=temp,
                        max_tokens=max_tokens, max_cost=max_cost, max_side=max_side)
    with Workspace.open(workspace) as ws:
        summary = mining.mine_hard(ws, endpoint, rollouts=rollouts, limit=limit, redo=redo, batch=batch,
                                   reporter=out_)
    out_.result(summary, title="mine-hard")


@handle_errors
def export(
    format_: Annotated[
        Literal["sft", "grpo"], typer.Option("--format", help="sft: messages + rationale; grpo: prompt + solution.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (must not exist or be empty).")],
    version: VersionOpt = None,
    dataset_: DatasetOpt = None,
    config: ConfigOpt = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Split(s) to export (default: every split).",
                                       show_default=False)
    ] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a published version as JSONL + image files for TRL-style SFT or GRPO trainers."""
    from aesdata.evaluate import dataset
    from aesdata.evaluate.export import export as export_stage

    out_ = output(json, quiet)
    ws = _workspace(workspace, required=version is not None)
    try:
        ref = dataset.resolve(ws, version=version, dataset=dataset_, config=config)
        summary = export_stage(ws, ref, out, fmt=format_, splits=split, reporter=out_)
    finally:
        if ws is not None:
            ws.close()
    out_.result({"out": str(out), **summary}, title=f"export {format_}")

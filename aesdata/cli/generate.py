"""``aesdata generate`` and ``aesdata demo-sources``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aesdata.cli._common import JsonOpt, LimitOpt, QuietOpt, WorkspaceOpt, output
from aesdata.cli._errors import handle_errors


@handle_errors
def generate(
    backend: Annotated[str | None, typer.Option(
        help="synthetic, diffusers, openai-images or a plugin's (default: aesdata.toml).")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset name in generation/ or a .toml path.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Hub id or a folder saved with save_pretrained; an API backend's model name.")] = None,
    limit: LimitOpt = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1,
                                                   help="Sources per batch (4 images each).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    steps: Annotated[int | None, typer.Option(min=1, help="Override the preset's steps.")] = None,
    size: Annotated[int | None, typer.Option(min=32, help="Override the canvas side in pixels.")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Base seed (default: aesdata.toml).")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the denoiser (CUDA).")] = False,
    base_url: Annotated[str | None, typer.Option("--base-url", help="API backends: the endpoint.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="API backends: requests in flight.")] = None,
    max_cost: Annotated[float | None, typer.Option(
        "--max-cost", min=0, help="API backends: stop starting requests at this USD spend.")] = None,
    engine: Annotated[str | None, typer.Option(
        help="local (this process) or ray (Ray Data actors, aesdata[ray]); default: aesdata.toml.")] = None,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray cluster to run on (e.g. auto); none: a local Ray for the run.")] = None,
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Make four candidates (slots A-D) for every source without a sample."""
    from aesdata.generate.stage import generate as generate_stage
    from aesdata.workspace import Workspace

    out = output(json, quiet)
    with Workspace.open(workspace) as ws:
        summary = generate_stage(ws, backend=backend, preset=preset, model=model, limit=limit,
                                 batch_size=batch_size, device=device, steps=steps, size=size, seed=seed,
                                 compile=compile, base_url=base_url, concurrency=concurrency, max_cost=max_cost,
                                 reporter=out, executor=engine, ray_address=ray_address)
    out.result(summary, title="generate")


@handle_errors
def demo_sources(
    directory: Annotated[Path, typer.Argument(help="Folder to write product_NNNN.png files to.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many photos.")] = 12,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same photos.")] = 0,
    alpha: Annotated[bool, typer.Option("--alpha/--no-alpha",
                                        help="RGBA with the product as alpha, or RGB on the backdrop.")] = True,
    json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write procedurally drawn product photos (boxes, bottles, tubes, blister packs)."""
    from aesdata.generate.demo_sources import write_demo_sources

    paths = write_demo_sources(directory, n, seed=seed, alpha=alpha)
    output(json, quiet).result({"written": len(paths), "folder": str(directory)}, title="demo-sources")

"""Generation: toolkit overhead on CPU, and GPU throughput of real-size architectures.

(a) overhead: ``aesdata generate`` (masks, layout, seeds, pHash redraw checks, blobs, one transaction per
    batch) against a bare loop over the same pipeline calls, on the tiny random-weight SD-inpaint pipeline.
    Ratio = aesdata seconds / bare seconds (target: under 1.10).
(c) Ray Data (``--ray``, and in a plain run when Ray is installed): the same ``aesdata generate`` on the
    tiny pipeline in this process and with ``--engine ray`` on 1 and 2 CPU actors (the backend renders on
    one torch thread in each) of a local Ray, images/s end to end (model loading and actor start-up included) and
    steady (from the first committed group to the last), as ratios to the in-process run.
(b) only with CUDA (``--gpu sd15|sdxl``): SD 1.5-inpaint and SDXL-inpaint shapes with random weights built
    on the device, images/s for naive fp32 one image per call, aesdata's batched bf16 path, and the same
    with ``torch.compile``; the UNet's achieved TFLOP/s (its FLOPs, counted by torch, over wall time).
Figures only: nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesdata.generate import random_pipelines  # noqa: E402
from aesdata.generate.backend import Job  # noqa: E402
from aesdata.generate.demo_sources import draw_product  # noqa: E402
from aesdata.generate.diffusers_backend import CPU_THREADS, DiffusersBackend, torch_threads  # noqa: E402
from aesdata.generate.layout import cutout, draw, inpaint_inputs  # noqa: E402
from aesdata.generate.presets import load_preset  # noqa: E402

SLOTS = "ABCD"


def _jobs(n_sources: int, preset: Any, seed0: int = 0) -> list[Job]:
    """Four jobs per demo product, planned exactly as the stage plans them."""
    import random

    bank = preset.prompt_bank()
    jobs = []
    for i in range(n_sources):
        img = draw_product(seed0 + i)
        product = cutout(img, img.getchannel("A"))
        for k, slot in enumerate(SLOTS):
            rng = random.Random(1000 * i + k)
            jobs.append(Job(source_id=str(i), slot=slot, seed=1000 * i + k, prompt=rng.choice(bank),  # type: ignore[arg-type]
                            layout=draw(rng, preset.layout), product=product))
    return jobs


def _bare_call(pipe: Any, preset: Any, jobs: list[Job]) -> None:
    """The same pipeline call the backend makes, with nothing around it."""
    inputs = [inpaint_inputs(j.product, j.layout, preset.size) for j in jobs]
    pipe(prompt=[j.prompt for j in jobs], image=[c for c, _ in inputs], mask_image=[m for _, m in inputs],
         negative_prompt=[preset.negative_prompt] * len(jobs),
         generator=[torch.Generator("cpu").manual_seed(j.seed) for j in jobs], num_images_per_prompt=1,
         num_inference_steps=preset.steps, guidance_scale=preset.guidance, strength=preset.strength,
         height=preset.size, width=preset.size)


# --------------------------------------------------------------------------- (a) overhead, CPU


def _timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench_overhead() -> None:
    """Alternate the two paths for a few rounds; keep each one's best wall and CPU time.

    Both on the backend's CPU thread count (one), so CPU seconds measure the work itself even on a shared
    machine; wall seconds include what CPU time misses (fsync of blobs and the manifest). The bare loop
    sets that count itself: ingest's numba layer resets the process's count to the cores.
    """
    from aesdata.generate.demo_sources import write_demo_sources
    from aesdata.generate.stage import generate
    from aesdata.ingest import ingest
    from aesdata.workspace import Workspace

    n, size, steps, rounds = int(os.environ.get("BENCH_GENERATE_SOURCES", "4")), 64, 4, 3
    bare: list[tuple[float, float]] = []
    ours: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        random_pipelines.build("tiny", root / "tok").save_pretrained(root / "tiny")
        preset = load_preset("sd15-inpaint").with_overrides(model=str(root / "tiny"), size=size, steps=steps)
        engine = DiffusersBackend.load(preset, device="cpu")
        write_demo_sources(root / "photos", n)
        jobs = _jobs(n, preset)
        with torch_threads(CPU_THREADS):
            _bare_call(engine.pipe, preset, jobs[:4])  # warm-up

        def bare_loop() -> None:
            with torch_threads(CPU_THREADS):
                for i in range(n):
                    _bare_call(engine.pipe, preset, jobs[4 * i:4 * i + 4])

        for r in range(rounds):
            bare.append(_timed(bare_loop))
            with Workspace.init(root / f"ws{r}") as ws:
                ingest(ws, [root / "photos"], workers=1)
                ours.append(_timed(lambda ws=ws: generate(ws, model=str(root / "tiny"), size=size, steps=steps,
                                                          batch_size=1, device="cpu", engine=engine)))
    print(f"(a) toolkit overhead: tiny SD-inpaint pipeline, {n} sources x 4 images, {size}px, {steps} steps, "
          f"CPU, 1 thread, best of {rounds} interleaved rounds")
    print(f"{'path':>28} {'wall s':>8} {'CPU s':>8} {'images/s':>9}")
    for label, runs in (("bare loop of pipeline calls", bare), ("aesdata generate", ours)):
        wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
        print(f"{label:>28} {wall:>8.2f} {cpu:>8.2f} {4 * n / wall:>9.2f}")
    print(f"overhead ratio (aesdata / bare): CPU {min(c for _, c in ours) / min(c for _, c in bare):.3f}, "
          f"wall {min(w for w, _ in ours) / min(w for w, _ in bare):.3f}  (target < 1.10)")


# --------------------------------------------------------------------------- (c) Ray Data, CPU


class _Clock:
    """A reporter that notes when each group is committed (the stage advances its task per group)."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_Clock]:
        yield self

    def advance(self, n: int = 1) -> None:
        self.marks.append(time.perf_counter())

    def problem(self, line: str) -> None:
        print(line, file=sys.stderr)

    def info(self, line: str) -> None:
        pass


def _tree_cpu() -> float:
    """CPU seconds of this process and everything under it (the local Ray's raylet, workers, actors;
    ended ones through their parents' children times): wall time alone misleads on a shared machine."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def bench_ray() -> None:
    """In-process against 1 and 2 Ray CPU actors, interleaved rounds, best of each."""
    try:
        import ray
    except ImportError:
        print("(c) skipped: Ray is not installed (pip install 'aesdata[ray]')")
        return
    from aesdata.generate.demo_sources import write_demo_sources
    from aesdata.generate.stage import generate
    from aesdata.ingest import ingest
    from aesdata.workspace import Workspace

    n, size, steps, rounds = int(os.environ.get("BENCH_GENERATE_RAY_SOURCES", "12")), 64, 4, 2
    paths = {"in-process": (None, "local"), "Ray, 1 CPU actor": (1, "ray"), "Ray, 2 CPU actors": (2, "ray")}
    best: dict[str, tuple[float, float, float]] = {}
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, logging_level="warning",
             log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            random_pipelines.build("tiny", root / "tok").save_pretrained(root / "tiny")
            write_demo_sources(root / "photos", n)
            for r in range(rounds):
                for label, (actors, where) in paths.items():
                    with Workspace.init(root / f"ws-{r}-{actors}") as ws:
                        ingest(ws, [root / "photos"], workers=1)
                        clock = _Clock()
                        t0, c0 = time.perf_counter(), _tree_cpu()
                        done = generate(ws, model=str(root / "tiny"), size=size, steps=steps, device="cpu",
                                        batch_size=1, executor=where, ray_actors=actors, reporter=clock)
                        wall, cpu = time.perf_counter() - t0, _tree_cpu() - c0
                    assert done["candidates"] == 4 * n, done
                    steady = 4 * (len(clock.marks) - 1) / (clock.marks[-1] - clock.marks[0])
                    old = best.get(label, (0.0, 0.0, 0.0))
                    best[label] = (max(old[0], 4 * n / wall), max(old[1], steady), max(old[2], 4 * n / cpu))
    finally:
        ray.shutdown()
    print(f"\n(c) Ray Data: tiny SD-inpaint pipeline, {n} sources x 4 images, {size}px, {steps} steps, CPU, "
          f"one torch thread per process or actor, local Ray with 2 CPUs, best of {rounds} interleaved rounds; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("end to end: model loading and actor start-up included; steady: first committed group to last; "
          "per CPU-second: the whole process tree (Ray's own processes included)")
    print(f"{'path':>20} {'img/s end to end':>17} {'ratio':>6} {'img/s steady':>13} {'ratio':>6} "
          f"{'img per CPU-s':>14} {'ratio':>6}")
    base = best["in-process"]
    for label, (e2e, steady, per_cpu) in best.items():
        print(f"{label:>20} {e2e:>17.2f} {e2e / base[0]:>6.2f} {steady:>13.2f} {steady / base[1]:>6.2f} "
              f"{per_cpu:>14.2f} {per_cpu / base[2]:>6.2f}")


# --------------------------------------------------------------------------- (b) GPU throughput


GPU_SETUPS = {  # arch: (preset, size, steps, images per batched call)
    "sd15": ("sd15-inpaint", 512, 30, 16),
    "sdxl": ("sdxl-inpaint", 1024, 30, 8),
}


def _unet_flops_per_image(pipe: Any, size: int) -> float:
    """FLOPs of the UNet for one image and one step (CFG: a batch of two), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipe.unet
    lat = size // pipe.vae_scale_factor
    sample = torch.randn(2, unet.config.in_channels, lat, lat, device="cuda", dtype=unet.dtype)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, device="cuda", dtype=unet.dtype)
    kwargs: dict[str, Any] = {}
    if unet.config.addition_embed_type == "text_time":
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 1280, device="cuda", dtype=unet.dtype),
                                       "time_ids": torch.randn(2, 6, device="cuda", dtype=unet.dtype)}
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(sample, torch.tensor([500.0], device="cuda"), encoder_hidden_states=ctx, **kwargs)
    return float(counter.get_total_flops())


def _rate(fn: Any, images_per_call: int, calls: int) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return images_per_call * calls / (time.perf_counter() - t0)


def bench_gpu(arch: str, out: Path | None) -> dict[str, Any]:
    name, size, steps, batch = GPU_SETUPS[arch]
    preset = load_preset(name).with_overrides(size=size, steps=steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pipe = random_pipelines.build(arch, Path(tmp) / "tok", device="cuda")  # type: ignore[arg-type]
        build_s = time.perf_counter() - t0
    pipe.set_progress_bar_config(disable=True)
    flops = _unet_flops_per_image(pipe, size) * steps
    res: dict[str, Any] = {"arch": arch, "size": size, "steps": steps, "batch": batch, "build_s": build_s,
                           "unet_tflop_per_image": flops / 1e12, "device": torch.cuda.get_device_name(),
                           "torch": torch.__version__}
    one = _jobs(1, preset)[:1]
    jobs = _jobs(batch // 4, preset)
    # naive: fp32, one image per call (TF32 off: PyTorch's default for matmuls)
    with torch.inference_mode():
        _bare_call(pipe, preset, one)
        res["fp32_single_ips"] = _rate(lambda: _bare_call(pipe, preset, one), 1, 2)
    print(f"[{arch}] fp32 one image per call: {res['fp32_single_ips']:.3f} images/s", flush=True)
    # aesdata: bf16 weights, batched across sources, SDPA, channels-last
    pipe.to(torch.bfloat16)
    engine = DiffusersBackend(pipe, preset, model_id=f"random-{arch}", revision=None, device="cuda")
    engine.render(jobs)
    res["bf16_batched_ips"] = _rate(lambda: engine.render(jobs), batch, 2)
    print(f"[{arch}] bf16 batched x{batch}: {res['bf16_batched_ips']:.3f} images/s", flush=True)
    # + torch.compile of the UNet (first call compiles: timed separately)
    compiled = DiffusersBackend(pipe, preset, model_id=f"random-{arch}", revision=None, device="cuda", compile=True)
    t0 = time.perf_counter()
    compiled.render(jobs)
    torch.cuda.synchronize()
    res["compile_first_call_s"] = time.perf_counter() - t0
    res["compiled_ips"] = _rate(lambda: compiled.render(jobs), batch, 2)
    print(f"[{arch}] bf16 batched x{batch} + compile: {res['compiled_ips']:.3f} images/s", flush=True)
    for key in ("fp32_single_ips", "bf16_batched_ips", "compiled_ips"):
        res[key.replace("_ips", "_unet_tflops")] = res[key] * flops / 1e12
    res["speedup_bf16"] = res["bf16_batched_ips"] / res["fp32_single_ips"]
    res["speedup_compiled"] = res["compiled_ips"] / res["fp32_single_ips"]
    if out:
        out.write_text(json.dumps(res, indent=2))
    return res


def print_gpu(res: dict[str, Any]) -> None:
    print(f"\n(b) {res['arch']} inpaint, random weights, {res['size']}px, {res['steps']} steps, {res['device']}")
    print(f"{'path':>34} {'images/s':>9} {'s/image':>8} {'UNet TFLOP/s':>13} {'vs fp32':>8}")
    for label, key in (("naive fp32, 1 image per call", "fp32_single"),
                       (f"aesdata bf16, batch {res['batch']}", "bf16_batched"),
                       (f"aesdata bf16, batch {res['batch']}, compile", "compiled")):
        ips = res[f"{key}_ips"]
        print(f"{label:>34} {ips:>9.3f} {1 / ips:>8.2f} {res[f'{key}_unet_tflops']:>13.1f} "
              f"{ips / res['fp32_single_ips']:>7.2f}x")
    print(f"UNet work: {res['unet_tflop_per_image']:.1f} TFLOP per image; first compiled call "
          f"{res['compile_first_call_s']:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", choices=sorted(GPU_SETUPS), action="append", help="run (b) for this arch only")
    parser.add_argument("--out", type=Path, help="folder for the (b) figures as JSON")
    parser.add_argument("--ray", action="store_true", help="run (c) only")
    args = parser.parse_args()
    if args.ray:
        bench_ray()
        return
    if not args.gpu:
        bench_overhead()
        bench_ray()
    if torch.cuda.is_available():
        for arch in args.gpu or sorted(GPU_SETUPS):
            print_gpu(bench_gpu(arch, args.out / f"{arch}.json" if args.out else None))
    elif args.gpu:
        print("(b) skipped: no CUDA device")
    else:
        print("\n(b) GPU throughput: no CUDA device here; figures from a GPU run are in benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()

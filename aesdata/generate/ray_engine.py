"""Generation on Ray Data: the same backend in ``map_batches`` actors, one per GPU (CPU actors where
the cluster has none).

The driver keeps the manifest. It sends groups of source references (blob hash and origin, never
pixels) to the actors; an actor loads the backend once, draws a group exactly as the local engine does
(the same :class:`~aesdata.generate.stage.Drawer`, seeds per (source, slot), and the same grouping of
sources into render calls, so the bytes do not depend on how many actors there are), writes the images
to the blob store itself (a folder on shared storage, or an fsspec URL such as ``s3://``) and returns
the group's :class:`~aesdata.generate.stage.Drawn` record: hashes and provenance. The driver commits
each one as it streams back. Every group is one Ray block, so a result is back as soon as its group is
drawn: killing the driver loses only the groups in flight (their blobs stay behind as harmless orphans
and a re-run draws them again, byte for byte); an actor that dies is restarted by Ray Data, which
retries its group.

A local Ray started for the run gets an allow-list of the driver's environment (:func:`actor_env`), so
its actors never hold the driver's secrets (``OPENAI_API_KEY``, ``LABEL_STUDIO_API_KEY``...) unless the
run needs them: ``HF_TOKEN`` when each actor downloads a hub model, the object store's credentials when
the blobs live behind one. Ray is the optional extra ``aesdata[ray]``: this module is imported only for
``--engine ray``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aesdata.blobs import open_store
from aesdata.childenv import NETWORK, PYTHON, child_env, swapped_environ
from aesdata.errors import AesdataError
from aesdata.generate.backend import factory
from aesdata.generate.presets import Preset
from aesdata.generate.stage import Drawer, Drawn, SourceRef, make_backend

#: Object store of a Ray started for the run: only source references and hashes travel, never pixels.
LOCAL_OBJECT_STORE = 256 * 2**20
#: What a local Ray's processes keep of the driver's environment besides childenv's BASE and NETWORK:
#: how to run Python, Ray, torch and its compilers, and where the model caches are.
RUNTIME: tuple[str, ...] = (
    *PYTHON, "RAY_*", "CUDA_*", "NVIDIA_*", "TORCH*", "TRITON_*", "HF_HOME", "HF_HUB_*", "HF_ENDPOINT",
    "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_*", "DIFFUSERS_*", "XDG_CACHE_HOME",
)
#: Only when the model is a hub id, which every actor downloads (gated models need the token).
HUB_TOKEN: tuple[str, ...] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH")
#: Only when the blobs are behind an fsspec URL: the variables s3fs, gcsfs and adlfs read.
STORE_CREDENTIALS: tuple[str, ...] = (
    "AWS_*", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "AZURE_STORAGE_*", "FSSPEC_*",
)


@dataclass(frozen=True)
class Plan:
    """How a run uses the cluster: what each actor loads, on what, and how many actors."""

    preset: Preset
    device: str  # what each actor loads the backend on
    actors: int
    gpus_per_actor: int
    cpus_per_actor: int  # CPU actors: always 1 (see plan)
    kind: str  # cuda, cpu or synthetic: picks the default sources per render call


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise AesdataError("--engine ray: Ray is not installed",
                           hint="pip install 'aesdata[ray]' (or use --engine local)") from None
    return ray


def actor_env(preset: Preset, blob_url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a local Ray started for the run (its daemons, hence its actors) inherits of ``environ``: the
    allow-lists above, and the variables the backend's factory names in its ``environment`` attribute."""
    groups = [NETWORK, RUNTIME, getattr(factory(preset.backend), "environment", ())]
    if preset.model and not Path(preset.model).expanduser().exists():
        groups.append(HUB_TOKEN)
    if "://" in blob_url and not blob_url.startswith(("file://", "local://")):
        groups.append(STORE_CREDENTIALS)
    return child_env(*groups, environ=environ)


def _init(ray: Any, address: str | None, env: Mapping[str, str]) -> None:
    quiet = dict(include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=bool(os.environ.get("AESDATA_DEBUG")))
    try:
        if address:  # a running cluster: its processes have the environment their nodes gave them
            ray.init(address=address, **quiet)
        else:  # "local": never join a cluster named by RAY_ADDRESS when none was asked for
            with swapped_environ(env):  # Ray's daemons start here, and its workers inherit theirs
                ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AesdataError(f"--ray-address {address or 'local'}: cannot start or reach Ray: {exc}".splitlines()[0],
                           hint="check `ray status` on the head node, or leave --ray-address out") from None


def plan(resources: dict[str, float], preset: Preset, *, device: str, actors: int | None) -> Plan:
    """One actor per GPU for a diffusers backend on a cluster with GPUs; CPU actors otherwise, one CPU
    each: the diffusers backend renders on CPU with ``diffusers_backend.CPU_THREADS`` (1) torch threads
    wherever it runs (its bytes depend on the count), so an actor reserves that many CPUs."""
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    on_gpu = preset.backend == "diffusers" and not device.startswith("cpu") and (gpus > 0 or device != "auto")
    if on_gpu:
        if actors is not None and actors > gpus:
            raise AesdataError(f"{actors} GPU actors asked for, the Ray cluster has {gpus} GPU(s)",
                               hint="lower [generate] ray_actors, or add GPU nodes (ray start --address ...)")
        return Plan(preset, "cuda", actors or gpus, 1, 1, "cuda")
    n = actors or cpus
    if n > cpus:
        raise AesdataError(f"{n} actors asked for, the Ray cluster has {cpus} CPU(s)",
                           hint="lower [generate] ray_actors")
    return Plan(preset, "cpu", n, 0, 1, "synthetic" if preset.backend == "synthetic" else "cpu")


def _portable(preset: Preset) -> Preset:
    """A relative model folder made absolute: actors do not start in the driver's folder."""
    if preset.model and Path(preset.model).expanduser().exists():
        return preset.with_overrides(model=str(Path(preset.model).expanduser().resolve()))
    return preset


@contextmanager
def cluster(address: str | None, preset: Preset, *, device: str, actors: int | None,
            blob_url: str) -> Iterator[Plan]:
    """Ray for the run: the one already initialised in this process, a cluster at ``address``, or a local
    one started here (with :func:`actor_env`, and shut down at the end)."""
    if not getattr(factory(preset.backend), "runs_on_ray", True):
        raise AesdataError(f"backend {preset.backend} does not run on Ray actors: it calls its API from this "
                           "process, with the workspace's ledger", hint="run it with --engine local")
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        _init(ray, address, actor_env(preset, blob_url))
    try:
        yield plan(ray.cluster_resources(), _portable(preset), device=device, actors=actors)
    finally:
        if started:
            ray.shutdown()


class DrawActor:
    """One Ray Data actor: loads the backend once, then draws one group of sources per call."""

    def __init__(self, preset: Preset, base_seed: int, blob_url: str, device: str, compile: bool) -> None:
        blobs = open_store(blob_url, Path(blob_url))
        self.drawer = Drawer(make_backend(preset, device=device, compile=compile), preset, base_seed, blobs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        return {"drawn": [self.drawer.draw([SourceRef(*ref) for ref in json.loads(group)]).model_dump_json()
                          for group in batch["group"]]}


_RAISED = re.compile(r"aesdata\.errors\.\w+: (.+)$", re.MULTILINE)


def _user_error(exc: BaseException) -> AesdataError:
    """The AesdataError an actor raised (a missing model folder on a node...), else Ray's first line.
    An actor that failed in ``__init__`` comes back as text only: its message is read from the traceback."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AesdataError):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    text = str(exc)
    raised = _RAISED.findall(text)
    if raised:
        return AesdataError(f"a Ray actor: {raised[-1].strip()}")
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return AesdataError(f"Ray: {first}", hint="AESDATA_DEBUG=1 shows the actors' logs")


def draw(plan: Plan, groups: Sequence[Sequence[SourceRef]], *, base_seed: int, blob_url: str,
         compile: bool = False) -> Iterator[Drawn]:
    """Draw every group on the actors; yield each group's record as it comes back (in any order)."""
    if not groups:
        return
    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the CLI draws its own
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    items = [{"group": json.dumps([list(ref) for ref in group])} for group in groups]
    pool = ray.data.ActorPoolStrategy(size=min(plan.actors, len(items)))
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        DrawActor, batch_size=1, batch_format="numpy", compute=pool,
        fn_constructor_kwargs=dict(preset=plan.preset, base_seed=base_seed, blob_url=blob_url,
                                   device=plan.device, compile=compile),
        num_gpus=plan.gpus_per_actor, num_cpus=plan.cpus_per_actor)
    signature: str | None = None
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for text in batch["drawn"]:
                drawn = Drawn.model_validate_json(text)
                for rec in drawn.records:
                    signature = signature or rec.sample.signature
                    if rec.sample.signature != signature:
                        raise AesdataError(
                            f"source {rec.sample.source_id[:12]}: drawn with signature {rec.sample.signature}, "
                            f"other actors used {signature}: the nodes load different models or versions",
                            hint="install the same aesdata, diffusers and model folder on every node")
                yield drawn
    except ray.exceptions.RayError as exc:
        raise _user_error(exc) from None

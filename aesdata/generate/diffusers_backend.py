"""The diffusers backend: a real inpainting pipeline paints the scene around the placed product.

Per-candidate reproducibility: every image gets its own CPU ``torch.Generator`` and the canvas is
passed once per image with ``num_images_per_prompt=1``. (With one image and
``num_images_per_prompt=4`` diffusers encodes the masked image with ``generator[0]`` only, which ties
the four candidates together.) CPU generators also make the noise independent of the device.

On CPU every render call runs on :data:`CPU_THREADS` torch threads, set around the call itself: PyTorch's
CPU results change in the last bit with the thread count, and that count is process state that other
code changes behind torch's back (the first parallel near-duplicate search of ``ingest`` launches numba's
OpenMP layer, which shares torch's OpenMP runtime and sets its thread count to the number of cores). So
the bytes of a CPU run do not depend on what the process did before, nor on the engine (in this process
or on Ray actors); CPU parallelism comes from more sources at once (Ray CPU actors), not more threads.

On CUDA the weights are bf16 (or fp16, per preset), attention is PyTorch SDPA (diffusers' default
``AttnProcessor2_0``), the UNet is channels-last, the VAE decodes one image at a time (big batches
fit), and ``compile=True`` wraps the denoiser in ``torch.compile``.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from aesdata.errors import AesdataError
from aesdata.generate.backend import Job, Rendered
from aesdata.generate.layout import inpaint_inputs, layout_of, place
from aesdata.generate.presets import Preset

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
#: torch threads of every CPU render call (see the module docstring); a Ray CPU actor reserves this many CPUs.
CPU_THREADS = 1


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` torch threads, then give the caller back the count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; an unavailable ``cuda`` is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AesdataError("--device cuda: no CUDA device is visible to torch",
                           hint="use --device cpu, or check the driver and the torch build")
    return device


def folder_revision(folder: Path) -> str:
    """Content hash of a pipeline folder (every file, names included): the 'revision' of a local model."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 23):
                digest.update(chunk)
    return f"folder-sha256:{digest.hexdigest()[:16]}"


def local_model_id(folder: Path, revision: str) -> str:
    """How a local model is recorded and published: its folder's name and content hash, never its path
    (a path names the user's file system, often their user name, and says nothing about the weights)."""
    return f"{folder.name}@{revision}"


def resolve_model(model: str, revision: str | None) -> tuple[Path, str, str]:
    """(folder to load, model id to record, resolved revision) for a local folder or a hub id."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise AesdataError(f"{path}: not a diffusers pipeline folder (no model_index.json)",
                               hint="save one with pipeline.save_pretrained(DIR)")
        folder, local_revision = path.resolve(), folder_revision(path)
        return folder, local_model_id(folder, local_revision), local_revision
    if not _HUB_ID.match(model):
        raise AesdataError(f"{model}: model folder not found",
                           hint="pass a folder saved with save_pretrained, or a hub id such as ORG/NAME")
    from diffusers import DiffusionPipeline

    try:
        folder = Path(DiffusionPipeline.download(model, revision=revision))
    except Exception as exc:  # hub errors come in many types; all mean "cannot get this model"
        raise AesdataError(f"{model}: no such local folder, and the hub download failed: {exc}".splitlines()[0],
                           hint="check the id and network (or HF_HUB_OFFLINE and the cache); "
                                "gated models need HF_TOKEN") from None
    return folder, model, folder.name  # the snapshot folder is named by the resolved commit


def _quiet_loading() -> None:
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


class DiffusersBackend:
    def __init__(self, pipe: Any, preset: Preset, *, model_id: str, revision: str | None, device: str,
                 compile: bool = False) -> None:
        self.preset, self.model_id, self.revision, self.device = preset, model_id, revision, device
        self.pipeline_class = type(pipe).__name__
        if device != "cpu":
            denoiser = getattr(pipe, "unet", None) or pipe.transformer
            denoiser.to(memory_format=torch.channels_last)
            if hasattr(pipe, "vae"):
                pipe.vae.enable_slicing()
        if compile:
            name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
            setattr(pipe, name, torch.compile(getattr(pipe, name), fullgraph=True))
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self._accepts = set(inspect.signature(pipe.__call__).parameters)

    @classmethod
    def load(cls, preset: Preset, *, device: str = "auto", compile: bool = False) -> DiffusersBackend:
        """Load ``preset.model`` (folder or hub id) with the preset's pipeline class and dtype."""
        if not preset.model:
            raise AesdataError(f"preset {preset.name}: no model", hint="pass --model PATH_OR_HUB_ID")
        device = resolve_device(device)
        _quiet_loading()
        folder, model_id, revision = resolve_model(preset.model, preset.revision)
        import diffusers

        if preset.pipeline == "auto":
            pipeline_cls: Any = diffusers.AutoPipelineForInpainting
        else:
            pipeline_cls = getattr(diffusers, preset.pipeline, None)
            if pipeline_cls is None:
                raise AesdataError(f"preset {preset.name}: diffusers has no pipeline class {preset.pipeline!r}")
        dtype = torch.float32 if device == "cpu" else getattr(torch, preset.dtype)
        try:
            pipe = pipeline_cls.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            raise AesdataError(f"{model_id}: cannot load a pipeline: {exc}".splitlines()[0]) from None
        return cls(pipe.to(device), preset, model_id=model_id, revision=revision, device=device, compile=compile)

    def identity(self) -> dict[str, Any]:
        import diffusers

        p = self.preset
        return dict(backend="diffusers", model_id=self.model_id, revision=self.revision,
                    pipeline_class=self.pipeline_class, scheduler=type(self.pipe.scheduler).__name__,
                    diffusers_version=diffusers.__version__, torch_version=torch.__version__,
                    negative_prompt=p.negative_prompt if "negative_prompt" in self._accepts else None,
                    steps=p.steps, guidance=p.guidance,
                    strength=p.strength if "strength" in self._accepts else None, size=p.size)

    def arrays(self, jobs: Sequence[Job]) -> np.ndarray:
        """The pipeline's float output (N x H x W x 3 in [0, 1]) for ``jobs``, in one call."""
        p = self.preset
        inputs = [inpaint_inputs(j.product, j.layout, p.size) for j in jobs]
        kwargs: dict[str, Any] = dict(
            prompt=[j.prompt for j in jobs], image=[canvas for canvas, _ in inputs],
            mask_image=[mask for _, mask in inputs],
            generator=[torch.Generator("cpu").manual_seed(j.seed) for j in jobs],
            num_images_per_prompt=1, num_inference_steps=p.steps, guidance_scale=p.guidance,
            height=p.size, width=p.size, output_type="np")
        if "negative_prompt" in self._accepts and p.negative_prompt:
            kwargs["negative_prompt"] = [p.negative_prompt] * len(jobs)
        if "strength" in self._accepts:
            kwargs["strength"] = p.strength
        threads = torch_threads(CPU_THREADS) if self.device == "cpu" else nullcontext()
        with threads, torch.inference_mode():
            return np.asarray(self.pipe(**kwargs).images, dtype=np.float32)

    def render(self, jobs: Sequence[Job]) -> list[Rendered]:
        images = (np.clip(self.arrays(jobs), 0, 1) * 255).round().astype(np.uint8)
        size = self.preset.size
        return [Rendered(image=Image.fromarray(img, "RGB"), layout=layout_of(place(j.product, j.layout, size), size),
                         prompt=j.prompt) for img, j in zip(images, jobs, strict=True)]

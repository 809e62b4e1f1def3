"""Workspace settings (``aesdata.toml``): one pydantic model per section, no secrets.

Secrets (LLM API key, Label Studio token, HF token) come from environment variables only;
the model forbids unknown keys so a token pasted into the file is refused, not stored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aesdata.childenv import swapped_environ
from aesdata.errors import AesdataError


class Section(BaseModel):
    # Validators are built once every section is defined, by _build_without_plugins below.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class IngestSettings(Section):
    near_duplicate_threshold: int = Field(6, ge=0, le=32, description="max pHash Hamming distance (of 64 bits)")
    group_threshold: int = Field(
        10, ge=0, le=32, description="sources this close are related: publish keeps them in one split"
    )
    max_pixels: int = Field(64_000_000, gt=0, description="larger images are rejected (decompression bombs)")
    max_bytes: int = Field(100_000_000, gt=0, description="larger files are rejected unread")

    @model_validator(mode="after")
    def _group_covers_duplicates(self) -> IngestSettings:
        if self.group_threshold < self.near_duplicate_threshold:
            raise ValueError("group_threshold must be >= near_duplicate_threshold")
        return self


class GenerateSettings(Section):
    backend: str = Field("synthetic", pattern="^[a-z0-9][a-z0-9._-]*$",
                         description="synthetic, diffusers, openai-images or a backend a package registers")
    preset: str = "sd15-inpaint"
    seed: int = Field(0, ge=0)
    engine: str = Field("local", pattern="^(local|ray)$", description="local: this process; ray: Ray Data actors")
    ray_address: str | None = Field(None, description="a running Ray cluster (ray://host:10001, auto); "
                                    "none: a local Ray is started for the run")
    ray_actors: int | None = Field(None, ge=1, description="actors to run: default one per GPU of the "
                                   "cluster, or one per CPU where it has none")


class BlobSettings(Section):
    url: str = Field("", description="where images live: a folder (relative to the workspace) or an fsspec URL "
                     "(s3://bucket/prefix, gs://...); empty: blobs/ in the workspace")


class AnnotateSettings(Section):
    url: str = "http://127.0.0.1:8080"
    project_title: str = "aesdata screening"
    overlap: int = Field(3, ge=1, le=50, description="distinct annotators the label stream hands each task")
    gold_fraction: float = Field(0.0, ge=0, le=0.5, description="share of pushed tasks that are gold (known answer)")
    min_gold_accuracy: float = Field(
        0.0, ge=0, le=1, description="annotators scoring below this on gold are left out of the consensus"
    )
    max_tasks_per_project: int = Field(
        100_000, ge=1, description="past this, push opens another project (Label Studio's guidance: ~100k)"
    )


class CotSettings(Section):
    base_url: str | None = None
    model: str | None = None
    concurrency: int = Field(16, ge=1)
    attempts: int = Field(3, ge=1, description="automated mode: tries per sample")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    max_retries: int = Field(5, ge=0, description="retries on 429 / 5xx / timeouts")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles per retry, Retry-After wins")
    max_side: int = Field(768, ge=16, description="images are resized so the longer side is at most this")
    structured: str = Field("auto", pattern="^(auto|schema|instructed)$",
                            description="json_schema response_format, or the schema in the prompt")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="model (or '*') -> {input, output} USD per million tokens"
    )
    batch_discount: float = Field(0.5, gt=0, le=1, description="--batch price as a share of cot.prices")
    batch_prices: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="--batch prices per model (or '*'), where not cot.prices x batch_discount"
    )
    batch_poll_s: float = Field(30.0, gt=0, description="--batch: seconds between polls of open batches")
    batch_max_requests: int = Field(50_000, ge=1, description="--batch: requests per batch at most")
    batch_max_bytes: int = Field(190_000_000, ge=1, description="--batch: bytes per batch input file at most")


class ImagesSettings(Section):
    """The image-editing API behind ``generate --backend openai-images`` (the model is the preset's)."""

    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; None: api.openai.com")
    api_key_env: str = Field("OPENAI_API_KEY", description="name of the variable holding the key")
    concurrency: int = Field(4, ge=1, description="requests in flight")
    timeout_s: float = Field(300.0, gt=0, description="per-request timeout")
    max_retries: int = Field(5, ge=0, description="retries on 429 / 5xx / timeouts / unreadable images")
    backoff_s: float = Field(2.0, ge=0, description="first retry delay; doubles per retry, Retry-After wins")
    send_seed: bool = Field(False, description="send each candidate's seed (endpoints that take a 'seed' field)")
    quality: str | None = Field(None, description="the API's quality parameter, when set")
    response_format: str | None = Field(None, pattern="^b64_json$",
                                        description="'b64_json' for endpoints that answer with URLs by default")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="model (or '*') -> {image: USD per image} or {input, output}: USD per million tokens")


class PublishSettings(Section):
    repo_id: str | None = None
    test_fraction: float = Field(0.1, ge=0, lt=1)
    rationale_priority: list[str] = ["manual", "answer-driven", "automated", "template"]
    license: str = "cc-by-4.0"


class Settings(Section):
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    blobs: BlobSettings = Field(default_factory=BlobSettings)
    annotate: AnnotateSettings = Field(default_factory=AnnotateSettings)
    cot: CotSettings = Field(default_factory=CotSettings)
    images: ImagesSettings = Field(default_factory=ImagesSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)


def _build_without_plugins(*models: type[BaseModel]) -> None:
    """Build the settings validators without pydantic's plugin discovery, at import, once.

    pydantic looks for plugins the first time it builds a validator, through the entry points of every
    installed distribution: ~25 ms of CPU, the only such work `aesdata status` would do (typer builds its
    parameter adapters with plugins off the same way). A plugin has nothing to observe in aesdata.toml;
    the models built later (aesdata.schema) still see the plugins.
    """
    with swapped_environ({**os.environ, "PYDANTIC_DISABLE_PLUGINS": "1"}):
        for model in models:
            model.model_rebuild()


_build_without_plugins(IngestSettings, GenerateSettings, BlobSettings, AnnotateSettings, CotSettings, ImagesSettings,
                       PublishSettings, Settings)

TEMPLATE = """\
# aesdata workspace settings. Secrets never go here: they come from the environment
# (OPENAI_API_KEY or the variable named by cot.api_key_env, LABEL_STUDIO_API_KEY, HF_TOKEN).

[ingest]
# An image whose pHash is within this many bits (of 64) of a source is a near-duplicate.
near_duplicate_threshold = 6
# Sources within this many bits are related (not duplicates): publish keeps them in the same split.
group_threshold = 10
# Images with more pixels than this are rejected (decompression-bomb guard).
max_pixels = 64000000
# Files larger than this many bytes are rejected without being read.
max_bytes = 100000000

[generate]
# "synthetic" (no weights, controlled defects), "diffusers" (a real inpainting pipeline),
# "openai-images" (an image-editing API, see [images]) or a backend a package registers.
backend = "synthetic"
# A preset name from generation/ (e.g. sd15-inpaint, sdxl-inpaint, flux-fill) or a TOML path.
preset = "sd15-inpaint"
# Base seed; each candidate records the seed it was drawn with.
seed = 0
# "local" (this process) or "ray" (Ray Data actors: one per GPU, CPU actors where there is none).
engine = "local"
# A running Ray cluster for engine = "ray"; without it a local Ray is started for the run.
# ray_address = "auto"
# How many actors (default: one per GPU of the cluster, or one per CPU where it has none).
# ray_actors = 2

[blobs]
# Where images live: empty for blobs/ in the workspace, another folder (shared storage for a Ray
# cluster), or an fsspec URL such as "s3://bucket/prefix" (credentials from the environment).
url = ""

[annotate]
# Label Studio server; the API token comes from LABEL_STUDIO_API_KEY.
url = "http://127.0.0.1:8080"
project_title = "aesdata screening"
# Distinct annotators Label Studio's label stream hands each task (its maximum_annotations). 3 lets a
# majority decide every slot without ties; 1 for a single annotator.
overlap = 3
# Share of pushed tasks that are gold (samples with a known answer), mixed in unseen to score annotators.
gold_fraction = 0.0
# Annotators whose exact accuracy on gold is below this are left out of the consensus (0: nobody).
min_gold_accuracy = 0.0
# Label Studio is comfortable up to ~100k tasks per project: past this, push opens "<title> #2", ...
max_tasks_per_project = 100000

[cot]
# OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, ...) and model for rationales.
# base_url = "http://127.0.0.1:8000/v1"
# model = "qwen2.5-vl-72b-instruct"
concurrency = 16
# automated mode: attempts per sample before giving up.
attempts = 3
# Name of the environment variable that holds the API key.
api_key_env = "OPENAI_API_KEY"
# Per-request timeout (s); retries on 429/5xx/timeouts with backoff from backoff_s (Retry-After wins).
timeout_s = 120.0
max_retries = 5
backoff_s = 1.0
# Images are sent as JPEG with the longer side at most this many pixels.
max_side = 768
# "auto": JSON-schema response_format, falling back to the schema in the prompt where refused.
structured = "auto"
# --batch (the provider's Batch API): price as a share of the online price, poll interval (s), and
# the size of one batch (OpenAI: 50000 requests, 200 MB per input file).
batch_discount = 0.5
batch_poll_s = 30.0
batch_max_requests = 50000
batch_max_bytes = 190000000
# Price table for the cost ledger and --max-cost: USD per million tokens ("*" for any model).
# [cot.prices]
# "gpt-4o" = { input = 2.5, output = 10.0 }
# Batch prices where they are not cot.prices x batch_discount:
# [cot.batch_prices]
# "gpt-4o" = { input = 1.25, output = 5.0 }

[images]
# The image-editing API for `generate --backend openai-images` (an OpenAI-compatible images.edit
# endpoint); the model comes from the preset (generation/openai-images.toml) or --model.
# base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"
concurrency = 4
timeout_s = 300.0
max_retries = 5
backoff_s = 2.0
# Send each candidate's seed as "seed" (only endpoints that take one; OpenAI's does not).
send_seed = false
# Price table for the generation ledger and --max-cost: USD per image, or per million tokens.
# [images.prices]
# "gpt-image-1" = { input = 10.0, output = 40.0 }

[publish]
# Hugging Face dataset repo (token from HF_TOKEN), e.g. "my-org/screening".
# repo_id = "my-org/screening"
test_fraction = 0.1
# Which mode's rationale a published row carries, first found wins.
rationale_priority = ["manual", "answer-driven", "automated", "template"]
license = "cc-by-4.0"
"""


def load_settings(path: Path) -> Settings:
    """Read and validate ``aesdata.toml``; a bad file is one clear error naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AesdataError(f"{path}: cannot read settings: {exc}") from exc
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AesdataError(f"{path}: {where}: {first['msg']}", hint="see the comments in the file") from exc

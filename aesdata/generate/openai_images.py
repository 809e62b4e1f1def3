"""The ``openai-images`` backend: an OpenAI-compatible ``images.edit`` endpoint paints the scene.

For every job the product is placed on the canvas exactly as for the diffusers backend
(:func:`aesdata.generate.layout.inpaint_inputs`, from the mask :mod:`aesdata.generate.masks` found) and
sent with a mask whose transparent part is what to paint: the product is kept, the scene is drawn
around it. Through the real ``openai`` client (its own retries off, so every retry is ours):

* at most ``concurrency`` requests in flight; retries with jittered exponential backoff on 429, 5xx,
  timeouts and unreadable images, never sooner than ``Retry-After`` (the rules of the LLM client); an
  endpoint that answers nothing at all (connection errors, timeouts through every retry) stops the run;
* a refused request (400, 413, 422: a prompt or image the endpoint will not take) fails that job
  alone, its source is skipped with one line and the run goes on; 401/403/404 stop the run;
* a 200 whose image does not decode was billed all the same: it counts against ``--max-cost`` (at the
  per-image price) and is retried;
* every paid image is stored as a blob and written to the ledger (``image_calls``) in its own
  transaction as it arrives, keyed by a hash of everything sent: a re-run, after a kill or a
  ``--max-cost`` stop, takes the image from the ledger and never pays twice for the same request;
* ``--max-cost``: once the ledger of this run reaches it no new request starts (those in flight
  finish and are recorded), and the stage stops cleanly;
* seeds: the OpenAI API takes none, so by default the seed chooses only the prompt and layout and the
  provenance says ``pixel_seed = "unavailable"``; ``images.send_seed`` sends it as ``seed`` to
  endpoints that take one (``pixel_seed = "sent"``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from PIL import Image, UnidentifiedImageError

from aesdata.blobs import encode_png
from aesdata.childenv import probe_platform
from aesdata.config import ImagesSettings
from aesdata.errors import AesdataError
from aesdata.generate.backend import BackendStopped, Failed, Job, LoadContext, Rendered
from aesdata.generate.layout import inpaint_inputs, layout_of, place
from aesdata.generate.presets import Preset
from aesdata.llm.client import (
    CostLedger,
    EndpointRejected,
    MalformedResponse,
    RetryPolicy,
    about_the_endpoint,
    api_key_from_env,
    retryable,
)
from aesdata.schema import Usage, utcnow
from aesdata.workspace import Workspace

#: The largest decoded reply accepted (pixels), so a hostile endpoint cannot exhaust memory.
MAX_REPLY_PIXELS = 4096 * 4096


def edit_inputs(job: Job, size: int) -> tuple[bytes, bytes]:
    """(image, mask) PNGs for ``images.edit``: the canvas with the product placed, and the same canvas
    whose alpha is 0 where the scene is to be painted (the API's mask convention) and 255 on the product."""
    canvas, paint = inpaint_inputs(job.product, job.layout, size)
    mask = canvas.convert("RGBA")
    mask.putalpha(paint.point(lambda v: 255 - v))
    return encode_png(canvas), encode_png(mask)


def image_cost(prices: Mapping[str, Mapping[str, float]], model: str, usage: Usage) -> float:
    """USD for one image: ``image`` per image, else ``input``/``output`` per million tokens of the usage."""
    price = prices.get(model) or prices.get("*") or {}
    if "image" in price:
        return float(price["image"])
    return (usage.prompt_tokens * price.get("input", 0.0) + usage.completion_tokens * price.get("output", 0.0)) / 1e6


def decode_reply(text: str, size: int) -> tuple[Image.Image, Usage]:
    """The image (RGB, ``size`` square) and the token usage of an ``images.edit`` reply body.

    A body that is not an images response, an image that does not decode, or one that is not square is
    :class:`MalformedResponse` (retried); an image of another side is resized to the canvas.
    """
    try:
        data = json.loads(text)
        item = data["data"][0]
        b64 = item.get("b64_json")
        usage = data.get("usage") or {}
        tokens = (int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise MalformedResponse(f"not an images response: {text[:120]!r}") from exc
    if not b64:
        raise MalformedResponse("the reply has no b64_json image" + (
            " (it gave a URL: set images.response_format = 'b64_json')" if item.get("url") else ""))
    try:
        raw = base64.b64decode(b64, validate=True)
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_REPLY_PIXELS:
                raise MalformedResponse(f"the image is {img.width}x{img.height}, larger than accepted")
            img.load()
            out = img.convert("RGB")
    except (ValueError, OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise MalformedResponse(f"the image does not decode ({type(exc).__name__})") from exc
    if out.width != out.height:
        raise MalformedResponse(f"the image is {out.width}x{out.height}, not the square asked for")
    if out.width != size:
        out = out.resize((size, size), Image.Resampling.LANCZOS)
    return out, Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1])


# --------------------------------------------------------------------------- the ledger (image_calls)


def paid_image(ws: Workspace, request_key: str) -> str | None:
    """The blob of an image already paid for with exactly this request, if any."""
    row = ws.db.execute("SELECT sha256 FROM image_calls WHERE request_key = ?", (request_key,)).fetchone()
    return row["sha256"] if row and ws.blobs.exists(row["sha256"]) else None


def record_paid(ws: Workspace, job: Job, request_key: str, model: str, sha256: str, usage: Usage) -> None:
    with ws.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO image_calls (request_key, source_id, slot, seed, model, sha256, prompt_tokens,"
            " completion_tokens, cost_usd, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request_key, job.source_id, job.slot, job.seed, model, sha256, usage.prompt_tokens,
             usage.completion_tokens, usage.cost_usd, utcnow().isoformat()))


def spent(ws: Workspace) -> dict[str, float]:
    """Images paid for and their cost, over the workspace's whole history."""
    calls, cost = ws.db.execute("SELECT COUNT(*), COALESCE(SUM(cost_usd), 0.0) FROM image_calls").fetchone()
    return {"images": calls, "cost_usd": cost}


# --------------------------------------------------------------------------- the backend


@dataclass
class _Counts:
    calls: int = 0  # images paid for in this run
    reused: int = 0  # images taken from the ledger instead of paying again
    retries: int = 0
    refused: int = 0
    unusable: int = 0  # answered with an image that did not decode (billed, retried)


class OpenAIImagesBackend:
    """Draws candidates through ``images.edit``; see the module docstring for the rules."""

    device = "api"  # the stage's batch-size default for remote backends

    def __init__(self, preset: Preset, ws: Workspace, *, settings: ImagesSettings, api_key: str,
                 base_url: str | None, concurrency: int, max_cost: float | None) -> None:
        if not preset.model:
            raise AesdataError(f"preset {preset.name}: no model", hint="pass --model (e.g. gpt-image-1)")
        if max_cost is not None and not (settings.prices.get(preset.model) or settings.prices.get("*")):
            raise AesdataError(f"--max-cost needs a price for model {preset.model!r}",
                               hint="add it (or '*') under [images.prices] in aesdata.toml")
        self.preset, self.ws, self.settings = preset, ws, settings
        self.model, self.base_url, self.concurrency = preset.model, base_url, concurrency
        self._api_key = api_key
        self.retry = RetryPolicy(max_retries=settings.max_retries, backoff_s=settings.backoff_s)
        self.ledger = CostLedger(max_cost=max_cost)
        self.counts = _Counts()

    def identity(self) -> dict[str, Any]:
        return dict(backend="openai-images", model_id=self.model, revision=None, pipeline_class="images.edit",
                    scheduler=None, diffusers_version=None, torch_version=None, negative_prompt=None,
                    steps=None, guidance=None, strength=None, size=self.preset.size,
                    pixel_seed="sent" if self.settings.send_seed else "unavailable")

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {"calls": c.calls, "reused": c.reused, "retries": c.retries, "refused": c.refused,
                "unusable": c.unusable, "cost_usd": round(self.ledger.cost_usd, 6)}

    # ------------------------------------------------------------------ requests

    def request_key(self, job: Job, image: bytes, mask: bytes) -> str:
        """Hash of everything that decides what is paid for: same key, same request."""
        sent = {"model": self.model, "prompt": job.prompt, "size": self.preset.size, "quality": self.settings.quality,
                "seed": job.seed if self.settings.send_seed else None,
                "image": hashlib.sha256(image).hexdigest(), "mask": hashlib.sha256(mask).hexdigest()}
        return hashlib.sha256(json.dumps(sent, sort_keys=True).encode()).hexdigest()

    def _params(self, job: Job, image: bytes, mask: bytes) -> dict[str, Any]:
        s, size = self.settings, self.preset.size
        params: dict[str, Any] = dict(image=("canvas.png", image, "image/png"), mask=("mask.png", mask, "image/png"),
                                      prompt=job.prompt, model=self.model, n=1, size=f"{size}x{size}")
        if s.quality:
            params["quality"] = s.quality
        if s.response_format:
            params["response_format"] = s.response_format
        if s.send_seed:
            params["extra_body"] = {"seed": job.seed}
        return params

    def _rendered(self, job: Job, img: Image.Image) -> Rendered:
        size = self.preset.size
        return Rendered(image=img, layout=layout_of(place(job.product, job.layout, size), size), prompt=job.prompt)

    async def _one(self, client: openai.AsyncOpenAI, gate: asyncio.Semaphore, job: Job) -> Rendered | Failed | None:
        """One job: from the ledger, else paid for (retried as needed). ``None``: not started (budget)."""
        image, mask = edit_inputs(job, self.preset.size)
        key = self.request_key(job, image, mask)
        if (sha := paid_image(self.ws, key)) is not None:
            self.counts.reused += 1
            return self._rendered(job, self.ws.blobs.open(sha).convert("RGB"))
        async with gate:
            tries = 0
            while True:
                if self.ledger.exhausted:
                    return None
                tries += 1
                raw = None
                try:
                    raw = await client.images.with_raw_response.edit(**self._params(job, image, mask))
                    img, usage = decode_reply(raw.text, self.preset.size)
                except (openai.APIError, MalformedResponse) as exc:
                    if raw is not None:  # answered (and so billed) but unusable: it counts against --max-cost
                        self.ledger.add(Usage(cost_usd=image_cost(self.settings.prices, self.model, Usage())))
                        self.counts.unusable += 1
                    retry, wait_hint, reason = retryable(exc)
                    if about_the_endpoint(exc):
                        raise EndpointRejected(f"{self.base_url or 'OpenAI'}: {reason}",
                                               hint="check the model name, base URL and API key") from exc
                    if not retry:
                        self.counts.refused += 1
                        return Failed(f"the endpoint refused the request: {reason}")
                    if tries > self.retry.max_retries:
                        if isinstance(exc, openai.APIConnectionError) and self.ledger.calls == 0:
                            raise EndpointRejected(f"{self.base_url or 'OpenAI'}: {reason} after {tries} tries, "
                                                   "and no request of this run was answered",
                                                   hint="check --base-url / images.base_url and the network") from exc
                        return Failed(f"{reason} after {tries} tries")
                    self.counts.retries += 1
                    await asyncio.sleep(self.retry.delay(tries, wait_hint))
                    continue
                break
        usage = usage.model_copy(update={"cost_usd": image_cost(self.settings.prices, self.model, usage)})
        self.ledger.add(usage)
        self.counts.calls += 1
        record_paid(self.ws, job, key, self.model, self.ws.blobs.put_image(img), usage)
        return self._rendered(job, img)

    async def _all(self, jobs: Sequence[Job]) -> list[Rendered | Failed | None]:
        gate = asyncio.Semaphore(self.concurrency)
        probe_platform()  # the client's platform headers run ``uname -p``: not with this process's secrets
        async with openai.AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                      timeout=openai.Timeout(self.settings.timeout_s)) as client:
            return list(await asyncio.gather(*(self._one(client, gate, j) for j in jobs)))

    def render(self, jobs: Sequence[Job]) -> list[Rendered | Failed]:
        out = asyncio.run(self._all(jobs))
        if any(r is None for r in out):  # the --max-cost cap stopped new requests
            spent, cap = self.ledger.cost_usd, self.ledger.max_cost
            message = f"spent ${spent:.4f} of the --max-cost ${cap:.4f}: no new requests"
            raise BackendStopped(message, hint="the images paid for are kept; raise --max-cost and run again "
                                               "(they are not paid for again)")
        return [r for r in out if r is not None]


def load(preset: Preset, ctx: LoadContext) -> OpenAIImagesBackend:
    """The ``openai-images`` entry point: settings from ``[images]``, command-line values first."""
    if ctx.workspace is None:
        raise AesdataError("the openai-images backend needs a workspace (its ledger of paid images lives there)")
    settings = ctx.workspace.settings.images
    base_url = ctx.base_url or settings.base_url
    try:
        api_key = api_key_from_env(settings.api_key_env, base_url=base_url)
    except AesdataError as exc:
        raise AesdataError(exc.message, hint=f"export {settings.api_key_env}=... (or set images.api_key_env / "
                                             "images.base_url in aesdata.toml)") from None
    return OpenAIImagesBackend(preset, ctx.workspace, settings=settings, api_key=api_key, base_url=base_url,
                               concurrency=ctx.concurrency or settings.concurrency, max_cost=ctx.max_cost)


load.runs_on_ray = False  # type: ignore[attr-defined]  # requests go out from the driver, paid into its ledger

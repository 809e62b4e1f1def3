"""``aesdata generate``: four candidates (slots A-D) and one sample for every source that has none.

1. settle the backend and preset (CLI options over ``aesdata.toml``), 2. load the backend (a missing
model fails here, before any work), 3. for each batch of sources: cut the product out by its mask
(a source without a usable mask is one skipped line), plan one job per slot from the slot's seed,
render the whole batch in one call, redraw near-duplicate siblings with the next seed, store the
images, then commit the batch's samples, candidates (and synthetic labels) in one transaction.
A kill loses at most the batch in flight; a re-run picks up the sources still without a sample.

Step 3 up to the commit is :class:`Drawer`'s, so it runs the same in this process (engine ``local``) or
on Ray Data actors (engine ``ray``, :mod:`aesdata.generate.ray_engine`), which write the images to the
blob store themselves and send back only :class:`Drawn` records; the driver commits them as they come.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, NamedTuple

import imagehash
from PIL import Image
from pydantic import BaseModel

from aesdata import store
from aesdata.blobs import BlobStore
from aesdata.errors import AesdataError, InputRejected
from aesdata.generate import layout as layoutmod
from aesdata.generate.backend import Backend, BackendStopped, Failed, Job, LoadContext, Rendered, make_backend
from aesdata.generate.masks import product_mask
from aesdata.generate.presets import Preset, choose
from aesdata.progress import LogReporter, Reporter
from aesdata.schema import SLOTS, Candidate, GenerationProvenance, Judgement, Label, Sample, Slot, Source
from aesdata.workspace import Workspace

#: What a run reports (and records in its ``runs`` row).
SUMMARY_KEYS = ("sources", "samples", "candidates", "redraws", "skipped", "failed")
#: Sources per batch (one render call) when --batch-size is not given.
DEFAULT_BATCH = {"cuda": 4, "cpu": 1, "synthetic": 16, "api": 4}


def candidate_seed(base_seed: int, source_id: str, slot: Slot) -> int:
    """The seed of a slot: stable per (base seed, source, slot), independent of the batch or run order."""
    return int(hashlib.sha256(f"{base_seed}:{source_id}:{slot}".encode()).hexdigest()[:8], 16)


def settle_preset(ws: Workspace, *, backend: str | None = None, preset: str | None = None,
                  model: str | None = None, steps: int | None = None, size: int | None = None) -> Preset:
    """The effective preset: CLI options, then ``[generate]`` of aesdata.toml, then the preset's own values."""
    loaded = choose(preset=preset, backend=backend, model=model, default_backend=ws.settings.generate.backend,
                    default_preset=ws.settings.generate.preset, root=ws.root)
    return loaded.with_overrides(model=model, steps=steps, size=size)


@dataclass(frozen=True)
class Planner:
    """Turns (source, slot, seed) into a job: the prompt and the layout come from the seed alone."""

    preset: Preset
    bank: tuple[str, ...]

    @classmethod
    def of(cls, preset: Preset) -> Planner:
        return cls(preset, tuple(preset.prompt_bank()))

    def job(self, source_id: str, slot: Slot, seed: int, product: Image.Image,
            injected: Sequence[str] = ()) -> Job:
        rng = random.Random(seed)
        return Job(source_id=source_id, slot=slot, seed=seed, prompt=rng.choice(self.bank),
                   layout=layoutmod.draw(rng, self.preset.layout), product=product,
                   injected=tuple(injected))  # type: ignore[arg-type]


class SourceRef(NamedTuple):
    """What drawing needs of a source (all a Ray worker is sent): its blob and where it came from."""

    id: str
    origin: str  # a mask sidecar is looked up next to it


def cut_product(blobs: BlobStore, source: SourceRef | Source) -> tuple[Image.Image, str]:
    """The source's product cut-out and the mask rule used; :class:`InputRejected` when there is none."""
    try:
        img = blobs.open(source.id)
    except OSError as exc:
        raise InputRejected(f"{source.origin}: source image {source.id[:12]} unreadable in the blob store: "
                            f"{exc.strerror or exc}") from None
    mask, how = product_mask(img, source.origin)
    return layoutmod.cutout(img, mask), how


def product_of(ws: Workspace, source: Source) -> tuple[Image.Image, str]:
    return cut_product(ws.blobs, source)


def _phash(r: Rendered | Failed) -> imagehash.ImageHash | None:
    return imagehash.phash(r.image) if isinstance(r, Rendered) else None


def render_distinct(backend: Backend, planner: Planner, jobs: list[Job]) -> tuple[list[Job], list[Rendered | Failed],
                                                                                      list[int]]:
    """Render ``jobs``; a candidate within the preset's pHash distance of an earlier sibling is redrawn
    with the next seed, at most ``max_redraws`` times (then kept). Returns final jobs, images, redraws."""
    jobs = list(jobs)
    out = list(backend.render(jobs))
    hashes = [_phash(r) for r in out]
    redraws = [0] * len(jobs)
    limit = planner.preset.near_duplicate_distance
    for _ in range(planner.preset.max_redraws):
        again = [i for i, job in enumerate(jobs) if hashes[i] is not None and any(
            jobs[k].source_id == job.source_id and hashes[k] is not None and hashes[i] - hashes[k] <= limit
            for k in range(i))]
        if not again:
            break
        for i in again:
            j = jobs[i]
            jobs[i] = planner.job(j.source_id, j.slot, j.seed + 1, j.product, j.injected)
            redraws[i] += 1
        for i, r in zip(again, backend.render([jobs[i] for i in again]), strict=True):
            out[i], hashes[i] = r, _phash(r)
    return jobs, out, redraws


def _injections(preset: Preset, base_seed: int, source_id: str) -> dict[Slot, tuple[str, ...]]:
    if preset.backend != "synthetic":
        return {s: () for s in SLOTS}
    from aesdata.generate.synthetic import draw_defects

    return draw_defects(random.Random(f"{base_seed}:{source_id}:defects"))


class Record(BaseModel):
    """One drawn sample, ready to commit: its images are already in the blob store."""

    sample: Sample
    candidates: list[Candidate]
    judgement: Judgement | None = None


class Drawn(BaseModel):
    """What drawing one group of sources gives. It is all that travels back from a Ray worker
    (hashes and provenance, no pixels), validated again on the driver like any outside data."""

    sources: int
    records: list[Record]
    problems: list[str] = []
    redraws: int = 0
    failed: int = 0  # sources with a candidate the backend could not draw (each one a problem line)


class Drawer:
    """Draws groups of sources with a loaded backend and stores their images: the work of one process,
    the driver's own in the local engine, one actor's with Ray. Rows are the caller's to commit."""

    def __init__(self, backend: Backend, preset: Preset, base_seed: int, blobs: BlobStore) -> None:
        self.backend, self.preset, self.base_seed, self.blobs = backend, preset, base_seed, blobs
        self.planner = Planner.of(preset)
        self.identity = backend.identity()
        self.signature = hashlib.sha256(
            f"{preset.signature(base_seed)}:{self.identity.get('revision')}".encode()).hexdigest()[:16]

    def draw(self, sources: Sequence[SourceRef]) -> Drawn:
        """1. cut out each product (a source without a usable mask is one problem line), 2. plan one job
        per slot from its seed, 3. render the group in one call (plus redraws), 4. store the images."""
        problems: list[str] = []
        batch: list[tuple[SourceRef, str, list[Job]]] = []
        for source in sources:
            try:
                product, rule = cut_product(self.blobs, source)
            except InputRejected as exc:
                problems.append(str(exc))
                continue
            injected = _injections(self.preset, self.base_seed, source.id)
            batch.append((source, rule, [
                self.planner.job(source.id, s, candidate_seed(self.base_seed, source.id, s), product, injected[s])
                for s in SLOTS]))
        if not batch:
            return Drawn(sources=len(sources), records=[], problems=problems)
        jobs, out, redraws = render_distinct(self.backend, self.planner, [j for _, _, js in batch for j in js])
        records, failed = [], 0
        for n, (source, rule, _) in enumerate(batch):
            bad = [(jobs[i].slot, r.reason) for i in range(4 * n, 4 * n + 4) if isinstance(r := out[i], Failed)]
            if bad:  # a sample needs all four: this source waits for a re-run, the others go on
                failed += 1
                problems.append(f"{source.origin}: " + "; ".join(f"slot {slot}: {why}" for slot, why in bad)
                                + " (a re-run tries it again)")
            else:
                records.append(self._record(n, source, rule, jobs, out, redraws))  # type: ignore[arg-type]
        return Drawn(sources=len(sources), records=records, problems=problems, redraws=sum(redraws), failed=failed)

    def _record(self, n: int, source: SourceRef, rule: str, jobs: list[Job], out: list[Rendered],
                redraws: list[int]) -> Record:
        backend = self.identity["backend"]
        sample = Sample(id=store.sample_id_for(source.id), source_id=source.id, backend=backend,
                        signature=self.signature)
        cands = []
        for i in range(4 * n, 4 * n + 4):
            job, r = jobs[i], out[i]
            prov = GenerationProvenance(**self.identity, prompt=r.prompt, seed=job.seed, layout=r.layout,
                                        redraws=redraws[i], injected=list(job.injected), mask=rule,
                                        regions=list(r.regions))
            cands.append(Candidate(sample_id=sample.id, slot=job.slot, sha256=self.blobs.put_image(r.image),
                                   width=r.image.width, height=r.image.height, seed=job.seed, provenance=prov))
        judgement = (Judgement.from_defects({c.slot: c.provenance.injected for c in cands},
                                            {c.slot: c.provenance.regions for c in cands})
                     if backend == "synthetic" else None)
        return Record(sample=sample, candidates=cands, judgement=judgement)


def commit(ws: Workspace, drawn: Drawn) -> int:
    """Every sample of a drawn group in one transaction; returns how many were new (a sample another
    run committed first is kept, so a re-run or a retried Ray batch never duplicates)."""
    made = 0
    with ws.transaction() as db:
        for rec in drawn.records:
            if store.get_sample(db, rec.sample.id) is not None:
                continue
            store.insert_sample(db, rec.sample, rec.candidates)
            if rec.judgement is not None:
                store.upsert_label(db, Label(sample_id=rec.sample.id, origin="synthetic", judgement=rec.judgement))
            made += 1
    return made


def settle_engine(ws: Workspace, executor: str | None, ray_address: str | None) -> tuple[str, str | None]:
    """Where drawing runs (``local`` or ``ray``) and the Ray address: CLI options over aesdata.toml."""
    cfg = ws.settings.generate
    chosen = executor or ("ray" if ray_address else cfg.engine)
    if chosen not in ("local", "ray"):
        raise AesdataError(f"--engine {chosen}: not an engine (local or ray)")
    if ray_address and chosen != "ray":
        raise AesdataError("--ray-address is for --engine ray")
    return chosen, ray_address or cfg.ray_address


def generate(ws: Workspace, *, backend: str | None = None, preset: str | None = None, model: str | None = None,
             limit: int | None = None, batch_size: int | None = None, device: str = "auto",
             steps: int | None = None, size: int | None = None, seed: int | None = None, compile: bool = False,
             base_url: str | None = None, concurrency: int | None = None, max_cost: float | None = None,
             reporter: Reporter | None = None, engine: Backend | None = None, executor: str | None = None,
             ray_address: str | None = None, ray_actors: int | None = None) -> dict[str, Any]:
    """Generate the missing samples; returns counts (sources, samples, candidates, redraws, skipped, failed,
    and what the backend adds: an API backend's calls, reuses and cost).

    ``executor`` ``ray`` draws on Ray Data actors (see :mod:`aesdata.generate.ray_engine`); the driver
    commits what they return exactly as the local engine commits its own batches. ``engine`` lets a
    caller that already holds a loaded backend (benchmarks, notebooks) reuse it in this process.
    """
    reporter = reporter or LogReporter()
    # 1. settings
    chosen = settle_preset(ws, backend=backend, preset=preset, model=model, steps=steps, size=size)
    base_seed = ws.settings.generate.seed if seed is None else seed
    where, address = settle_engine(ws, executor, ray_address)
    pending = list(store.iter_sources(ws.db, without_sample=True))[:limit]
    refs = [SourceRef(s.id, s.origin) for s in pending]
    params: dict[str, Any] = dict(backend=chosen.backend, preset=chosen.name, seed=base_seed, steps=chosen.steps,
                                  size=chosen.size, limit=limit, device=device, compile=compile, engine=where,
                                  max_cost=max_cost)
    with ExitStack() as stack:
        # 2. backend (fails early: a missing model folder is one error before any work)
        if where == "ray":
            from aesdata.generate import ray_engine

            plan = stack.enter_context(ray_engine.cluster(address, chosen, device=device,
                                                          actors=ray_actors or ws.settings.generate.ray_actors,
                                                          blob_url=ws.blobs.url))
            per_batch = batch_size or DEFAULT_BATCH[plan.kind]
            params.update(model=chosen.model, ray_address=address, actors=plan.actors, batch_size=per_batch)
            groups = [refs[i:i + per_batch] for i in range(0, len(refs), per_batch)]
            stream: Iterable[Drawn] = ray_engine.draw(plan, groups, base_seed=base_seed, blob_url=ws.blobs.url,
                                                      compile=compile)
        else:
            ctx = LoadContext(workspace=ws, device=device, compile=compile, base_url=base_url,
                              concurrency=concurrency, max_cost=max_cost)
            drawer = Drawer(engine or make_backend(chosen, ctx), chosen, base_seed, ws.blobs)
            kind = "synthetic" if chosen.backend == "synthetic" else getattr(drawer.backend, "device", "cpu")
            per_batch = batch_size or DEFAULT_BATCH.get(kind.split(":")[0], 1)
            params.update(model=drawer.identity["model_id"], revision=drawer.identity["revision"],
                          signature=drawer.signature, batch_size=per_batch)
            stream = (drawer.draw(refs[i:i + per_batch]) for i in range(0, len(refs), per_batch))
        # 3. commit each group as it comes; the counts live in the run record, so a killed run still says
        # what it did
        run = stack.enter_context(ws.run("generate", params))
        task = stack.enter_context(reporter.task("generating", len(pending)))
        for key in SUMMARY_KEYS:
            run.count(key, len(pending) if key == "sources" else 0)
        try:
            for drawn in stream:
                for line in drawn.problems:
                    reporter.problem(line)
                made = commit(ws, drawn)
                run.count("redraws", drawn.redraws)
                run.count("samples", made)
                run.count("candidates", 4 * made)
                run.count("failed", drawn.failed)
                run.count("skipped", drawn.sources - drawn.failed - made)
                task.advance(drawn.sources)
        except BackendStopped as exc:  # a spending cap: what was drawn is kept, the rest waits for a re-run
            reporter.info(f"{exc}; {exc.hint}" if exc.hint else str(exc))
            run.count("stopped")
        extra = getattr(drawer.backend, "summary", None) if where != "ray" else None
        return {**run.counts, **(extra() if extra else {})}


def regenerate(ws: Workspace, engine: Backend, preset: Preset, sample_id: str, slot: Slot) -> Image.Image:
    """Draw one stored candidate again from its recorded seed alone (same preset and model)."""
    sample = store.get_sample(ws.db, sample_id)
    cand = next((c for c in store.get_candidates(ws.db, sample_id) if c.slot == slot), None)
    source = store.get_source(ws.db, sample.source_id) if sample else None
    if cand is None or source is None:
        raise AesdataError(f"sample {sample_id}: no candidate in slot {slot}")
    product, _ = product_of(ws, source)
    job = Planner.of(preset).job(source.id, slot, cand.seed, product, cand.provenance.injected)
    drawn = engine.render([job])[0]
    if isinstance(drawn, Failed):
        raise AesdataError(f"sample {sample_id}, slot {slot}: {drawn.reason}")
    return drawn.image

"""``aesdata generate``: four candidates (slots A-D) and one sample for every source that has none.

1. settle the backend and preset (CLI options over ``aesdata.toml``), 2. load the backend (a missing
model fails here, before any work), 3. for each batch of sources: cut the product out by its mask
(a source without a usable mask is one skipped line), plan one job per slot from the slot's seed,
render the whole batch in one call, redraw near-duplicate siblings with the next seed, store the
images, then commit the batch's samples, candidates (and synthetic labels) in one transaction.
A kill loses at most the batch in flight; a re-run picks up the sources still without a sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import imagehash
from PIL import Image

from aesdata import store
from aesdata.errors import AesdataError, InputRejected
from aesdata.generate import layout as layoutmod
from aesdata.generate.backend import Backend, BackendStopped, Failed, Job, LoadContext, Rendered, make_backend
from aesdata.generate.backend import available as available_backends
from aesdata.generate.masks import product_mask
from aesdata.generate.presets import Preset, load_preset
from aesdata.generate.presets import available as available_presets
from aesdata.progress import LogReporter, Reporter
from aesdata.schema import SLOTS, Candidate, GenerationProvenance, Judgement, Label, Sample, Slot, Source
from aesdata.workspace import Workspace

#: What a run reports (and records in its ``runs`` row).
SUMMARY_KEYS = ("sources", "samples", "candidates", "redraws", "skipped", "failed")
#: Sources per batch when --batch-size is not given.
DEFAULT_BATCH = {"cuda": 4, "cpu": 1, "synthetic": 16, "api": 4}


def candidate_seed(base_seed: int, source_id: str, slot: Slot) -> int:
    """The seed of a slot: stable per (base seed, source, slot), independent of the batch or run order."""
    return int(hashlib.sha256(f"{base_seed}:{source_id}:{slot}".encode()).hexdigest()[:8], 16)


def settle_preset(ws: Workspace, *, backend: str | None = None, preset: str | None = None,
                  model: str | None = None, steps: int | None = None, size: int | None = None) -> Preset:
    """The effective preset: CLI options, then ``[generate]`` of aesdata.toml, then the preset's own values."""
    chosen = backend or ("diffusers" if model else ws.settings.generate.backend)
    if chosen not in available_backends():
        raise AesdataError(f"--backend {chosen}: not a backend (registered: {', '.join(sorted(available_backends()))})",
                           hint="a package adds one through the 'aesdata.backends' entry-point group")
    if preset is None and chosen != "diffusers" and chosen not in available_presets():
        # a plugin backend without a preset of its own: the generic canvas (prompt bank, layout, size)
        loaded = load_preset("synthetic").with_overrides(name=chosen, backend=chosen)
    else:
        loaded = load_preset(preset or (ws.settings.generate.preset if chosen == "diffusers" else chosen))
    if loaded.backend != chosen:
        raise AesdataError(f"preset {loaded.name} is for the {loaded.backend} backend, not {chosen}",
                           hint="pick a preset of that backend, or the other --backend")
    if model and chosen == "synthetic":
        raise AesdataError("--model is for the diffusers backend; the synthetic backend needs no weights")
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


def product_of(ws: Workspace, source: Source) -> tuple[Image.Image, str]:
    """The source's product cut-out and the mask rule used; :class:`InputRejected` when there is none."""
    try:
        img = ws.blobs.open(source.id)
    except OSError as exc:
        raise InputRejected(f"{source.origin}: source image {source.id[:12]} unreadable in the blob store: "
                            f"{exc.strerror or exc}") from None
    mask, how = product_mask(img, source.origin)
    return layoutmod.cutout(img, mask), how


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


@dataclass
class _Prepared:
    source: Source
    mask_rule: str
    jobs: list[Job]


def _drop_failed(batch: list[_Prepared], jobs: list[Job], out: list[Rendered | Failed], redraws: list[int],
                 reporter: Reporter) -> tuple[tuple[list[_Prepared], list[Job], list[Rendered], list[int]], int]:
    """The sources whose four candidates were all drawn; each other one is one line and counted failed."""
    kept: tuple[list[_Prepared], list[Job], list[Rendered], list[int]] = ([], [], [], [])
    failed = 0
    for n, prep in enumerate(batch):
        span = range(4 * n, 4 * n + 4)
        bad = [(jobs[i].slot, r.reason) for i in span if isinstance(r := out[i], Failed)]
        if bad:
            failed += 1
            reporter.problem(f"{prep.source.origin}: " + "; ".join(f"slot {slot}: {why}" for slot, why in bad)
                             + " (a re-run tries it again)")
            continue
        kept[0].append(prep)
        for i in span:
            kept[1].append(jobs[i])
            kept[2].append(out[i])  # type: ignore[arg-type]
            kept[3].append(redraws[i])
    return kept, failed


def _persist(ws: Workspace, batch: list[_Prepared], jobs: list[Job], out: list[Rendered], redraws: list[int],
             identity: dict[str, Any], signature: str) -> int:
    """Blobs first, then every sample of the batch in one transaction. Returns how many were new."""
    records: list[tuple[Sample, list[Candidate], Judgement | None]] = []
    for n, prep in enumerate(batch):
        sample = Sample(id=store.sample_id_for(prep.source.id), source_id=prep.source.id,
                        backend=identity["backend"], signature=signature)
        cands = []
        for i in range(4 * n, 4 * n + 4):
            job, r = jobs[i], out[i]
            prov = GenerationProvenance(**identity, prompt=r.prompt, seed=job.seed, layout=r.layout,
                                        redraws=redraws[i], injected=list(job.injected), mask=prep.mask_rule,
                                        regions=list(r.regions))
            cands.append(Candidate(sample_id=sample.id, slot=job.slot, sha256=ws.blobs.put_image(r.image),
                                   width=r.image.width, height=r.image.height, seed=job.seed, provenance=prov))
        judgement = (Judgement.from_defects({c.slot: c.provenance.injected for c in cands},
                                            {c.slot: c.provenance.regions for c in cands})
                     if identity["backend"] == "synthetic" else None)
        records.append((sample, cands, judgement))
    made = 0
    with ws.transaction() as db:
        for sample, cands, judgement in records:
            if store.get_sample(db, sample.id) is not None:  # another run got there first: keep its sample
                continue
            store.insert_sample(db, sample, cands)
            if judgement is not None:
                store.upsert_label(db, Label(sample_id=sample.id, origin="synthetic", judgement=judgement))
            made += 1
    return made


def generate(ws: Workspace, *, backend: str | None = None, preset: str | None = None, model: str | None = None,
             limit: int | None = None, batch_size: int | None = None, device: str = "auto",
             steps: int | None = None, size: int | None = None, seed: int | None = None, compile: bool = False,
             base_url: str | None = None, concurrency: int | None = None, max_cost: float | None = None,
             reporter: Reporter | None = None, engine: Backend | None = None) -> dict[str, Any]:
    """Generate the missing samples; returns counts (sources, samples, candidates, redraws, skipped, failed,
    and what the backend adds: an API backend's calls and cost).

    ``engine`` lets a caller that already holds a loaded backend (benchmarks, notebooks) reuse it.
    """
    reporter = reporter or LogReporter()
    # 1. settings
    chosen = settle_preset(ws, backend=backend, preset=preset, model=model, steps=steps, size=size)
    base_seed = ws.settings.generate.seed if seed is None else seed
    # 2. backend (fails early: a missing model folder is one error before any work)
    engine = engine or make_backend(chosen, LoadContext(workspace=ws, device=device, compile=compile,
                                                        base_url=base_url, concurrency=concurrency, max_cost=max_cost))
    identity = engine.identity()
    signature = hashlib.sha256(f"{chosen.signature(base_seed)}:{identity.get('revision')}".encode()).hexdigest()[:16]
    planner = Planner.of(chosen)
    kind = "synthetic" if chosen.backend == "synthetic" else getattr(engine, "device", "cpu").split(":")[0]
    per_batch = batch_size or DEFAULT_BATCH.get(kind, 1)
    pending = list(store.iter_sources(ws.db, without_sample=True))[:limit]
    params = dict(backend=chosen.backend, preset=chosen.name, model=identity["model_id"], revision=identity["revision"],
                  signature=signature, seed=base_seed, steps=chosen.steps, size=chosen.size, limit=limit,
                  batch_size=per_batch, device=device, compile=compile, max_cost=max_cost)
    # 3. batches; the counts live in the run record, so a killed run still says what it did
    with ws.run("generate", params) as run, reporter.task("generating", len(pending)) as task:
        for key in SUMMARY_KEYS:
            run.count(key, len(pending) if key == "sources" else 0)
        for start in range(0, len(pending), per_batch):
            batch: list[_Prepared] = []
            for source in pending[start:start + per_batch]:
                try:
                    product, rule = product_of(ws, source)
                except InputRejected as exc:
                    reporter.problem(str(exc))
                    run.count("skipped")
                    task.advance()
                    continue
                injected = _injections(chosen, base_seed, source.id)
                batch.append(_Prepared(source, rule, [
                    planner.job(source.id, s, candidate_seed(base_seed, source.id, s), product, injected[s])
                    for s in SLOTS]))
            if not batch:
                continue
            try:
                jobs, out, redraws = render_distinct(engine, planner, [j for p in batch for j in p.jobs])
            except BackendStopped as exc:
                reporter.info(f"{exc}; {exc.hint}" if exc.hint else str(exc))
                run.count("stopped")
                break
            kept, failed = _drop_failed(batch, jobs, out, redraws, reporter)
            made = _persist(ws, *kept, identity, signature) if kept[0] else 0
            run.count("redraws", sum(redraws))
            run.count("samples", made)
            run.count("candidates", 4 * made)
            run.count("failed", failed)
            run.count("skipped", len(batch) - failed - made)
            task.advance(len(batch))
        extra = getattr(engine, "summary", None)
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

"""Build workspace content directly (no generation stage), for tests of later stages.

Images are small but real (a coloured box on a plain background), so code that opens blobs works.
"""

from __future__ import annotations

import random

import imagehash
from PIL import Image, ImageDraw

from aesdata import store
from aesdata.schema import (
    DIMENSIONS,
    SLOTS,
    Candidate,
    GenerationProvenance,
    Judgement,
    Label,
    Layout,
    Sample,
    Source,
)
from aesdata.workspace import Workspace


def box_image(seed: int, size: int = 64) -> Image.Image:
    """A distinct little product shot per seed."""
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rng.randrange(180, 256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.randrange(0, size // 2), rng.randrange(0, size // 2)
        x1, y1 = rng.randrange(x0 + 4, size), rng.randrange(y0 + 4, size)
        draw.rectangle((x0, y0, x1, y1), fill=tuple(rng.randrange(0, 200) for _ in range(3)))
    return img


def random_judgement(rng: random.Random) -> Judgement:
    defects = {}
    for slot in SLOTS:
        if rng.random() < 0.5:
            defects[slot] = rng.sample(DIMENSIONS, rng.randint(1, 2))
    return Judgement.from_defects(defects)


def make_samples(ws: Workspace, n: int, *, labelled: bool = True, seed: int = 0) -> list[str]:
    """Insert ``n`` sources, each with a sample of four candidates and (optionally) a synthetic label."""
    rng = random.Random(seed)
    ids = []
    for i in range(n):
        src_img = box_image(seed * 100_003 + i)
        src_sha = ws.blobs.put_image(src_img)
        source = Source(id=src_sha, width=64, height=64, mode="RGB", phash=str(imagehash.phash(src_img)),
                        dhash=str(imagehash.dhash(src_img)), origin=f"factory/{seed}/{i}.png")
        sample = Sample(id=store.sample_id_for(src_sha), source_id=src_sha, backend="synthetic",
                        signature="factory")
        judgement = random_judgement(rng)
        candidates = []
        for k, slot in enumerate(SLOTS):
            cand_seed = i * 4 + k
            img = box_image(10_000_000 + seed * 100_003 + cand_seed)
            prov = GenerationProvenance(
                backend="synthetic", model_id="factory", pipeline_class="factory", prompt="a product",
                seed=cand_seed, size=64, layout=Layout(scale=0.5, offset_x=0.5, offset_y=0.5),
                injected=judgement.defects[slot],
            )
            candidates.append(Candidate(sample_id=sample.id, slot=slot, sha256=ws.blobs.put_image(img),
                                        width=64, height=64, seed=cand_seed, provenance=prov))
        with ws.transaction() as db:
            store.insert_source(db, source)
            store.insert_sample(db, sample, candidates)
            if labelled:
                store.upsert_label(db, Label(sample_id=sample.id, origin="synthetic", judgement=judgement))
        ids.append(sample.id)
    return ids

"""Small builders the publish tests share."""

from __future__ import annotations

from pathlib import Path

import datasets

from aesdata import store
from aesdata.schema import Judgement, Label, Rationale
from aesdata.workspace import Workspace


def add_rationale(
    ws: Workspace, sample_id: str, mode: str, *, model: str | None = None, answer: list[str] | None = None
) -> None:
    """A valid rationale reasoning to ``answer`` (default: the sample's label)."""
    label = store.get_label(ws.db, sample_id)
    assert label is not None
    rat = Rationale(
        sample_id=sample_id,
        mode=mode,
        status="valid",
        model=model,
        think=f"{mode} reasoning for {sample_id}",
        answer=label.judgement.answer if answer is None else answer,
        judgement_hash=store.judgement_hash(label.judgement),  # written from the label, as cot records it
    )
    with ws.transaction() as db:
        store.upsert_rationale(db, rat)


def relabel(ws: Workspace, sample_id: str, defects: dict[str, list[str]]) -> None:
    with ws.transaction() as db:
        store.upsert_label(
            db,
            Label(
                sample_id=sample_id,
                origin="human",
                judgement=Judgement.from_defects(defects),
                annotators=["ann-1f2e", "ann-9c0d"],
                agreement=1.0,
            ),
        )


def link(ws: Workspace, a: str, b: str) -> None:
    """Mark two sources as near-duplicates the way ingest does."""
    lo, hi = sorted((a, b))
    with ws.transaction() as db:
        db.execute("INSERT INTO source_links (a, b, distance) VALUES (?, ?, 3)", (lo, hi))


def load(folder: Path | str, config: str | None = None) -> datasets.DatasetDict:
    """``load_dataset`` on a published folder, caching next to it (never in the user's cache)."""
    folder = Path(folder)
    return datasets.load_dataset(str(folder), config, cache_dir=str(folder.parent / f".cache-{folder.name}"))


def splits_of(folder: Path | str) -> dict[str, str]:
    """sample id -> split, read back from the published folder."""
    ds = load(folder)
    return {sid: name for name in ds for sid in ds[name]["sample_id"]}

"""Which samples a version publishes, and what each row says.

A sample is published when it has a label that is not waiting for review. Its rationale is the
first *valid* one in ``settings.publish.rationale_priority`` order that was written from the label's
judgement as it is now (same answer, defects and regions, by :func:`aesdata.store.judgement_hash`): one
written before a relabel argues for defects the row no longer has, so it is left out (stale) and
counted, never published. A rationale with no recorded judgement hash (older workspaces) counts as stale.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aesdata import store
from aesdata.prompting import QUESTION
from aesdata.schema import DIMENSIONS, Candidate, Label, Provenance, PublishedRow, Rationale, Sample, Split

#: Samples are read in pages of this many ids, so the id list itself never sits in memory.
_PAGE = 2000


@dataclass(frozen=True)
class Selection:
    """One publishable sample with everything its row is built from."""

    sample: Sample
    label: Label
    candidates: list[Candidate]
    rationale: Rationale | None
    difficulty: float | None = None

    @property
    def label_hash(self) -> str:
        return store.judgement_hash(self.label.judgement)

    @property
    def stratum(self) -> str:
        """The dimensions present among the four candidates: what the split stratifies on."""
        present = {d for dims in self.label.judgement.defects.values() for d in dims}
        return "+".join(d for d in DIMENSIONS if d in present) or "none"

    def row(self, split: Split) -> PublishedRow:
        """The validated published row (images are added by the writer)."""
        rat, first = self.rationale, self.candidates[0].provenance
        return PublishedRow(
            sample_id=self.sample.id,
            split=split,
            question=QUESTION,
            answer=self.label.judgement.answer_text,
            defects=self.label.judgement.defects,
            regions=self.label.judgement.regions,
            rationale=rat.text if rat else None,
            rationale_mode=rat.mode if rat else None,
            difficulty=self.difficulty,
            provenance=Provenance(
                generator=f"{first.backend}:{first.model_id}",
                seeds=[c.seed for c in self.candidates],
                annotators=self.label.annotators,
                agreement=self.label.agreement,
                label_origin=self.label.origin,
                rationale_model=rat.model if rat else None,
            ),
        )

    def digest(self, row: PublishedRow) -> str:
        """Hash of everything ``row`` (built by :meth:`row`) publishes but its split; images by content hash."""
        h = hashlib.sha256(row.model_dump_json(exclude={"split"}).encode())
        h.update(self.sample.source_id.encode())
        for cand in self.candidates:
            h.update(cand.sha256.encode())
        return h.hexdigest()


@dataclass
class SelectCounts:
    """Why samples, or their rationales, were left out of a version (the card's "Left out" section)."""

    needs_review: int = 0
    no_rationale: int = 0  # left out: no usable rationale, with require_rationale
    stale_rationale: int = 0  # samples whose valid rationale(s) were written from another judgement
    bad: int = 0


def usable(rat: Rationale | None, label: Label) -> bool:
    """Valid and written from the label's judgement as it is now."""
    return (
        rat is not None
        and rat.status == "valid"
        and rat.judgement_hash == store.judgement_hash(label.judgement)
        and list(rat.answer or ()) == label.judgement.answer
    )


def choose_rationale(rationales: dict[str, Rationale], label: Label, priority: Sequence[str]) -> Rationale | None:
    """First rationale in ``priority`` order that is :func:`usable` for the label."""
    return next((rationales[m] for m in priority if usable(rationales.get(m), label)), None)


def _sample_ids(db: sqlite3.Connection) -> Iterator[str]:
    last = -1
    while True:
        page = db.execute(
            "SELECT rowid, id FROM samples WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, _PAGE)
        ).fetchall()
        if not page:
            return
        last = page[-1][0]
        yield from (row[1] for row in page)


def iter_selected(
    db: sqlite3.Connection,
    *,
    priority: Sequence[str],
    require_rationale: bool,
    counts: SelectCounts | None = None,
    difficulty: Mapping[str, float] | None = None,
) -> Iterator[Selection]:
    """Publishable samples in sample order, streamed (memory does not grow with the workspace)."""
    counts = counts if counts is not None else SelectCounts()
    for sample_id in _sample_ids(db):
        label = store.get_label(db, sample_id)
        if label is None:
            continue
        if label.needs_review:
            counts.needs_review += 1
            continue
        rationales = store.get_rationales(db, sample_id)
        rationale = choose_rationale(rationales, label, priority)
        if any(r.status == "valid" and not usable(r, label) for m, r in rationales.items() if m in priority):
            counts.stale_rationale += 1
        if rationale is None and require_rationale:
            counts.no_rationale += 1
            continue
        sample = store.get_sample(db, sample_id)
        assert sample is not None  # the id came from the samples table in this same read transaction
        yield Selection(
            sample=sample,
            label=label,
            candidates=store.get_candidates(db, sample_id),
            rationale=rationale,
            difficulty=(difficulty or {}).get(sample_id),
        )

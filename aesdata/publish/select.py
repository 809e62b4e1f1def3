"""Which samples a version publishes, and what each row says.

A sample is published when it has a label that is not waiting for review. Its rationale is the
first *valid* one in ``settings.publish.rationale_priority`` order whose answer matches the label
(a rationale written before a relabel argues for the old answer, so it is left out, not published).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from aesdata import store
from aesdata.schema import DIMENSIONS, Candidate, Label, Provenance, PublishedRow, Rationale, Sample, Split

#: The question every row asks; models see the source first, then candidates A-D in slot order.
QUESTION = (
    "The first image is a product photo. Images A, B, C and D were generated from it by placing the "
    "product in a new scene. A candidate is acceptable only if it has no defect in appearance (the product "
    "deformed or altered), physical shadow (lighting or shadows inconsistent), placement layout (wrong "
    "scale, position or perspective) or extension rationality (an implausible or broken generated scene). "
    "Which candidates are acceptable? Answer with the acceptable letters separated by commas, or 'none'."
)

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
        return hashlib.sha256(self.label.judgement.model_dump_json().encode()).hexdigest()[:16]

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
    """Why samples were left out of a version."""

    needs_review: int = 0
    no_rationale: int = 0
    stale_rationale: int = 0
    bad: int = 0


def choose_rationale(rationales: dict[str, Rationale], label: Label, priority: Sequence[str]) -> Rationale | None:
    """First valid rationale in ``priority`` order that reasons to the label's answer."""
    for mode in priority:
        rat = rationales.get(mode)
        if rat is not None and rat.status == "valid" and list(rat.answer or ()) == label.judgement.answer:
            return rat
    return None


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
        if rationale is None and any(r.status == "valid" for r in rationales.values()):
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

"""Typed reads and writes of the manifest's core records (rows <-> :mod:`aesdata.schema` models).

Stages use these instead of hand-written SQL for the shared records, so the JSON encoding of a
record lives in one place. Writers expect to run inside ``ws.transaction()`` where a unit of work
spans several rows; each one is idempotent (re-running a stage never duplicates rows).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aesdata.db import to_signed64, to_unsigned64
from aesdata.schema import (
    SLOTS,
    Annotation,
    Candidate,
    DatasetVersion,
    Judgement,
    Label,
    NearDuplicate,
    Rationale,
    Rejection,
    Sample,
    Source,
)


def sample_id_for(source_id: str) -> str:
    """A sample's id is derived from its source, so re-generation can never make a second one."""
    return hashlib.sha256(f"sample:{source_id}".encode()).hexdigest()[:16]


def _hex64(value: int) -> str:
    return f"{to_unsigned64(value):016x}"


# --------------------------------------------------------------------------- sources


def insert_source(db: sqlite3.Connection, src: Source) -> None:
    db.execute(
        "INSERT OR IGNORE INTO sources (id, width, height, mode, phash, dhash, origin, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (src.id, src.width, src.height, src.mode, to_signed64(int(src.phash, 16)),
         to_signed64(int(src.dhash, 16)), src.origin, src.created_at.isoformat()),
    )


def _source(row: sqlite3.Row) -> Source:
    return Source(id=row["id"], width=row["width"], height=row["height"], mode=row["mode"],
                  phash=_hex64(row["phash"]), dhash=_hex64(row["dhash"]), origin=row["origin"],
                  created_at=datetime.fromisoformat(row["created_at"]))


def get_source(db: sqlite3.Connection, source_id: str) -> Source | None:
    row = db.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()
    return _source(row) if row else None


def iter_sources(db: sqlite3.Connection, *, without_sample: bool = False) -> Iterator[Source]:
    """Sources in insertion order; ``without_sample`` keeps those generation has not reached yet."""
    sql = "SELECT * FROM sources"
    if without_sample:
        sql += " WHERE id NOT IN (SELECT source_id FROM samples)"
    for row in db.execute(sql + " ORDER BY rowid").fetchall():
        yield _source(row)


def insert_near_duplicate(db: sqlite3.Connection, nd: NearDuplicate) -> None:
    db.execute(
        "INSERT OR IGNORE INTO near_duplicates (sha256, duplicate_of, distance, origin, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (nd.sha256, nd.duplicate_of, nd.distance, nd.origin, nd.created_at.isoformat()),
    )


def upsert_rejection(db: sqlite3.Connection, rej: Rejection) -> None:
    db.execute(
        "INSERT INTO rejections (origin, reason, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT(origin) DO UPDATE SET reason = excluded.reason",
        (rej.origin, rej.reason, rej.created_at.isoformat()),
    )


# --------------------------------------------------------------------------- samples


def insert_sample(db: sqlite3.Connection, sample: Sample, candidates: list[Candidate]) -> None:
    """Insert a sample with exactly its four candidates (call inside one transaction)."""
    slots = sorted(c.slot for c in candidates)
    if slots != list(SLOTS):
        raise ValueError(f"sample {sample.id}: needs one candidate per slot A-D, got {slots}")
    db.execute(
        "INSERT INTO samples (id, source_id, backend, signature, created_at) VALUES (?, ?, ?, ?, ?)",
        (sample.id, sample.source_id, sample.backend, sample.signature, sample.created_at.isoformat()),
    )
    db.executemany(
        "INSERT INTO candidates (sample_id, slot, sha256, width, height, seed, provenance)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(c.sample_id, c.slot, c.sha256, c.width, c.height, c.seed, c.provenance.model_dump_json())
         for c in candidates],
    )


def _sample(row: sqlite3.Row) -> Sample:
    return Sample(id=row["id"], source_id=row["source_id"], backend=row["backend"],
                  signature=row["signature"], created_at=datetime.fromisoformat(row["created_at"]))


def get_sample(db: sqlite3.Connection, sample_id: str) -> Sample | None:
    row = db.execute("SELECT * FROM samples WHERE id = ?", (sample_id,)).fetchone()
    return _sample(row) if row else None


def iter_samples(db: sqlite3.Connection) -> Iterator[Sample]:
    for row in db.execute("SELECT * FROM samples ORDER BY rowid").fetchall():
        yield _sample(row)


def get_candidates(db: sqlite3.Connection, sample_id: str) -> list[Candidate]:
    """The four candidates of a sample, in slot order."""
    rows = db.execute("SELECT * FROM candidates WHERE sample_id = ? ORDER BY slot", (sample_id,)).fetchall()
    return [
        Candidate(sample_id=r["sample_id"], slot=r["slot"], sha256=r["sha256"], width=r["width"],
                  height=r["height"], seed=r["seed"], provenance=json.loads(r["provenance"]))
        for r in rows
    ]


def candidate_shas(db: sqlite3.Connection, sample_id: str) -> list[str]:
    """The blobs of a sample's candidates, in slot order: what a model is shown, without building the
    records (the LLM stages ask this once per sample and request, where it is a good part of the CPU)."""
    rows = db.execute("SELECT sha256 FROM candidates WHERE sample_id = ? ORDER BY slot", (sample_id,)).fetchall()
    return [r[0] for r in rows]


# --------------------------------------------------------------------------- annotations and labels


def upsert_annotation(db: sqlite3.Connection, ann: Annotation) -> None:
    db.execute(
        "INSERT INTO annotations (sample_id, annotator, judgement, rationale, task_id, annotation_id, lead_time_s,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sample_id, annotator) DO UPDATE SET"
        " judgement = excluded.judgement, rationale = excluded.rationale, task_id = excluded.task_id,"
        " annotation_id = excluded.annotation_id, lead_time_s = excluded.lead_time_s,"
        " updated_at = excluded.updated_at",
        (ann.sample_id, ann.annotator, ann.judgement.model_dump_json(), ann.rationale, ann.task_id,
         ann.annotation_id, ann.lead_time_s, ann.updated_at.isoformat()),
    )


def get_annotations(db: sqlite3.Connection, sample_id: str) -> list[Annotation]:
    rows = db.execute("SELECT * FROM annotations WHERE sample_id = ? ORDER BY annotator", (sample_id,))
    return [
        Annotation(sample_id=r["sample_id"], annotator=r["annotator"],
                   judgement=Judgement.model_validate_json(r["judgement"]), rationale=r["rationale"],
                   task_id=r["task_id"], annotation_id=r["annotation_id"], lead_time_s=r["lead_time_s"],
                   updated_at=datetime.fromisoformat(r["updated_at"]))
        for r in rows.fetchall()
    ]


def upsert_label(db: sqlite3.Connection, label: Label) -> None:
    db.execute(
        "INSERT INTO labels (sample_id, origin, judgement, annotators, agreement, needs_review, overlap, left_out,"
        " reviewed_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sample_id, origin) DO UPDATE SET"
        " judgement = excluded.judgement, annotators = excluded.annotators, agreement = excluded.agreement,"
        " needs_review = excluded.needs_review, overlap = excluded.overlap, left_out = excluded.left_out,"
        " reviewed_by = excluded.reviewed_by, updated_at = excluded.updated_at",
        (label.sample_id, label.origin, label.judgement.model_dump_json(), json.dumps(label.annotators),
         label.agreement, int(label.needs_review), label.overlap, json.dumps(label.left_out), label.reviewed_by,
         label.updated_at.isoformat()),
    )


def put_annotation_quality(db: sqlite3.Connection, summary: dict[str, Any]) -> None:
    """The annotation team's figures as of the last pull (written by annotate, shown by publish)."""
    db.execute(
        "INSERT INTO annotation_quality (id, summary, computed_at) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET"
        " summary = excluded.summary, computed_at = excluded.computed_at",
        (json.dumps(summary, sort_keys=True), datetime.now(UTC).isoformat()),
    )


def get_annotation_quality(db: sqlite3.Connection) -> dict[str, Any] | None:
    row = db.execute("SELECT summary FROM annotation_quality WHERE id = 1").fetchone()
    return json.loads(row[0]) if row else None


def judgement_hash(judgement: Judgement) -> str:
    """16 hex digits over the judgement's canonical JSON: answer, per-candidate defects, and regions if any.

    A rationale records the hash of the judgement it was written from; a label whose hash differs has
    changed since, and the rationale is stale (answer-driven prompts and template rationales say where a
    defect is, so moved regions count too). The validators put every field in canonical order, and a
    judgement without regions serialises as before regions existed, so older hashes stay comparable.
    Published ``version_rows.label_hash`` is the same hash.
    """
    return hashlib.sha256(judgement.model_dump_json().encode()).hexdigest()[:16]


def _label(row: sqlite3.Row) -> Label:
    return Label(sample_id=row["sample_id"], origin=row["origin"],
                 judgement=Judgement.model_validate_json(row["judgement"]),
                 annotators=json.loads(row["annotators"]), agreement=row["agreement"],
                 needs_review=bool(row["needs_review"]), overlap=row["overlap"], left_out=json.loads(row["left_out"]),
                 reviewed_by=row["reviewed_by"], updated_at=datetime.fromisoformat(row["updated_at"]))


def get_label(db: sqlite3.Connection, sample_id: str) -> Label | None:
    """The effective label: human where one exists, else synthetic."""
    row = db.execute(
        "SELECT * FROM labels WHERE sample_id = ? ORDER BY origin = 'human' DESC LIMIT 1", (sample_id,)
    ).fetchone()
    return _label(row) if row else None


@dataclass(frozen=True)
class LabelledRow:
    """A labelled sample as a stage selects its work: the effective label unparsed (a stage selecting
    thousands parses only those it takes up, when it does) and the state of its rationale in one mode
    (status, prompt hash, judgement hash, created at; None: none stored)."""

    sample: Sample
    judgement_json: str
    needs_review: bool
    rationale: tuple[Any, ...] | None
    candidates: tuple[str, ...]  # the sha256 of each stored candidate, in slot order


_SLOT_SHA = ", ".join(
    f"(SELECT sha256 FROM candidates c WHERE c.sample_id = s.id AND c.slot = '{slot}')" for slot in SLOTS
)


def iter_labelled_rows(db: sqlite3.Connection, mode: str) -> Iterator[LabelledRow]:
    """Every labelled sample in sample order with its effective label (human over synthetic), its
    rationale's state in ``mode`` and its candidates' blobs, streamed from one query: a caller that stops
    after the first N reads no more (reading every label, candidate and rationale first cost a
    1,024-sample cot run 55 ms before its first request, and seconds at 100k samples; the candidates in
    a query of their own after it, another 15 ms)."""
    rows = db.execute(
        "SELECT s.id, s.source_id, s.backend, s.signature, s.created_at, l.judgement, l.needs_review,"
        f" r.status, r.prompt_hash, r.judgement_hash, r.created_at AS rationale_created_at, {_SLOT_SHA}"
        " FROM samples s JOIN labels l ON l.sample_id = s.id AND l.origin ="
        " (SELECT origin FROM labels x WHERE x.sample_id = s.id ORDER BY origin = 'human' DESC LIMIT 1)"
        " LEFT JOIN rationales r ON r.sample_id = s.id AND r.mode = ? ORDER BY s.rowid",
        (mode,),
    )
    for row in rows:
        values = tuple(row)
        state = values[7:11]  # the rationale's columns, NULL without one
        yield LabelledRow(_sample(row), row["judgement"], bool(row["needs_review"]), state if state[0] else None,
                          tuple(sha for sha in values[11:] if sha is not None))


def iter_labelled(db: sqlite3.Connection) -> Iterator[tuple[Sample, Label]]:
    """Every sample that has a label, with its effective label, in sample order."""
    for sample in iter_samples(db):
        label = get_label(db, sample.id)
        if label is not None:
            yield sample, label


# --------------------------------------------------------------------------- mined difficulty


#: A sample is hard for a model that answers it exactly right in fewer than half of its rollouts.
HARD_BELOW = 0.5


@dataclass(frozen=True)
class Difficulty:
    """One sample's mined figures for one model."""

    sample_id: str
    model: str
    rollouts: int
    pass_rate: float
    proportional: float

    @property
    def difficulty(self) -> float:
        return 1.0 - self.pass_rate

    @property
    def hard(self) -> bool:
        return self.pass_rate < HARD_BELOW


def mined_models(db: sqlite3.Connection) -> list[str]:
    """Models with mined rows, the most recently mined first."""
    rows = db.execute("SELECT model FROM difficulty GROUP BY model ORDER BY MAX(updated_at) DESC").fetchall()
    return [r["model"] for r in rows]


def difficulties(db: sqlite3.Connection, model: str | None = None) -> dict[str, Difficulty]:
    """Sample id -> current difficulty for ``model`` (default: the model mined most recently).

    Rows mined against an answer the sample no longer has (relabelled since) are left out: their
    pass rate measured a different question.
    """
    if model is None:
        models = mined_models(db)
        if not models:
            return {}
        model = models[0]
    out = {}
    rows = db.execute("SELECT * FROM difficulty WHERE model = ?", (model,)).fetchall()
    for r in rows:
        label = get_label(db, r["sample_id"])
        if label is None or label.judgement.answer_text != r["answer"]:
            continue
        out[r["sample_id"]] = Difficulty(
            sample_id=r["sample_id"],
            model=model,
            rollouts=r["rollouts"],
            pass_rate=r["pass_rate"],
            proportional=r["proportional"],
        )
    return out


# --------------------------------------------------------------------------- rationales and versions


def upsert_rationale(db: sqlite3.Connection, rat: Rationale) -> None:
    """One rationale per sample and mode: a newer one (``--redo``) replaces the old row."""
    db.execute(
        "INSERT INTO rationales (sample_id, mode, status, model, prompt_hash, judgement_hash, record, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sample_id, mode) DO UPDATE SET status = excluded.status,"
        " model = excluded.model, prompt_hash = excluded.prompt_hash, judgement_hash = excluded.judgement_hash,"
        " record = excluded.record, created_at = excluded.created_at",
        (rat.sample_id, rat.mode, rat.status, rat.model, rat.prompt_hash, rat.judgement_hash,
         rat.model_dump_json(), rat.created_at.isoformat()),
    )


def get_rationales(db: sqlite3.Connection, sample_id: str) -> dict[str, Rationale]:
    """Mode -> rationale for one sample."""
    rows = db.execute("SELECT mode, record FROM rationales WHERE sample_id = ?", (sample_id,)).fetchall()
    return {r["mode"]: Rationale.model_validate_json(r["record"]) for r in rows}


def insert_version(db: sqlite3.Connection, version: DatasetVersion) -> None:
    db.execute(
        "INSERT INTO versions (version, content_hash, record, created_at) VALUES (?, ?, ?, ?)",
        (version.version, version.content_hash, version.model_dump_json(), version.created_at.isoformat()),
    )


def get_versions(db: sqlite3.Connection) -> list[DatasetVersion]:
    rows = db.execute("SELECT record FROM versions ORDER BY created_at").fetchall()
    return [DatasetVersion.model_validate_json(r["record"]) for r in rows]

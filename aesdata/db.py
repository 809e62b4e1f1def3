"""The workspace manifest: SQLite in WAL mode with append-only, named migrations.

State is derived from rows (a sample without a label is unlabelled), never kept in flags.
A migration, once released, is never edited: a change is a new migration appended to
``MIGRATIONS``. Applied names are recorded in ``_migrations`` so opening an old workspace
brings it up to date.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: (name, SQL script), applied in order, each in its own transaction.
MIGRATIONS: list[tuple[str, str]] = []


def migration(name: str, sql: str) -> None:
    """Register a migration; names must be unique and are never reused."""
    if any(name == existing for existing, _ in MIGRATIONS):
        raise ValueError(f"migration {name} registered twice")
    MIGRATIONS.append((name, sql))


migration(
    "m001_initial",
    """
        CREATE TABLE sources (
            id TEXT PRIMARY KEY,              -- sha256 of the stored PNG blob
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            mode TEXT NOT NULL,
            phash INTEGER NOT NULL,           -- 64-bit, stored signed
            dhash INTEGER NOT NULL,
            origin TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE near_duplicates (
            sha256 TEXT PRIMARY KEY,
            duplicate_of TEXT NOT NULL REFERENCES sources(id),
            distance INTEGER NOT NULL,
            origin TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX near_duplicates_of ON near_duplicates(duplicate_of);
        CREATE TABLE rejections (
            origin TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        -- every input seen, so a re-run skips unchanged files without decoding them
        CREATE TABLE ingest_log (
            origin TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,        -- size:mtime_ns for files
            outcome TEXT NOT NULL,            -- added | exact | near | rejected
            sha256 TEXT
        );
        CREATE TABLE samples (
            id TEXT PRIMARY KEY,
            source_id TEXT NOT NULL UNIQUE REFERENCES sources(id),
            backend TEXT NOT NULL,
            signature TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TABLE candidates (
            sample_id TEXT NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
            slot TEXT NOT NULL CHECK (slot IN ('A','B','C','D')),
            sha256 TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            provenance TEXT NOT NULL,         -- GenerationProvenance JSON
            PRIMARY KEY (sample_id, slot)
        );
        CREATE TABLE annotations (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            annotator TEXT NOT NULL,          -- pseudonym
            judgement TEXT NOT NULL,          -- Judgement JSON
            rationale TEXT,
            task_id INTEGER,
            annotation_id INTEGER,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (sample_id, annotator)
        );
        CREATE TABLE labels (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            origin TEXT NOT NULL CHECK (origin IN ('synthetic','human')),
            judgement TEXT NOT NULL,
            annotators TEXT NOT NULL DEFAULT '[]',
            agreement REAL,
            needs_review INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (sample_id, origin)
        );
        CREATE TABLE rationales (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            mode TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('valid','failed')),
            model TEXT,
            prompt_hash TEXT,
            record TEXT NOT NULL,             -- Rationale JSON
            created_at TEXT NOT NULL,
            PRIMARY KEY (sample_id, mode)
        );
        CREATE TABLE versions (
            version TEXT PRIMARY KEY,
            content_hash TEXT NOT NULL,
            record TEXT NOT NULL,             -- DatasetVersion JSON
            created_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            stage TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '{}',
            started_at TEXT NOT NULL,
            finished_at TEXT
        );
    """,
)


migration(
    "m002_source_links",
    """
        -- sources close enough (within ingest.group_threshold) to be kept in one split at publish
        CREATE TABLE source_links (
            a TEXT NOT NULL REFERENCES sources(id),
            b TEXT NOT NULL REFERENCES sources(id),
            distance INTEGER NOT NULL,
            PRIMARY KEY (a, b),
            CHECK (a < b)
        );
    """,
)

# Later stages append their migrations below, in their reserved number ranges.

migration(
    "m400_publish_version_rows",
    """
        -- what each published version held: the changelog and the stable train/test split come from here
        CREATE TABLE version_rows (
            version TEXT NOT NULL REFERENCES versions(version),
            sample_id TEXT NOT NULL,
            split TEXT NOT NULL CHECK (split IN ('train','test')),
            label_hash TEXT NOT NULL,         -- hash of the judgement: differs when a sample is relabelled
            rationale_mode TEXT,
            row_hash TEXT NOT NULL,           -- hash of the whole published row
            PRIMARY KEY (version, sample_id)
        );
        CREATE INDEX version_rows_sample ON version_rows(sample_id);
    """,
)


def apply_migrations(db: sqlite3.Connection) -> list[str]:
    """Apply every registered migration not yet recorded; return the names applied now."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # executescript commits whatever is open first, so the script carries its own transaction.
        try:
            db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n;INSERT INTO _migrations VALUES ('{name}', datetime('now'));\nCOMMIT;"
            )
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def connect(path: Path) -> sqlite3.Connection:
    """Open the manifest with the settings every stage relies on.

    Autocommit mode (``isolation_level=None``): transactions are explicit, through
    :func:`transaction`, so a stage decides exactly what commits together.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=30000")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any exception, Ctrl-C included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def to_signed64(value: int) -> int:
    """SQLite integers are signed: store an unsigned 64-bit hash as its two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


migration(
    "m200_annotate_label_studio",
    """
        -- one row per Label Studio project this workspace pushes to (a server URL and a title)
        CREATE TABLE ls_projects (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            title TEXT NOT NULL,
            project_id INTEGER NOT NULL,      -- Label Studio's id on that server
            config_hash TEXT NOT NULL,        -- sha256 of the label config last sent
            created_at TEXT NOT NULL,
            UNIQUE (url, title)
        );
        -- one row per sample pushed as a task; seen_updated_at is the task's updated_at as of the
        -- last pull that read it, so the next pull exports only tasks changed since
        CREATE TABLE ls_tasks (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            project INTEGER NOT NULL REFERENCES ls_projects(id),
            task_id INTEGER NOT NULL,
            seen_updated_at TEXT,
            pushed_at TEXT NOT NULL,
            UNIQUE (sample_id, project),
            UNIQUE (project, task_id)
        );
    """,
)


migration(
    "m500_eval_difficulty",
    """
        -- mine-hard: K rollouts of one model on one labelled sample; publish reads difficulty from here
        CREATE TABLE difficulty (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            model TEXT NOT NULL,
            answer TEXT NOT NULL,             -- the label's answer the rollouts were scored against
            prompt_hash TEXT NOT NULL,        -- screening prompt asked (aesdata.evaluate.prompt)
            temperature REAL NOT NULL,
            rollouts INTEGER NOT NULL,        -- K
            passes INTEGER NOT NULL,          -- rollouts whose answer was exactly right
            pass_rate REAL NOT NULL,          -- passes / rollouts; difficulty = 1 - pass_rate
            proportional REAL NOT NULL,       -- mean proportional score over the rollouts
            unparseable INTEGER NOT NULL,
            predictions TEXT NOT NULL,        -- JSON list: canonical answer or null per rollout
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (sample_id, model)
        );
    """,
)


migration(
    "m300_cot_calls",
    """
        -- cot: the cost ledger, one row per answered model request (written as each one returns, so
        -- it counts what was spent even for samples a killed run did not finish)
        CREATE TABLE cot_calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER REFERENCES runs(id),
            sample_id TEXT NOT NULL REFERENCES samples(id),
            mode TEXT NOT NULL,
            model TEXT NOT NULL,
            attempt INTEGER NOT NULL,         -- automated mode: which of the K tries
            kind TEXT NOT NULL CHECK (kind IN ('first','repair')),
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            agreed INTEGER,                   -- reply's answer equals the label (1/0); NULL when unread
            created_at TEXT NOT NULL
        );
        CREATE INDEX cot_calls_sample ON cot_calls(sample_id, mode);
    """,
)


migration(
    "m201_annotate_pending_projects",
    """
        -- a project about to be created: its nonce goes into the project's description first, so a
        -- push that crashed between creating the project and recording it adopts it instead of
        -- creating a second one
        CREATE TABLE ls_pending_projects (
            url TEXT NOT NULL,
            title TEXT NOT NULL,
            nonce TEXT NOT NULL,
            PRIMARY KEY (url, title)
        );
    """,
)


migration(
    "m800_image_calls",
    """
        -- generate --backend openai-images: the ledger of paid images, one row per answered request,
        -- written (after the image's blob) as each one returns. request_key hashes everything sent, so a
        -- re-run after a kill or a --max-cost stop takes the image from here instead of paying again.
        CREATE TABLE image_calls (
            request_key TEXT PRIMARY KEY,
            source_id TEXT NOT NULL REFERENCES sources(id),
            slot TEXT NOT NULL CHECK (slot IN ('A','B','C','D')),
            seed INTEGER NOT NULL,
            model TEXT NOT NULL,
            sha256 TEXT NOT NULL,             -- the image as received (resized to the canvas), a blob
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX image_calls_source ON image_calls(source_id, slot);
    """,
)

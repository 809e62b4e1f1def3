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
    db.create_function("aesdata_judgement_hash", 1, _judgement_hash_sql, deterministic=True)
    return db


def _judgement_hash_sql(text: str | None) -> str | None:
    """SQL ``aesdata_judgement_hash(labels.judgement)``: the stored judgement's hash, for migrations."""
    if text is None:
        return None
    from aesdata.schema import Judgement  # store and schema sit above db
    from aesdata.store import judgement_hash

    return judgement_hash(Judgement.model_validate_json(text))


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
    "m310_rationale_judgement_hash",
    """
        -- the hash of the judgement (answer and defects) each rationale was written from; a label with
        -- another hash makes it stale. NULL for rationales written before it was recorded: stale.
        ALTER TABLE rationales ADD COLUMN judgement_hash TEXT;
    """,
)


migration(
    "m310_work_claims",
    """
        -- a process working on the workspace: claims and locks die with it (its pid is gone on this host
        -- and boot, or it stopped renewing its lease). Owners of one stage alive at the same time share
        -- a session (the cot budget is per session).
        CREATE TABLE work_owners (
            id TEXT PRIMARY KEY,
            stage TEXT NOT NULL,
            session TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            boot_id TEXT NOT NULL,
            started_at TEXT NOT NULL,
            expires_at REAL NOT NULL          -- unix time; the heartbeat pushes it forward
        );
        -- one item (a sample in a cot mode, a workspace-wide lock) worked on by one owner at a time
        CREATE TABLE work_claims (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            owner TEXT NOT NULL REFERENCES work_owners(id) ON DELETE CASCADE,
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX work_claims_owner ON work_claims(owner);
    """,
)


migration(
    "m310_cot_budget",
    """
        -- --max-cost per workspace: each answered request counts toward its session; a request in
        -- flight holds an estimate of its cost until its reply settles it
        ALTER TABLE cot_calls ADD COLUMN session TEXT;
        CREATE INDEX cot_calls_session ON cot_calls(session);
        CREATE TABLE cot_holds (
            owner TEXT NOT NULL REFERENCES work_owners(id) ON DELETE CASCADE,
            sample_id TEXT NOT NULL,
            session TEXT NOT NULL,
            amount REAL NOT NULL,
            PRIMARY KEY (owner, sample_id)
        );
    """,
)


migration(
    "m310_backfill_judgement_hash",
    """
        -- Rationales from before m310 get their sample's label hash only where it is provable that they
        -- were written from that label: no label row of the sample changed since five minutes before
        -- the earliest cot run of their mode that was running when they were created (its selection
        -- read the labels after it started). The others stay NULL: stale, rewritten by the next cot.
        UPDATE rationales SET judgement_hash = (
            SELECT aesdata_judgement_hash(l.judgement) FROM labels l
            WHERE l.sample_id = rationales.sample_id ORDER BY l.origin = 'human' DESC LIMIT 1
        )
        WHERE judgement_hash IS NULL
          AND (
            SELECT MIN(julianday(r.started_at)) FROM runs r
            WHERE r.stage = 'cot' AND json_extract(r.params, '$.mode') = rationales.mode
              AND julianday(r.started_at) <= julianday(rationales.created_at)
              AND (r.finished_at IS NULL OR julianday(r.finished_at) >= julianday(rationales.created_at))
          ) - 5.0 / 1440 > (
            SELECT MAX(julianday(l.updated_at)) FROM labels l WHERE l.sample_id = rationales.sample_id
          );
        UPDATE rationales SET record = json_set(record, '$.judgement_hash', judgement_hash)
        WHERE judgement_hash IS NOT NULL AND json_extract(record, '$.judgement_hash') IS NULL;
    """,
)


migration(
    "m600_runs_owner",
    """
        -- the process that started a run (aesdata.runowner): a run left 'running' by a process that is
        -- gone is marked 'interrupted' when the workspace is next opened
        ALTER TABLE runs ADD COLUMN pid INTEGER;
        ALTER TABLE runs ADD COLUMN host TEXT;        -- sha256 of the host name, first 16 hex digits
        ALTER TABLE runs ADD COLUMN boot_id TEXT;
        ALTER TABLE runs ADD COLUMN proc_start TEXT;  -- process start, clock ticks since boot
        CREATE INDEX runs_status ON runs(status);
    """,
)


migration(
    "m210_annotate_team",
    """
        -- how many distinct annotators Label Studio's label stream hands each task of a project
        -- (its maximum_annotations), and the title the project is a shard of (NULL: itself)
        ALTER TABLE ls_projects ADD COLUMN overlap INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE ls_projects ADD COLUMN base_title TEXT;
        -- seconds the annotator spent on the task (Label Studio's lead_time)
        ALTER TABLE annotations ADD COLUMN lead_time_s REAL;
        -- label provenance: overlap asked for, annotators left out of the consensus, the reviewer
        -- whose judgement settled it
        ALTER TABLE labels ADD COLUMN overlap INTEGER;
        ALTER TABLE labels ADD COLUMN left_out TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE labels ADD COLUMN reviewed_by TEXT;
        -- gold tasks: samples pushed with a known answer (kept here only, never sent as a prediction)
        CREATE TABLE ls_gold (
            sample_id TEXT PRIMARY KEY REFERENCES samples(id),
            judgement TEXT NOT NULL,          -- the known answer, Judgement JSON
            origin TEXT NOT NULL,             -- synthetic (injected defects) or reviewed (a reviewer's label)
            created_at TEXT NOT NULL
        );
        -- annotators (pseudonyms) whose judgement settles a sample in review
        CREATE TABLE ls_reviewers (
            annotator TEXT PRIMARY KEY,
            added_at TEXT NOT NULL
        );
        -- samples sent back to people: the task's overlap was raised to want_annotators
        CREATE TABLE ls_review_requests (
            sample_id TEXT NOT NULL REFERENCES samples(id),
            project INTEGER NOT NULL REFERENCES ls_projects(id),
            want_annotators INTEGER NOT NULL,
            requested_at TEXT NOT NULL,
            PRIMARY KEY (sample_id, project)
        );
    """,
)


migration(
    "m010_near_duplicate_phash",
    """
        -- a near-duplicate's own pHash, so `aesdata dupes --rebuild` can decide again without decoding
        -- (rows from before this migration get it from their blob on the first rebuild)
        ALTER TABLE near_duplicates ADD COLUMN phash INTEGER;
    """,
)


migration(
    "m210_annotate_quality_summary",
    """
        -- the team's figures as of the last pull (pseudonyms only): what the dataset card shows
        CREATE TABLE annotation_quality (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            summary TEXT NOT NULL,            -- JSON: annotators (gold accuracy, agreement), alpha
            computed_at TEXT NOT NULL
        );
    """,
)


migration(
    "m350_llm_batches",
    """
        -- --batch: one row per batch submitted to the endpoint's Batch API (aesdata.llm.batch)
        CREATE TABLE llm_batches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            scope TEXT NOT NULL,              -- stage, model and endpoint the requests belong to
            nonce TEXT NOT NULL UNIQUE,       -- in the batch's metadata: a submit killed before it recorded
                                              -- the endpoint's id finds the batch again instead of paying twice
            batch_id TEXT,                    -- the endpoint's id; NULL while being submitted
            input_file_id TEXT,
            status TEXT NOT NULL,             -- 'submitting', then the endpoint's status
            requests INTEGER NOT NULL,
            estimated_cost REAL NOT NULL,     -- what --max-cost counted for it before it was submitted
            completed INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            output_file_id TEXT,
            error_file_id TEXT,
            created_at TEXT NOT NULL,
            collected_at TEXT                 -- its files read and every request settled
        );
        CREATE INDEX llm_batches_open ON llm_batches(scope, collected_at);
        -- one row per request of an item still in progress (removed once the item is finished)
        CREATE TABLE llm_batch_requests (
            custom_id TEXT PRIMARY KEY,       -- from scope, item, request body and occurrence: a replay in
                                              -- another process finds the same request again
            scope TEXT NOT NULL,
            item TEXT NOT NULL,               -- the sample (or eval row) it is for
            batch INTEGER NOT NULL REFERENCES llm_batches(id),
            status TEXT NOT NULL CHECK (status IN ('submitted','answered','retry','rejected','failed')),
            tries INTEGER NOT NULL,           -- batches it was sent in
            reply TEXT,                       -- answered: JSON {content, finish_reason, model}
            error TEXT,                       -- retry / rejected / failed: why
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            cost_usd REAL                     -- at batch prices
        );
        CREATE INDEX llm_batch_requests_batch ON llm_batch_requests(batch, status);
        -- the cot ledger names the batch request behind a call, so a replayed reply is counted once
        ALTER TABLE cot_calls ADD COLUMN request_id TEXT;
        CREATE UNIQUE INDEX cot_calls_request ON cot_calls(request_id) WHERE request_id IS NOT NULL;
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


migration(
    "m011_unlinked_sources",
    """
        -- sources ingest has decided but not yet linked: their source_links are searched many at a time
        -- (dedup.LINK_BATCH) and written with the removal of these rows, so a kill leaves them here
        CREATE TABLE unlinked_sources (
            source_id TEXT PRIMARY KEY REFERENCES sources(id) ON DELETE CASCADE
        );
    """,
)


migration(
    "m012_cot_calls_run",
    """
        -- a cot run's summary adds up its own calls: without it, a scan of every call the workspace ever
        -- paid for (a kept benchmark workspace of 233k calls: 20-40 ms at the end of each run)
        CREATE INDEX cot_calls_run ON cot_calls(run_id);
    """,
)


migration(
    "m013_llm_replies",
    """
        -- replies received for items not finished yet (aesdata.llm.replies): written with the reply's
        -- ledger row, removed with the item's result, so a run killed in between leaves them for the
        -- re-run to take instead of paying for them again
        CREATE TABLE llm_replies (
            scope TEXT NOT NULL,              -- the stage and mode that asked
            item TEXT NOT NULL,               -- the sample it is for
            attempt INTEGER NOT NULL,
            kind TEXT NOT NULL,               -- 'first' | 'repair'
            guard TEXT NOT NULL,              -- what else the request was built from (model, prompts, label)
            content TEXT NOT NULL,
            finish_reason TEXT,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            PRIMARY KEY (scope, item, attempt, kind)
        );
    """,
)

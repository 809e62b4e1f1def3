"""Import source images: decode safely, store once by content, find near-duplicates.

Decoding and hashing run in worker processes (they are CPU-bound); the parent alone writes
blobs and rows, in input order, so the outcome does not depend on timing. Each image's blob is written
as soon as it is decoded (only its hashes wait in memory); rows are written in batches of at most
``BATCH`` inputs or ``COMMIT_SECONDS``, each decided by one near-duplicate search
(:meth:`aesdata.dedup.SourceIndex.assign`) and written in one short transaction (the write lock is
never held while images decode, so other stages' writes get through). New sources' links to related
sources are searched ``dedup.LINK_BATCH`` at a time and at the end of the run (:meth:`SourceIndex.link`).
A kill loses at most the batch in flight and never leaves a row naming a missing blob. A file seen
before with the same size and mtime, or a dataset row with the same bytes, is skipped without decoding.
"""

from __future__ import annotations

import glob
import hashlib
import io
import logging
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import imagehash
from PIL import Image

from aesdata import store
from aesdata.blobs import encode_png
from aesdata.childenv import clean_pool
from aesdata.config import IngestSettings
from aesdata.db import to_signed64
from aesdata.dedup import LINK_BATCH, SourceIndex, mark_unlinked
from aesdata.errors import AesdataError, InputRejected
from aesdata.imageio import decode, flatten, read_file
from aesdata.nearindex import Assignment
from aesdata.progress import LogReporter, Reporter
from aesdata.schema import NearDuplicate, Rejection, Source
from aesdata.workspace import Workspace

MASK_SUFFIX = ".mask.png"
BATCH = 256  # inputs per transaction and per near-duplicate search, at most
COMMIT_SECONDS = 1.0  # ... or this long, whichever comes first: a kill loses little
WARNINGS_LOG = Path("logs") / "ingest.log"


def image_suffixes() -> frozenset[str]:
    """Every extension Pillow registers for a format it can open (MPO files are opened by the JPEG plugin)."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN or fmt == "MPO")


@dataclass(frozen=True)
class Item:
    """One input: a file, or one row of a Hugging Face dataset (its bytes carried along)."""

    origin: str
    fingerprint: str
    path: Path | None = None
    data: bytes | None = None
    refused: str | None = None  # why the input is not read at all (an untrusted path, say)


@dataclass(frozen=True)
class Decoded:
    origin: str
    png: bytes
    width: int
    height: int
    mode: str
    phash: int
    dhash: int
    notes: tuple[str, ...] = ()  # library warnings raised while decoding


@dataclass(frozen=True)
class Refused:
    reason: str
    notes: tuple[str, ...] = ()


@dataclass
class IngestSummary:
    added: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    links: int = 0  # links written between related sources (within group_threshold)
    rejected: int = 0
    unchanged: int = 0
    skipped_extension: int = 0  # files in the folders given whose extension no Pillow format claims
    library_warnings: int = 0  # inputs whose decoding raised library warnings (written to logs/ingest.log)

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


# --------------------------------------------------------------------------- inputs


@dataclass
class _Skipped:
    count: int = 0


def iter_files(paths: Iterable[str | Path], *, recursive: bool, skipped: _Skipped | None = None) -> Iterator[Item]:
    """Files named directly, folders (their images; sub-folders with ``recursive``) and glob patterns.

    Files of a folder whose extension is no image format Pillow opens are counted in ``skipped``.
    """
    suffixes = image_suffixes()
    seen: set[Path] = set()
    for raw in paths:
        raw = str(raw)
        expanded = sorted(glob.glob(raw, recursive=recursive)) if glob.has_magic(raw) else [raw]
        if not expanded:
            raise AesdataError(f"{raw}: no file matches this pattern")
        for name in expanded:
            path = Path(name)
            if path.is_dir():
                walker = path.rglob("*") if recursive else path.glob("*")
                files = []
                for p in sorted(p for p in walker if p.is_file()):
                    if p.suffix.lower() in suffixes:
                        files.append(p)
                    elif skipped is not None:
                        skipped.count += 1
            elif path.exists():
                files = [path]
            else:
                raise AesdataError(f"{path}: no such file or folder")
            for f in files:
                if f.name.endswith(MASK_SUFFIX):  # a sidecar product mask, read by generate, not a source
                    continue
                f = f.resolve()
                if f in seen:
                    continue
                seen.add(f)
                try:
                    st = f.stat()
                    fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    fingerprint = "unreadable"
                yield Item(origin=str(f), fingerprint=fingerprint, path=f)


def open_hf_dataset(name: str, split: str, image_column: str) -> tuple[Iterator[Item], int | None]:
    """Rows of a Hugging Face dataset (hub id or local folder), streamed: one row's bytes in memory at a
    time, never the whole column. Returns the rows and their number when the dataset says it."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as exc:  # datasets raises many types; all mean "cannot use this dataset"
        raise AesdataError(f"{name}: cannot load split {split!r}: {exc}") from exc
    columns = list(ds.features or {}) or None
    if columns is not None and image_column not in columns:
        raise AesdataError(f"{name}: no column {image_column!r} (columns: {', '.join(columns)})")
    if ds.features and isinstance(ds.features[image_column], datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    ds = ds.select_columns([image_column])
    splits = (ds.info.splits or {}) if ds.info else {}
    root = Path(name).resolve() if Path(name).is_dir() else None
    total = splits[split].num_examples if split in splits and splits[split].num_examples else None

    def rows() -> Iterator[Item]:
        for index, row in enumerate(ds):
            if image_column not in row:
                raise AesdataError(f"{name}: no column {image_column!r} (columns: {', '.join(row)})")
            value = row[image_column]
            origin = f"hf://{name}/{split}/{index}"
            data = value.get("bytes") if isinstance(value, dict) else value
            if data is None and isinstance(value, dict) and value.get("path"):
                yield _named_file(origin, str(value["path"]), root)
                continue
            data = data if isinstance(data, bytes) else b""
            yield Item(origin=origin, fingerprint=hashlib.sha256(data).hexdigest()[:32], data=data)

    return rows(), total


def _named_file(origin: str, named: str, root: Path | None) -> Item:
    """A dataset row that names an image file instead of embedding it: read only inside the dataset's own
    local folder. Anything else (``/home/me/.ssh/id_rsa``, ``../../x``, another machine's path) is data
    from outside and never becomes a path that is opened."""
    path = Path(named).resolve()
    if root is None or not path.is_relative_to(root):
        return Item(origin=origin, fingerprint=f"refused:{hashlib.sha256(named.encode()).hexdigest()[:24]}",
                    refused="the row names a file outside the dataset's folder instead of embedding its bytes; "
                            "it is not read")
    try:
        st = path.stat()
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        fingerprint = "unreadable"
    return Item(origin=origin, fingerprint=fingerprint, path=path)


# --------------------------------------------------------------------------- decoding (worker side)


class _Notes(logging.Handler):
    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(f"{record.name}: {record.getMessage()}")


@contextmanager
def _library_notes() -> Iterator[list[str]]:
    """Collect what libraries say while decoding: Python warnings, Pillow's log records and, in a worker
    process, what C libraries (libtiff, libjpeg) write to stderr; none of it reaches the terminal."""
    notes: list[str] = []
    pil = logging.getLogger("PIL")
    handler, propagate = _Notes(notes), pil.propagate
    pil.addHandler(handler)
    pil.propagate = False
    in_worker = multiprocessing.parent_process() is not None  # the parent's stderr carries progress bars
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryFile() if in_worker else io.BytesIO() as err:
        warnings.simplefilter("always")
        saved = None
        if in_worker:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(err.fileno(), 2)
        try:
            yield notes
        finally:
            pil.removeHandler(handler)
            pil.propagate = propagate
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
                err.seek(0)
                notes.extend(line for line in err.read().decode(errors="replace").splitlines() if line.strip())
            notes.extend(f"{w.category.__name__}: {w.message}" for w in caught)


def decode_item(item: Item, settings: IngestSettings) -> Decoded:
    """Read, decode, normalise and hash one input; raises :class:`InputRejected` with the reason."""
    if item.refused:
        raise InputRejected(f"{item.origin}: {item.refused}")
    data = item.data if item.path is None else read_file(item.path, max_bytes=settings.max_bytes)
    if data is not None and len(data) > settings.max_bytes:
        raise InputRejected(f"{item.origin}: too large: {len(data)} bytes (limit {settings.max_bytes})")
    img = decode(data or b"", origin=item.origin, max_pixels=settings.max_pixels)
    flat = flatten(img)
    return Decoded(
        origin=item.origin, png=encode_png(img), width=img.width, height=img.height, mode=img.mode,
        phash=int(str(imagehash.phash(flat)), 16), dhash=int(str(imagehash.dhash(flat)), 16),
    )


def _decode_or_reason(item: Item, settings: IngestSettings) -> Decoded | Refused:
    with _library_notes() as notes:
        try:
            result: Decoded | Refused = decode_item(item, settings)
        except InputRejected as exc:
            result = Refused(exc.message)
        except Exception as exc:  # a decoder bug on hostile input must not end the run
            result = Refused(f"{item.origin}: cannot decode: {type(exc).__name__}: {exc}")
    if isinstance(result, Decoded):
        return Decoded(**{**vars(result), "notes": tuple(notes)})
    return Refused(result.reason, tuple(notes))


class _InlineExecutor(Executor):
    """Runs work in the calling process (small inputs: no pool start-up cost)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


def _decoded_in_order(items: Iterable[Item], settings: IngestSettings, workers: int) -> Iterator[
    tuple[Item, Decoded | Refused]
]:
    """Decode in parallel with a bounded window (inputs are read lazily), yielding results in input order."""
    executor: Executor = clean_pool(workers, [__name__]) if workers > 1 else _InlineExecutor()
    window: list[tuple[Item, Future]] = []
    try:
        for item in items:
            window.append((item, executor.submit(_decode_or_reason, item, settings)))
            if len(window) >= workers * 4:
                first, fut = window.pop(0)
                yield first, fut.result()
        for item, fut in window:
            yield item, fut.result()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- the stage


def _known(db: sqlite3.Connection, item: Item) -> bool:
    row = db.execute("SELECT fingerprint FROM ingest_log WHERE origin = ?", (item.origin,)).fetchone()
    return row is not None and row[0] == item.fingerprint


def _log(db: sqlite3.Connection, item: Item, outcome: str, sha: str | None) -> None:
    db.execute(
        "INSERT INTO ingest_log (origin, fingerprint, outcome, sha256) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(origin) DO UPDATE SET fingerprint = excluded.fingerprint, outcome = excluded.outcome,"
        " sha256 = excluded.sha256",
        (item.origin, item.fingerprint, outcome, sha),
    )


@dataclass
class _New:
    """A decoded image not seen before: its blob is stored, its rows wait for the batch's search."""

    item: Item
    sha: str
    width: int
    height: int
    mode: str
    phash: int
    dhash: int


@dataclass
class _Batch:
    """Inputs decoded since the last write, in input order. Nothing of it is in the database yet: the
    batch is written in one short transaction, so the write lock is never held while images decode."""

    events: list[tuple[str, Item, object]] = field(default_factory=list)  # (kind, input, detail)
    new: list[_New] = field(default_factory=list)
    by_sha: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events)


class _Run:
    """One ingest's state: the source index and the batch waiting for its search."""

    def __init__(self, ws: Workspace, summary: IngestSummary, reporter: Reporter) -> None:
        self.ws, self.db, self.summary, self.reporter = ws, ws.db, summary, reporter
        self.sources = SourceIndex(ws.db, ws.settings.ingest)
        self.batch = _Batch()
        self.notes_file = ws.root / WARNINGS_LOG

    def take(self, item: Item, result: Decoded | Refused) -> None:
        """Sort one decoded input into the batch (its blob is stored now, its rows in :meth:`flush`)."""
        db, events = self.db, self.batch.events
        if result.notes:
            self._library_notes(item, result.notes)
        if isinstance(result, Refused):
            events.append(("rejected", item, result.reason))
            self.reporter.problem(result.reason)
            return
        sha = hashlib.sha256(result.png).hexdigest()
        if sha in self.batch.by_sha:
            events.append(("copy", item, self.batch.by_sha[sha]))
        elif db.execute("SELECT 1 FROM sources WHERE id = ?", (sha,)).fetchone():
            events.append(("exact", item, sha))
        elif db.execute("SELECT 1 FROM near_duplicates WHERE sha256 = ?", (sha,)).fetchone():
            events.append(("near", item, sha))
        else:
            self.ws.blobs.put(result.png)  # before any row names it
            self.batch.by_sha[sha] = len(self.batch.new)
            events.append(("new", item, len(self.batch.new)))
            self.batch.new.append(_New(item, sha, result.width, result.height, result.mode, result.phash,
                                       result.dhash))

    def flush(self) -> None:
        """Search the batch's new images against the sources and each other, then write every input's rows,
        in input order, in one transaction."""
        batch, db, summary = self.batch, self.db, self.summary
        self.batch = _Batch()
        if not batch.events:
            return
        a = self.sources.assign([n.phash for n in batch.new])
        base = len(self.sources.index) - int((a.position >= 0).sum())
        new_source = {int(p): n.sha for p, n in zip(a.position, batch.new, strict=True) if p >= 0}

        def source_id(position: int) -> str:
            return new_source[position] if position >= base else self.sources.source_id(position)

        added: list[tuple[int, str]] = []
        with self.ws.transaction():
            for kind, item, detail in batch.events:
                if kind == "rejected":
                    store.upsert_rejection(db, Rejection(origin=item.origin, reason=str(detail)))
                    _log(db, item, "rejected", None)
                    summary.rejected += 1
                elif kind in ("exact", "near", "copy"):
                    if kind == "copy":  # of a new image of this batch: as its decision goes
                        k = int(detail)  # type: ignore[call-overload]
                        kind, detail = ("exact" if a.position[k] >= 0 else "near"), batch.new[k].sha
                    _log(db, item, kind, str(detail))
                    if kind == "exact":
                        summary.exact_duplicates += 1
                    else:
                        summary.near_duplicates += 1
                else:
                    k = int(detail)  # type: ignore[call-overload]
                    added.extend(self._write_new(batch.new[k], a, k, source_id))
        self.sources.added(added)
        if len(self.sources.unlinked) >= LINK_BATCH:
            self.link()

    def link(self) -> None:
        """Search and write the links of the sources decided since the last time (or left by a kill)."""
        self.summary.links += self.sources.link()

    def _write_new(self, n: _New, a: Assignment, k: int,
                   source_id: Callable[[int], str]) -> list[tuple[int, str]]:
        """Rows of a new image: a source (its rowid and id returned for the index) or a near-duplicate."""
        db, summary = self.db, self.summary
        if a.position[k] >= 0:
            store.insert_source(db, Source(id=n.sha, width=n.width, height=n.height, mode=n.mode,  # type: ignore[arg-type]
                                           phash=f"{n.phash:016x}", dhash=f"{n.dhash:016x}", origin=n.item.origin))
            mark_unlinked(db, n.sha)
            _log(db, n.item, "added", n.sha)
            summary.added += 1
            return [(db.execute("SELECT rowid FROM sources WHERE id = ?", (n.sha,)).fetchone()[0], n.sha)]
        store.insert_near_duplicate(db, NearDuplicate(sha256=n.sha, duplicate_of=source_id(int(a.near_of[k])),
                                                      distance=int(a.distance[k]), origin=n.item.origin))
        db.execute("UPDATE near_duplicates SET phash = ? WHERE sha256 = ?", (to_signed64(n.phash), n.sha))
        _log(db, n.item, "near", n.sha)
        summary.near_duplicates += 1
        return []

    def _library_notes(self, item: Item, notes: tuple[str, ...]) -> None:
        """Library warnings go to the workspace's log file and the ``aesdata`` logger at debug level."""
        self.summary.library_warnings += 1
        self.notes_file.parent.mkdir(exist_ok=True)
        with self.notes_file.open("a", encoding="utf-8") as fh:
            for note in notes:
                fh.write(f"{item.origin}: {note}\n")
                logging.getLogger("aesdata.ingest").debug("%s: %s", item.origin, note)


def ingest(
    ws: Workspace,
    paths: Iterable[str | Path] = (),
    *,
    recursive: bool = False,
    hf_dataset: str | None = None,
    split: str = "train",
    image_column: str = "image",
    workers: int | None = None,
    reporter: Reporter | None = None,
) -> IngestSummary:
    """Ingest files/folders/globs and/or a Hugging Face dataset into the workspace."""
    reporter = reporter or LogReporter()
    summary = IngestSummary()
    skipped = _Skipped()
    files = list(iter_files(paths, recursive=recursive, skipped=skipped))  # paths only: small
    summary.skipped_extension = skipped.count
    rows, n_rows = open_hf_dataset(hf_dataset, split, image_column) if hf_dataset else (iter(()), 0)
    if not files and not hf_dataset:
        raise AesdataError("nothing to ingest: give files, folders, globs or --hf-dataset",
                           hint="aesdata ingest photos/ --recursive")
    params = {"inputs": [str(p) for p in paths], "recursive": recursive, "hf_dataset": hf_dataset,
              "split": split, "image_column": image_column}
    total = None if n_rows is None else len(files) + n_rows
    with ws.run("ingest", params) as run:
        state = _Run(ws, summary, reporter)

        def todo() -> Iterator[Item]:
            for item in chain(files, rows):
                if _known(ws.db, item):
                    summary.unchanged += 1
                    task.advance()
                else:
                    yield item

        few = total is not None and total <= 16
        n_workers = workers if workers is not None else (1 if few else min(os.cpu_count() or 1, 8))
        with reporter.task("ingest", total) as task:
            last_write = time.monotonic()
            for item, result in _decoded_in_order(todo(), ws.settings.ingest, n_workers):
                state.take(item, result)
                task.advance()
                if len(state.batch) >= BATCH or time.monotonic() - last_write > COMMIT_SECONDS:
                    state.flush()
                    last_write = time.monotonic()
            state.flush()
        state.link()
        if summary.library_warnings:
            reporter.info(f"{summary.library_warnings} inputs raised library warnings: see {state.notes_file}")
        run.counts.update(summary.as_dict())
    return summary

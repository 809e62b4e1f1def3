"""Import source images: decode safely, store once by content, find near-duplicates.

Decoding and hashing run in worker processes (they are CPU-bound); the parent alone writes
blobs and rows, in input order, so the outcome does not depend on timing. Rows commit in small
batches after their blobs are on disk: a kill loses at most the batch in flight and never leaves a
row naming a missing blob. A file seen before with the same size and mtime is skipped unread.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imagehash

from aesdata import store
from aesdata.blobs import encode_png
from aesdata.config import IngestSettings
from aesdata.db import to_unsigned64
from aesdata.errors import AesdataError, InputRejected
from aesdata.imageio import decode, flatten, read_file
from aesdata.nearindex import HashIndex
from aesdata.progress import LogReporter, Reporter
from aesdata.schema import NearDuplicate, Rejection, Source
from aesdata.workspace import Workspace

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MASK_SUFFIX = ".mask.png"
COMMIT_EVERY = 32  # rows per transaction: small enough to lose little, large enough to be fast
COMMIT_SECONDS = 1.0


@dataclass(frozen=True)
class Item:
    """One input: a file, or one row of a Hugging Face dataset (its bytes carried along)."""

    origin: str
    fingerprint: str
    path: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Decoded:
    origin: str
    png: bytes
    width: int
    height: int
    mode: str
    phash: int
    dhash: int


@dataclass
class IngestSummary:
    added: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    rejected: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


# --------------------------------------------------------------------------- inputs


def iter_files(paths: Iterable[str | Path], *, recursive: bool) -> Iterator[Item]:
    """Files named directly, folders (their images; sub-folders with ``recursive``) and glob patterns."""
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
                files = sorted(p for p in walker if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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


def iter_hf_dataset(name: str, split: str, image_column: str) -> Iterator[Item]:
    """Rows of a Hugging Face dataset (hub id or local folder); images read as undecoded bytes."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many types; all mean "cannot use this dataset"
        raise AesdataError(f"{name}: cannot load split {split!r}: {exc}") from exc
    if image_column not in ds.column_names:
        raise AesdataError(f"{name}: no column {image_column!r} (columns: {', '.join(ds.column_names)})")
    if isinstance(ds.features[image_column], datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    for index, value in enumerate(ds[image_column]):
        data = value.get("bytes") if isinstance(value, dict) else value
        if data is None and isinstance(value, dict) and value.get("path"):
            data = Path(value["path"]).read_bytes()
        yield Item(origin=f"hf://{name}/{split}/{index}", fingerprint=ds._fingerprint,
                   data=data if isinstance(data, bytes) else b"")


# --------------------------------------------------------------------------- decoding (worker side)


def decode_item(item: Item, settings: IngestSettings) -> Decoded:
    """Read, decode, normalise and hash one input; raises :class:`InputRejected` with the reason."""
    data = item.data if item.path is None else read_file(item.path, max_bytes=settings.max_bytes)
    if data is not None and len(data) > settings.max_bytes:
        raise InputRejected(f"{item.origin}: too large: {len(data)} bytes (limit {settings.max_bytes})")
    img = decode(data or b"", origin=item.origin, max_pixels=settings.max_pixels)
    flat = flatten(img)
    return Decoded(
        origin=item.origin, png=encode_png(img), width=img.width, height=img.height, mode=img.mode,
        phash=int(str(imagehash.phash(flat)), 16), dhash=int(str(imagehash.dhash(flat)), 16),
    )


def _decode_or_reason(item: Item, settings: IngestSettings) -> Decoded | str:
    try:
        return decode_item(item, settings)
    except InputRejected as exc:
        return exc.message
    except Exception as exc:  # a decoder bug on hostile input must not end the run
        return f"{item.origin}: cannot decode: {type(exc).__name__}: {exc}"


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
    tuple[Item, Decoded | str]
]:
    """Decode in parallel with a bounded window, yielding results in input order."""
    executor: Executor = ProcessPoolExecutor(workers) if workers > 1 else _InlineExecutor()
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


def load_index(db: sqlite3.Connection, radius: int) -> HashIndex:
    index = HashIndex(radius)
    for sid, phash in db.execute("SELECT id, phash FROM sources ORDER BY rowid"):
        index.add(to_unsigned64(phash), sid)
    return index


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


def _record(ws: Workspace, index: HashIndex, item: Item, result: Decoded | str, summary: IngestSummary,
            reporter: Reporter) -> None:
    """Apply one decoded input to the open transaction (blob first, then rows)."""
    db, cfg = ws.db, ws.settings.ingest
    if isinstance(result, str):
        store.upsert_rejection(db, Rejection(origin=item.origin, reason=result))
        _log(db, item, "rejected", None)
        summary.rejected += 1
        reporter.problem(result)
        return
    sha = hashlib.sha256(result.png).hexdigest()
    if db.execute("SELECT 1 FROM sources WHERE id = ?", (sha,)).fetchone():
        _log(db, item, "exact", sha)
        summary.exact_duplicates += 1
        return
    if db.execute("SELECT 1 FROM near_duplicates WHERE sha256 = ?", (sha,)).fetchone():
        _log(db, item, "near", sha)
        summary.near_duplicates += 1
        return
    neighbours = index.query(result.phash)
    ws.blobs.put(result.png)
    if neighbours and neighbours[0][1] <= cfg.near_duplicate_threshold:
        closest, distance = neighbours[0]
        store.insert_near_duplicate(db, NearDuplicate(sha256=sha, duplicate_of=str(closest), distance=distance,
                                                      origin=item.origin))
        _log(db, item, "near", sha)
        summary.near_duplicates += 1
        return
    store.insert_source(db, Source(id=sha, width=result.width, height=result.height, mode=result.mode,  # type: ignore[arg-type]
                                   phash=f"{result.phash:016x}", dhash=f"{result.dhash:016x}", origin=item.origin))
    db.executemany(
        "INSERT OR IGNORE INTO source_links (a, b, distance) VALUES (?, ?, ?)",
        [(min(sha, str(other)), max(sha, str(other)), d) for other, d in neighbours],
    )
    index.add(result.phash, sha)
    _log(db, item, "added", sha)
    summary.added += 1


def _write_batch(ws: Workspace, index: HashIndex, batch: list[tuple[Item, Decoded | str]], summary: IngestSummary,
                 reporter: Reporter) -> None:
    """Record a batch of decoded inputs in one transaction."""
    with ws.transaction():
        for item, result in batch:
            _record(ws, index, item, result, summary, reporter)


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
    cfg = ws.settings.ingest
    items: list[Item] = list(iter_files(paths, recursive=recursive))
    if hf_dataset:
        items.extend(iter_hf_dataset(hf_dataset, split, image_column))
    if not items:
        raise AesdataError("nothing to ingest: give files, folders, globs or --hf-dataset",
                           hint="aesdata ingest photos/ --recursive")
    summary = IngestSummary()
    params = {"inputs": [str(p) for p in paths], "recursive": recursive, "hf_dataset": hf_dataset,
              "split": split, "image_column": image_column}
    with ws.run("ingest", params) as run:
        index = load_index(ws.db, cfg.group_threshold)
        todo = [it for it in items if not _known(ws.db, it)]
        summary.unchanged = len(items) - len(todo)
        n_workers = workers if workers is not None else (min(os.cpu_count() or 1, 8) if len(todo) > 16 else 1)
        with reporter.task("ingest", len(todo)) as task:
            # Decoded inputs wait in memory and are written in one short transaction per batch: the
            # write lock is never held while images decode, so other stages' writes get through.
            batch: list[tuple[Item, Decoded | str]] = []
            last_commit = time.monotonic()
            for item, result in _decoded_in_order(todo, cfg, n_workers):
                batch.append((item, result))
                if len(batch) >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_SECONDS:
                    _write_batch(ws, index, batch, summary, reporter)
                    task.advance(len(batch))
                    batch, last_commit = [], time.monotonic()
            _write_batch(ws, index, batch, summary, reporter)
            task.advance(len(batch))
        run.counts.update(summary.as_dict())
    return summary

"""``aesdata publish``: select, split, write shards and card, record the version, upload.

0. Hold the workspace's ``publish`` lock (:mod:`aesdata.claims`) throughout: a second publish at the
   same time is refused in one line, so versions are decided one after the other.
1. Read one consistent snapshot of the workspace, twice: a light pass that plans (which samples,
   which split, the content hash), then a pass that streams rows with their images into shards.
2. Write into a temporary folder next to the target, rename it into place, and only then record the
   version, in one transaction: a kill at any point leaves no half-version recorded.
3. With a repo id, upload the folder as one commit and tag it; the commit id is added to the record.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aesdata import claims, dedup, store
from aesdata.errors import AesdataError
from aesdata.progress import LogReporter, Reporter
from aesdata.publish import card, hub, split, versions
from aesdata.publish.select import SelectCounts, Selection, iter_selected
from aesdata.publish.writer import DATA_DIR, HARD_DIR, MAX_SHARD_BYTES, SplitWriter, encode
from aesdata.schema import DatasetVersion, Split, utcnow
from aesdata.workspace import Workspace

_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


@dataclass(frozen=True, slots=True)
class _Planned:
    """Pass one's memory of a sample: small, so planning 100k samples costs a few tens of MB."""

    source_id: str
    stratum: str
    label_hash: str
    rationale_mode: str | None
    digest: str  # everything the row holds except its split


def _row_hash(digest: str, split_name: Split) -> str:
    return hashlib.sha256(f"{digest}:{split_name}".encode()).hexdigest()


def _content_hash(rows: list[versions.VersionRow]) -> str:
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r.sample_id):
        h.update(f"{r.sample_id}:{r.row_hash}\n".encode())
    return h.hexdigest()


def _blob_path(ws: Workspace, sha: str) -> str:
    """The blob's path as a plain string: pathlib costs more than the read itself at 400k images."""
    return f"{ws.blobs.root}/{ws.blobs.relpath(sha)}"


def _read(ws: Workspace, sha: str) -> bytes:
    with open(_blob_path(ws, sha), "rb") as fh:
        return fh.read()


def _blob_problem(ws: Workspace, sel: Selection) -> str | None:
    shas = (sel.sample.source_id, *(c.sha256 for c in sel.candidates))
    missing = [sha for sha in shas if not os.path.isfile(_blob_path(ws, sha))]
    if len(sel.candidates) != 4:
        return f"sample {sel.sample.id}: has {len(sel.candidates)} candidates, not 4"
    return f"sample {sel.sample.id}: image blob(s) missing: {', '.join(missing)}" if missing else None


class _Snapshot:
    """A read transaction: both passes see the same rows even while other stages write."""

    def __init__(self, ws: Workspace) -> None:
        self.db = ws.db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, *exc: object) -> None:
        self.db.execute("COMMIT" if exc[0] is None else "ROLLBACK")


@dataclass(frozen=True)
class _Source:
    """What both passes read rows with: the same selection rules and the same mined difficulties."""

    ws: Workspace
    require_rationale: bool
    difficulty: dict[str, float]
    hard: frozenset[str]
    mined_by: str | None

    @classmethod
    def of(cls, ws: Workspace, require_rationale: bool) -> _Source:
        mined = store.difficulties(ws.db)
        return cls(
            ws,
            require_rationale,
            {s: d.difficulty for s, d in mined.items()},
            frozenset(s for s, d in mined.items() if d.hard),
            next(iter(store.mined_models(ws.db)), None),
        )

    def rows(self, counts: SelectCounts | None = None) -> Iterator[Selection]:
        return iter_selected(
            self.ws.db,
            priority=self.ws.settings.publish.rationale_priority,
            require_rationale=self.require_rationale,
            counts=counts,
            difficulty=self.difficulty,
        )


def _plan(src: _Source, counts: SelectCounts, reporter: Reporter) -> dict[str, _Planned]:
    planned: dict[str, _Planned] = {}
    with reporter.task("planning", None) as task:
        for sel in src.rows(counts):
            task.advance()
            problem = _blob_problem(src.ws, sel)
            if problem:
                reporter.problem(problem)
                counts.bad += 1
                continue
            planned[sel.sample.id] = _Planned(
                sel.sample.source_id,
                sel.stratum,
                sel.label_hash,
                sel.rationale.mode if sel.rationale else None,
                sel.digest(sel.row("train")),
            )
    return planned


@dataclass
class _Plan:
    """Everything decided before a byte is written."""

    source: _Source
    planned: dict[str, _Planned]
    assignment: split.Assignment
    rows: list[versions.VersionRow]
    content_hash: str
    counts: SelectCounts


def _make_plan(ws: Workspace, fraction: float, *, require_rationale: bool, reporter: Reporter) -> _Plan:
    counts = SelectCounts()
    src = _Source.of(ws, require_rationale)
    planned = _plan(src, counts, reporter)
    groups = dedup.source_groups(ws.db)
    items = [split.Item(sid, groups.get(p.source_id, p.source_id), p.stratum) for sid, p in planned.items()]
    assignment = split.assign(items, versions.previous_splits(ws.db), fraction)
    rows = [
        versions.VersionRow(
            sid, assignment.splits[sid], p.label_hash, p.rationale_mode, _row_hash(p.digest, assignment.splits[sid])
        )
        for sid, p in planned.items()
    ]
    return _Plan(src, planned, assignment, rows, _content_hash(rows), counts)


def _write(folder: Path, plan: _Plan, *, max_shard_bytes: int, reporter: Reporter) -> card.CardStats:
    """Pass two: stream every planned row, images embedded, into the shard writers of each config.

    The ``hard`` config repeats the training rows that the mined model mostly fails.
    """
    stats = card.CardStats()
    writers = {s: SplitWriter(folder, s, max_shard_bytes=max_shard_bytes) for s in ("train", "test")}
    hard = SplitWriter(folder, "train", subdir=HARD_DIR, max_shard_bytes=max_shard_bytes)
    with reporter.task(f"writing {folder.name}", len(plan.planned)) as task:
        for sel in plan.source.rows():
            planned = plan.planned.get(sel.sample.id)
            if planned is None:
                continue
            row = sel.row(plan.assignment.splits[sel.sample.id])
            if sel.digest(row) != planned.digest:  # impossible inside one snapshot; never publish a mismatch
                raise AesdataError(f"sample {sel.sample.id}: changed while publishing; run publish again")
            stats.add(row)
            source = _read(plan.source.ws, sel.sample.source_id)
            cands = [_read(plan.source.ws, c.sha256) for c in sel.candidates]
            encoded, nbytes = encode(row, source, cands), len(source) + sum(map(len, cands))
            writers[row.split].add(encoded, nbytes)
            if row.split == "train" and sel.sample.id in plan.source.hard:
                hard.add(encoded, nbytes)
            task.advance()
    for w in writers.values():
        w.close()
    hard.close()
    stats.hard_rows = hard.rows
    return stats


def publish(
    ws: Workspace,
    version: str,
    *,
    out: Path | None = None,
    repo_id: str | None = None,
    private: bool = False,
    require_rationale: bool = False,
    test_fraction: float | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Publish ``version``; returns the summary the CLI prints."""
    # 1. check inputs
    reporter = reporter or LogReporter()
    settings = ws.settings.publish
    if not _SEMVER.match(version):
        raise AesdataError(f"--version {version!r}: not a version of the form X.Y.Z (e.g. 1.0.0)")
    fraction = settings.test_fraction if test_fraction is None else test_fraction
    if not 0 <= fraction < 1:
        raise AesdataError(f"--test-fraction {fraction}: must be at least 0 and below 1")
    repo_id = repo_id or settings.repo_id
    out_dir = (out or ws.root / "published" / f"v{version}").resolve()
    params = {
        "version": version,
        "out": str(out_dir),
        "repo_id": repo_id,
        "private": private,
        "require_rationale": require_rationale,
        "test_fraction": fraction,
    }

    # One publish at a time per workspace: the version rules, the earlier splits and the record are all
    # read and written under the lock, so two at once give one version and a one-line refusal.
    with claims.owner(ws.db, "publish") as me, me.lock("publish"):
        with ws.run("publish", params) as run:
            dedup.link_unlinked(ws.db, ws.settings.ingest)  # an interrupted ingest's sources join their groups
            with _Snapshot(ws):
                # 2. plan: selection, split, content hash
                plan = _make_plan(ws, fraction, require_rationale=require_rationale, reporter=reporter)
                summary: dict[str, Any] = {
                    "version": version,
                    **plan.assignment.count(),
                    "skipped_needs_review": plan.counts.needs_review,
                    "skipped_no_rationale": plan.counts.no_rationale,
                    "skipped_bad": plan.counts.bad,
                    "stale_rationales": plan.counts.stale_rationale,
                    "content_hash": plan.content_hash,
                }
                # 3. the rules: a version is never overwritten; the same content twice is a no-op
                record = versions.get_version(ws.db, version)
                if record is not None and record.content_hash != plan.content_hash:
                    raise AesdataError(
                        f"version {version}: already published with different content",
                        hint="published versions are never overwritten; publish a new version",
                    )
                if record is None:
                    versions.check_new(ws.db, version)
                    same = versions.with_content(ws.db, plan.content_hash)
                    if same is not None:
                        run.count("noop")
                        summary.update(status=f"no-op: same content as {same.version}", out=same.out_dir)
                        return summary
                    # 4. write the folder under a temporary name, renamed into place
                    log = _changelog(ws, version, plan)
                    if not _adoptable(out_dir, plan.content_hash):
                        _write_folder(
                            ws,
                            out_dir,
                            version,
                            plan,
                            log,
                            fraction=fraction,
                            repo_id=repo_id,
                            max_shard_bytes=max_shard_bytes,
                            reporter=reporter,
                        )
            if record is None:
                # 5. record the version and its rows in one transaction, once the folder is complete
                record = DatasetVersion(
                    version=version,
                    content_hash=plan.content_hash,
                    counts=plan.assignment.count(),
                    out_dir=str(out_dir),
                )
                with ws.transaction() as db:
                    versions.record(db, record, plan.rows)
                summary.update(status="published", **log.summary())
                run.count("published", len(plan.rows))
            else:
                summary["status"] = f"no-op: {version} already published with this content"
                run.count("noop")
            summary["out"] = record.out_dir

        # 6. upload (also finishes an upload that failed after the version was recorded)
        if repo_id and (record.repo_id != repo_id or record.commit_id is None):
            record = _upload(ws, record, repo_id, private=private)
            summary["status"] += f"; uploaded to {repo_id}"
        summary["repo_id"], summary["commit_id"] = record.repo_id, record.commit_id
        return summary


def _changelog(ws: Workspace, version: str, plan: _Plan) -> versions.Changelog:
    if not plan.planned:
        raise AesdataError(
            "nothing to publish: no labelled sample qualifies",
            hint="label samples first (annotate pull, or generate --backend synthetic)",
        )
    previous = versions.latest_below(ws.db, version)
    old_name = previous.version if previous else None
    return versions.changelog(
        versions.rows(ws.db, old_name) if old_name else {},
        {r.sample_id: r for r in plan.rows},
        old_name,
        version,
    )


def _upload(ws: Workspace, record: DatasetVersion, repo_id: str, *, private: bool) -> DatasetVersion:
    folder = Path(record.out_dir or "")
    if not record.out_dir or not folder.is_dir():
        raise AesdataError(f"{folder}: the folder of version {record.version} is gone; cannot upload it")
    with ws.run("publish-upload", {"version": record.version, "repo_id": repo_id}) as run:
        commit = hub.upload(folder, repo_id=repo_id, version=record.version, private=private)
        with ws.transaction() as db:
            record = versions.record_upload(db, record, repo_id, commit)
        run.count("uploaded")
    return record


def _adoptable(out_dir: Path, content_hash: str) -> bool:
    """True when ``out_dir`` is this very version already written (a publish killed before recording it)."""
    if not out_dir.exists():
        return False
    readme = out_dir / "README.md"
    if readme.is_file() and card.content_hash_of(readme.read_text(encoding="utf-8")) == content_hash:
        return True
    raise AesdataError(
        f"{out_dir}: already exists and is not this version's folder",
        hint="published folders are never overwritten; pass another --out or remove it",
    )


def _write_folder(
    ws: Workspace,
    out_dir: Path,
    version: str,
    plan: _Plan,
    log: versions.Changelog,
    *,
    fraction: float,
    repo_id: str | None,
    max_shard_bytes: int,
    reporter: Reporter,
) -> None:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a publish that was killed
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{plan.content_hash[:12]}"
    try:
        stats = _write(tmp, plan, max_shard_bytes=max_shard_bytes, reporter=reporter)
        stats.annotation_quality = store.get_annotation_quality(ws.db)
        configs = [card.Config("default", DATA_DIR, stats.splits)]
        if stats.hard_rows:
            configs.append(card.Config("hard", HARD_DIR, ("train",)))
        text = card.render(
            name=repo_id.split("/")[-1] if repo_id else "aesdata image-screening dataset",
            version=version,
            content_hash=plan.content_hash,
            created_at=utcnow(),
            license=ws.settings.publish.license,
            stats=stats,
            changelog=log,
            configs=configs,
            test_fraction=fraction,
            repo_id=repo_id,
            mined_by=plan.source.mined_by,
            left_out=plan.counts,
        )
        (tmp / "README.md").write_text(text, encoding="utf-8")
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

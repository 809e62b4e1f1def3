"""What the report shows, read from the workspace (and eval report files) into plain records.

The report covers one published version (its samples and their splits, from ``version_rows``), by
default the latest; a workspace with no version yet is reported over every labelled sample, as split
``unpublished``. Labels are the workspace's current effective labels (human over synthetic).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aesdata import store
from aesdata.annotate.report import all_judgements, quality_report
from aesdata.errors import AesdataError
from aesdata.schema import DIMENSIONS, SLOTS, Annotation, Candidate, Dimension, Label, Sample
from aesdata.workspace import Workspace

#: Samples shown per dimension in the grid, and disagreements listed at most.
PER_DIMENSION = 3
MAX_DISAGREEMENTS = 12


@dataclass(frozen=True)
class Shown:
    """One sample as the page draws it: the source and the four candidates with their defects."""

    sample_id: str
    split: str
    source_sha: str
    candidates: list[Candidate]
    label: Label
    annotations: list[Annotation] = field(default_factory=list)


@dataclass
class SplitCounts:
    samples: int = 0
    human: int = 0  # samples whose effective label is human
    with_rationale: int = 0
    acceptable: int = 0  # candidates
    defective: Counter[str] = field(default_factory=Counter)  # dimension -> defective candidates
    answer_sizes: Counter[int] = field(default_factory=Counter)  # acceptable candidates per sample


@dataclass(frozen=True)
class EvalRun:
    """The figures of one eval report file, checked (the file is outside data)."""

    file: str
    model: str
    kind: str
    version: str | None
    split: str
    samples: int
    rollouts: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]


@dataclass
class ReportData:
    version: str | None
    versions: list[str]
    totals: dict[str, int]
    splits: dict[str, SplitCounts]
    per_dimension: dict[Dimension, list[Shown]]
    annotators: dict[str, Any]
    disagreements: list[Shown]
    evals: list[EvalRun]
    problems: list[str]
    generators: Counter[str] = field(default_factory=Counter)


def _rows(ws: Workspace, version: str | None) -> tuple[str | None, list[str], list[tuple[str, str, str | None]]]:
    """(the version reported, every version, [(sample id, split, rationale mode)])."""
    versions = [v.version for v in store.get_versions(ws.db)]
    if version is not None and version not in versions:
        raise AesdataError(f"version {version}: not published in this workspace",
                           hint="see `aesdata versions`, or leave --version out for the latest")
    chosen = version or (versions[-1] if versions else None)
    if chosen is None:
        modes = {r[0]: r[1] for r in ws.db.execute("SELECT sample_id, mode FROM rationales WHERE status = 'valid'")}
        return None, versions, [(s.id, "unpublished", modes.get(s.id)) for s, _ in store.iter_labelled(ws.db)]
    cur = ws.db.execute("SELECT sample_id, split, rationale_mode FROM version_rows WHERE version = ? "
                        "ORDER BY split DESC, sample_id", (chosen,))
    return chosen, versions, [(r[0], r[1], r[2]) for r in cur]


def _shown(ws: Workspace, sample: Sample, split: str, label: Label) -> Shown:
    return Shown(sample.id, split, sample.source_id, store.get_candidates(ws.db, sample.id), label,
                 store.get_annotations(ws.db, sample.id))


def _number(value: Any) -> float | None:
    """A figure from an eval report: a finite number in [0, 1], else None (the file is untrusted)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if 0 <= value <= 1 else None


def _figures(raw: Any) -> dict[str, Any]:
    """Exact and proportional, overall and per dimension, each a checked number or None."""
    raw = raw if isinstance(raw, dict) else {}
    dims = raw.get("per_dimension") if isinstance(raw.get("per_dimension"), dict) else {}
    per = {d: dims[d] if isinstance(dims.get(d), dict) else {} for d in DIMENSIONS}
    return {"exact": _number(raw.get("exact")), "proportional": _number(raw.get("proportional")),
            "per_dimension": {d: {k: _number(per[d].get(k)) for k in ("exact", "proportional")} for d in DIMENSIONS}}


def read_eval(path: Path) -> EvalRun:
    """One eval report (``aesdata eval --out``); anything else is one clear error naming the file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AesdataError(f"{path.name}: cannot read the eval report: {exc}") from None
    if not isinstance(raw, dict) or "metrics" not in raw or "baseline_random" not in raw:
        raise AesdataError(f"{path.name}: not an aesdata eval report (no metrics / baseline_random)")
    samples = raw["metrics"].get("samples") if isinstance(raw["metrics"], dict) else None
    rollouts = raw.get("rollouts")
    return EvalRun(file=path.name, model=str(raw.get("model") or "?"), kind=str(raw.get("kind") or "?"),
                   version=None if raw.get("version") is None else str(raw.get("version")),
                   split=str(raw.get("split") or "?"),
                   samples=samples if isinstance(samples, int) and samples >= 0 else 0,
                   rollouts=rollouts if isinstance(rollouts, int) and rollouts > 0 else 1,
                   metrics=_figures(raw["metrics"]), baseline=_figures(raw["baseline_random"]))


def eval_files(paths: list[Path]) -> list[Path]:
    """Every ``*.json`` named or inside a named folder (not recursive), in name order."""
    found: list[Path] = []
    for path in paths:
        found.extend(sorted(path.glob("*.json")) if path.is_dir() else [path])
    return found


def collect(ws: Workspace, version: str | None = None, evals: list[Path] | None = None) -> ReportData:
    """Everything the page shows; a bad eval report is one problem line, the report goes on."""
    chosen, versions, rows = _rows(ws, version)
    splits: dict[str, SplitCounts] = {}
    per_dimension: dict[Dimension, list[Shown]] = {d: [] for d in DIMENSIONS}
    disagreements: list[Shown] = []
    generators: Counter[str] = Counter()
    for sample_id, split, mode in rows:
        sample, label = store.get_sample(ws.db, sample_id), store.get_label(ws.db, sample_id)
        if sample is None or label is None:
            continue
        counts = splits.setdefault(split, SplitCounts())
        judged = label.judgement
        counts.samples += 1
        counts.human += label.origin == "human"
        counts.with_rationale += mode is not None
        counts.acceptable += len(judged.answer)
        counts.answer_sizes[len(judged.answer)] += 1
        generators[sample.backend] += 1
        for slot in SLOTS:
            counts.defective.update(judged.defects[slot])
        dims = {d for s in SLOTS for d in judged.defects[s]}
        wanted = [d for d in DIMENSIONS if d in dims and len(per_dimension[d]) < PER_DIMENSION]
        if wanted:
            shown = _shown(ws, sample, split, label)
            for d in wanted:
                per_dimension[d].append(shown)
    # disputes over the whole workspace: a sample waiting for review is not published, yet belongs here
    where = {sample_id: split for sample_id, split, _ in rows}
    for sample_id, by in all_judgements(ws.db).items():
        sample, label = store.get_sample(ws.db, sample_id), store.get_label(ws.db, sample_id)
        if len({tuple(j.answer) for j in by.values()}) > 1 and sample and label:
            disagreements.append(_shown(ws, sample, where.get(sample_id, "not in this version"), label))
            if len(disagreements) >= MAX_DISAGREEMENTS:
                break
    problems: list[str] = []
    runs: list[EvalRun] = []
    for path in eval_files(evals or []):
        try:
            runs.append(read_eval(path))
        except AesdataError as exc:
            problems.append(str(exc))
    totals = {
        "sources": ws.db.execute("SELECT COUNT(*) FROM sources").fetchone()[0],
        "samples": ws.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0],
        "annotations": ws.db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0],
        "rows": sum(c.samples for c in splits.values()),
    }
    runs.sort(key=lambda r: (r.version or "", r.split, r.kind != "random", r.model))
    return ReportData(chosen, versions, totals, splits, per_dimension, quality_report(ws), disagreements, runs,
                      problems, generators)

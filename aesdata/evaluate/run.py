"""``aesdata eval``: score a model (or the random baseline) on one split of a published dataset.

The model sees what a screener sees (source, candidates A-D, the row's question; never the label),
``rollouts`` times per sample. Each reply is parsed tolerantly (:mod:`.answers`) and scored
(:mod:`.scoring`). The report keeps every reply and prediction per sample, so two runs can be compared
sample by sample (:mod:`.compare`), and always carries the random baseline of the same rows beside the
model's figures.

Report (JSON, ``REPORT_FORMAT``)::

    {"report_format", "kind": "model" | "random", "model", "base_url", "dataset", "version", "split",
     "rollouts", "temperature", "prompt_hash", "created_at",
     "metrics": {...summarise()}, "baseline_random": {...summarise()},
     "usage": {"calls", "prompt_tokens", "completion_tokens", "cost_usd"},
     "requests": {"requests", "retries", "timeouts", "rate_limited", "server_errors", ...} (this run's),
     "failed": [{"sample_id", "error"}],
     "samples": [{"sample_id", "answer", "predictions": ["A,C" | null, ...], "replies": [...],
                  "exact", "proportional"}]}
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from aesdata.config import CotSettings
from aesdata.errors import AesdataError
from aesdata.evaluate._runs import recorded
from aesdata.evaluate.answers import parse_regions
from aesdata.evaluate.asking import Asking, Batching, Endpoint, Rollouts, ask_each, screening_messages
from aesdata.evaluate.dataset import DatasetRef, Row, iter_rows, load_split
from aesdata.evaluate.journal import Journal, journal_path
from aesdata.evaluate.scoring import SampleScore, random_sample_score, score_sample, summarise
from aesdata.llm.client import RequestFailed
from aesdata.llm.images import ImageEncoder, data_url, encode_jpeg, image_cache
from aesdata.progress import LogReporter, Reporter
from aesdata.prompting import PROMPT_HASH
from aesdata.regions import grounding
from aesdata.schema import format_answer, utcnow
from aesdata.workspace import Workspace

REPORT_FORMAT = 1


@dataclass(frozen=True)
class Scored:
    """One sample's outcome (no images: a report holds thousands): the model's rollouts and its score."""

    sample_id: str
    answer: frozenset[str]
    rollouts: Rollouts | None
    score: SampleScore
    baseline: SampleScore
    grounding: dict[str, float] | None = None  # per dimension, when the model gave boxes and truth has regions


def _grounding(row: Row, got: Rollouts) -> dict[str, float] | None:
    """Mean IoU grounding per dimension over the rollouts that gave boxes; None when none did (or the
    sample has no marked regions): boxes are optional, so a model that gives none is not scored on them."""
    if not row.regions:
        return None
    scores = [grounding(boxes, row.regions) for boxes in map(parse_regions, got.texts) if boxes is not None]
    if not scores:
        return None
    return {dim: sum(s[dim] for s in scores) / len(scores) for dim in scores[0]}


class _Rows:
    """A split's rows streamed in dataset order, at most ``limit``; malformed ones reported and set aside.

    Streaming keeps memory flat however large the split: only the samples being asked hold images.
    """

    def __init__(self, ref: DatasetRef, split: str, limit: int | None, reporter: Reporter) -> None:
        self.ds = load_split(ref, split)
        self.where, self.limit, self.reporter = f"{ref.name} {split}", limit, reporter
        self.total = limit  # a streamed split's length is known only once it is read
        self.order: list[str] = []
        self.bad: list[str] = []

    def __iter__(self) -> Iterator[Row]:
        for item in iter_rows(self.ds):
            if self.limit is not None and len(self.order) >= self.limit:
                return
            if isinstance(item, ValueError):
                self.reporter.problem(f"{self.where}: {item}")
                self.bad.append(str(item))
                continue
            self.order.append(item.sample_id)
            yield item

    def ordered(self, results: dict[str, Scored]) -> list[Scored]:
        """The scored samples in dataset order; no usable row at all is an error."""
        if not self.order:
            raise AesdataError(f"{self.where}: no usable rows")
        return [results[sid] for sid in self.order if sid in results]

    def failures(self) -> list[dict[str, str | None]]:
        return [{"sample_id": None, "error": e} for e in self.bad]


def _scored(row: Row, got: Rollouts | None, rollouts: int) -> Scored:
    """Score ``got`` (None: the random baseline itself) and keep the baseline of the same row beside it."""
    baseline = random_sample_score(row.answer, row.defects, rollouts)
    score = baseline if got is None else score_sample(got.predictions, row.answer, row.defects)
    return Scored(row.sample_id, row.answer, got, score, baseline, None if got is None else _grounding(row, got))


class _Images:
    """Data URLs of a row's five images, each encoded once across stages where possible.

    Published images are the workspace's blobs byte for byte, so with a workspace the JPEG renditions
    that cot and mine-hard keep in ``cache/cot-images`` serve eval too (and eval's serve them); images
    from elsewhere (``--dataset``) are decoded and encoded from their bytes.
    """

    def __init__(self, ws: Workspace | None, max_side: int) -> None:
        self.max_side = max_side
        self.encoder = (
            ImageEncoder(ws.blobs, max_side=max_side, cache_size=64, cache_dir=image_cache(ws)) if ws else None
        )

    def _url(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if self.encoder is not None and self.encoder.blobs.exists(sha):
            return self.encoder.url(sha)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return data_url(encode_jpeg(img, max_side=self.max_side))

    def urls(self, row: Row) -> list[str]:
        return [self._url(data) for data in row.images]


def _sample_entry(scored: Scored) -> dict[str, Any]:
    rollouts = scored.rollouts
    entry: dict[str, Any] = {"sample_id": scored.sample_id, "answer": format_answer(scored.answer)}
    if rollouts is not None:
        entry["predictions"] = [None if p is None else format_answer(p) for p in rollouts.predictions]
        entry["replies"] = list(rollouts.texts)
    entry["exact"] = scored.score.exact
    entry["proportional"] = scored.score.proportional
    if scored.grounding is not None:
        entry["grounding"] = scored.grounding
    return entry


def _grounding_summary(scored: Sequence[Scored]) -> dict[str, Any] | None:
    """Per dimension: mean grounding IoU and over how many samples (only those where boxes were given)."""
    per_dim: dict[str, list[float]] = {}
    for s in scored:
        for dim, value in (s.grounding or {}).items():
            per_dim.setdefault(dim, []).append(value)
    if not per_dim:
        return None
    return {dim: {"iou": round(sum(v) / len(v), 4), "samples": len(v)} for dim, v in per_dim.items()}


def _report(
    kind: str,
    ref: DatasetRef,
    split: str,
    rollouts: int,
    scored: Sequence[Scored],
    failed: list[dict[str, str | None]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    asked = [s.rollouts for s in scored if s.rollouts is not None]
    return {
        "report_format": REPORT_FORMAT,
        "kind": kind,
        **extra,
        "dataset": ref.name,
        "version": ref.version,
        "split": split,
        "rollouts": rollouts,
        "prompt_hash": PROMPT_HASH,
        "created_at": utcnow().isoformat(),
        "metrics": summarise([s.score for s in scored]),
        "baseline_random": summarise([s.baseline for s in scored]),
        "grounding": _grounding_summary(scored),
        "usage": {
            "calls": sum(len(r.texts) for r in asked),
            "prompt_tokens": sum(r.prompt_tokens for r in asked),
            "completion_tokens": sum(r.completion_tokens for r in asked),
            "cost_usd": round(sum(r.cost_usd for r in asked), 6),
        },
        "failed": failed,
        "samples": [_sample_entry(s) for s in scored],
    }


def random_baseline(
    ws: Workspace | None,
    ref: DatasetRef,
    *,
    split: str = "test",
    rollouts: int = 1,
    limit: int | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """The report of a uniform random screener, by exact expectation (no sampling, no model)."""
    reporter = reporter or LogReporter()
    params = {"baseline": "random", "dataset": ref.name, "split": split, "rollouts": rollouts}
    with recorded(ws, "eval", params) as run:
        rows = _Rows(ref, split, limit, reporter)
        scored = rows.ordered({row.sample_id: _scored(row, None, rollouts) for row in rows})
        run.count("done", len(scored))
        run.count("failed", len(rows.bad))
    return _report("random", ref, split, rollouts, scored, rows.failures(), {"model": "random"})


def evaluate(
    ws: Workspace | None,
    ref: DatasetRef,
    endpoint: Endpoint,
    *,
    cot: CotSettings | None = None,
    split: str = "test",
    rollouts: int = 1,
    limit: int | None = None,
    out: Path | None = None,
    batch: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Ask ``endpoint`` every row of ``split`` ``rollouts`` times; return the report (see module doc).

    With ``out``, the report is written there, and answered samples are journalled beside it as they
    arrive: a run that was killed, interrupted or stopped by ``--max-cost`` continues where it stopped.
    With ``batch`` the requests go through the endpoint's Batch API, recorded in the workspace
    (:mod:`aesdata.llm.batch`); rows are read again from the dataset as their batches end.
    """
    reporter = reporter or LogReporter()
    cot = cot or (ws.settings.cot if ws else CotSettings())
    endpoint = endpoint.resolved(cot)
    max_side = int(endpoint.max_side or cot.max_side)
    key = {**endpoint.params(), "dataset": ref.name, "split": split, "rollouts": rollouts,
           "prompt_hash": PROMPT_HASH}
    # the same model served from another address (a restarted server) continues the same journal
    journal = Journal(journal_path(out), {k: v for k, v in key.items() if k != "base_url"}) if out else None
    with recorded(ws, "eval", {**key, "limit": limit, "out": str(out) if out else None}) as run:
        # 1. the rows, streamed; those an interrupted run already asked are scored from the journal
        rows = _Rows(ref, split, limit, reporter)
        earlier = journal.load() if journal else {}
        results: dict[str, Scored] = {}
        failed: list[dict[str, str | None]] = []  # samples whose requests failed after every retry
        if earlier:
            reporter.info(f"resuming: {len(earlier)} sample(s) answered by an earlier run")

        def pending() -> Iterator[Row]:
            for row in rows:
                if row.sample_id in earlier:
                    results[row.sample_id] = _scored(row, earlier[row.sample_id], rollouts)
                else:
                    yield row

        # 2. ask the rest
        def answered(row: Row, got: Rollouts) -> None:
            results[row.sample_id] = _scored(row, got, rollouts)
            if journal:
                journal.add(row.sample_id, got)

        def failure(row: Row, exc: RequestFailed) -> None:
            reporter.problem(f"sample {row.sample_id}: {exc}")
            failed.append({"sample_id": row.sample_id, "error": str(exc)})

        images = _Images(ws, max_side)

        async def messages(row: Row) -> list[dict[str, Any]]:
            return screening_messages(row.question, await asyncio.to_thread(images.urls, row))

        def again(ids: set[str]) -> Iterator[Row]:
            return (r for r in iter_rows(rows.ds) if isinstance(r, Row) and r.sample_id in ids)

        batching = Batching(ws, lambda row: row.sample_id, again) if batch else None
        stats = ask_each(cot, endpoint, pending(), Asking(messages, answered, failure), rollouts=rollouts,
                         total=rows.total, description="eval", reporter=reporter, batch=batching)
        scored = rows.ordered(results)
        failed = rows.failures() + failed
        resumed = sum(sid in earlier for sid in results)
        run.count("resumed", resumed)
        run.count("done", len(scored) - resumed)
        run.count("failed", len(failed))
    if not scored:
        raise AesdataError(f"no sample of {ref.name} {split!r} got an answer from the model ({len(failed)} failed)")
    report = _report("model", ref, split, rollouts, scored, failed, key)
    report["requests"] = stats  # this run's: retries, timeouts, rate limits, server errors
    # 3. the report, then the journal goes (a kill in between keeps the journal: nothing is lost)
    if out is not None and journal is not None:
        write_report(report, out)
        journal.discard()
    return report


def run_eval(
    ws: Workspace | None,
    ref: DatasetRef,
    endpoint: Endpoint | None,
    *,
    split: str = "test",
    rollouts: int = 1,
    limit: int | None = None,
    out: Path | None = None,
    batch: bool = False,
    reporter: Reporter | None = None,
) -> tuple[dict[str, Any], Path]:
    """``aesdata eval``: the model's report (``endpoint``), or the random baseline's (None), written to ``out``
    (default: :func:`default_report_path`); returns the report and where it went."""
    if endpoint is None:
        path = out or default_report_path("random", ref, split)
        report = random_baseline(ws, ref, split=split, rollouts=rollouts, limit=limit, reporter=reporter)
        write_report(report, path)
        return report, path
    model = endpoint.model or (ws.settings.cot.model if ws else None) or "model"
    path = out or default_report_path(model, ref, split)
    report = evaluate(ws, ref, endpoint, split=split, rollouts=rollouts, limit=limit, out=path, batch=batch,
                      reporter=reporter)
    return report, path


def default_report_path(model: str, ref: DatasetRef, split: str) -> Path:
    """``eval-MODEL-VERSION-SPLIT.json`` in the current folder: the same run finds its own journal again."""
    tag = ref.version or Path(ref.path).name
    return Path("-".join(part.replace("/", "_") for part in ("eval", model, tag, split)) + ".json")


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report atomically (a killed write never leaves half a JSON file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_report(path: Path) -> dict[str, Any]:
    """A report written by :func:`write_report`; a wrong file is one clear error naming it."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AesdataError(f"{path}: cannot read the report: {exc}") from exc
    if not isinstance(report, dict) or report.get("report_format") != REPORT_FORMAT:
        raise AesdataError(f"{path}: not an aesdata eval report (format {REPORT_FORMAT})")
    return report


def table_rows(report: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The report's figures as table rows: metric, the run's value, and the random baseline's beside a model's."""

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    m, b = report["metrics"], report["baseline_random"]
    label, beside = str(report.get("model")), report.get("kind") == "model"

    def row(metric: str, value: Any, base: Any) -> dict[str, str]:
        return {"metric": metric, label: fmt(value), **({"random baseline": fmt(base)} if beside else {})}

    for key in ("samples", "exact", "proportional", "pass_at_k", "unparseable"):
        if key == "pass_at_k" and report["rollouts"] == 1:
            continue
        yield row(f"pass@{report['rollouts']}" if key == "pass_at_k" else key, m[key], b[key])
    for dim, fig in m["per_dimension"].items():
        for key in ("exact", "caught"):
            yield row(f"{dim} {key} (n={fig['samples']})", fig[key], b["per_dimension"][dim][key])
    for dim, fig in (report.get("grounding") or {}).items():
        yield row(f"{dim} grounding IoU (n={fig['samples']})", fig["iou"], None)

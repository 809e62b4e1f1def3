"""``aesdata mine-hard``: how often a model solves each training sample, so trainers can oversample the hard ones.

Every labelled sample that is not in the test split of a published version (test is sticky across
versions, so those never become training data) is asked K times at temperature > 0 with the screening
prompt; the share of exactly right rollouts is its pass rate for that model.

Table ``difficulty`` (migration ``m500_eval_difficulty``), one row per ``(sample_id, model)``:
``answer`` (the label's answer scored against; a relabelled sample's row is stale and re-mined),
``prompt_hash``, ``temperature``, ``rollouts`` (K), ``passes``, ``pass_rate`` (= passes / K),
``proportional`` (mean partial credit), ``unparseable``, ``predictions`` (JSON, one canonical answer or
null per rollout), ``prompt_tokens``, ``completion_tokens``, ``cost_usd``, ``updated_at``.

Publish reads the rows through :func:`aesdata.store.difficulties` (``difficulty`` = 1 - pass rate, in
[0, 1], the ``difficulty`` column); a sample is **hard** (the ``hard`` config) when the model mostly
fails it: pass rate below :data:`aesdata.store.HARD_BELOW`.

Resumable: each sample's row commits on its own as soon as its K rollouts are in; a re-run asks only
samples without a current row (same answer, prompt, K and temperature), unless ``--redo``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aesdata import store
from aesdata.evaluate.asking import Asking, Endpoint, Rollouts, ask_each, screening_messages
from aesdata.evaluate.scoring import score_sample
from aesdata.llm.client import RequestFailed
from aesdata.llm.images import ImageEncoder, image_cache
from aesdata.progress import LogReporter, Reporter
from aesdata.prompting import PROMPT_HASH, QUESTION
from aesdata.schema import Label, Sample, format_answer, utcnow
from aesdata.workspace import Workspace


def _test_samples(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT DISTINCT sample_id FROM version_rows WHERE split = 'test'")}


def _is_current(row: sqlite3.Row | None, label: Label, rollouts: int, temperature: float) -> bool:
    return (
        row is not None
        and row["answer"] == label.judgement.answer_text
        and row["prompt_hash"] == PROMPT_HASH
        and row["rollouts"] == rollouts
        and row["temperature"] == temperature
    )


def _save(ws: Workspace, sample_id: str, model: str, label: Label, got: Rollouts, temperature: float) -> float:
    """Commit one sample's row; return its pass rate."""
    answer = frozenset(label.judgement.answer)
    score = score_sample(got.predictions, answer, label.judgement.defects)
    passes = round(score.exact * score.rollouts)
    preds = [None if p is None else format_answer(p) for p in got.predictions]
    with ws.transaction() as db:
        db.execute(
            "INSERT INTO difficulty (sample_id, model, answer, prompt_hash, temperature, rollouts, passes,"
            " pass_rate, proportional, unparseable, predictions, prompt_tokens, completion_tokens, cost_usd,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(sample_id, model) DO UPDATE SET answer = excluded.answer,"
            " prompt_hash = excluded.prompt_hash, temperature = excluded.temperature,"
            " rollouts = excluded.rollouts, passes = excluded.passes, pass_rate = excluded.pass_rate,"
            " proportional = excluded.proportional, unparseable = excluded.unparseable,"
            " predictions = excluded.predictions, prompt_tokens = excluded.prompt_tokens,"
            " completion_tokens = excluded.completion_tokens, cost_usd = excluded.cost_usd,"
            " updated_at = excluded.updated_at",
            (
                sample_id,
                model,
                label.judgement.answer_text,
                PROMPT_HASH,
                temperature,
                score.rollouts,
                passes,
                score.exact,
                score.proportional,
                score.unparseable,
                json.dumps(preds),
                got.prompt_tokens,
                got.completion_tokens,
                got.cost_usd,
                utcnow().isoformat(),
            ),
        )
    return score.exact


class _Miner:
    """The mine-hard side of :class:`Asking`: workspace images in, one committed row per sample out."""

    def __init__(self, ws: Workspace, model: str, encoder: ImageEncoder, temperature: float,
                 reporter: Reporter) -> None:
        self.ws, self.model, self.encoder, self.temperature = ws, model, encoder, temperature
        self.reporter = reporter
        self.counts = {"done": 0, "failed": 0, "hard": 0}

    async def messages(self, item: tuple[Sample, Label]) -> list[dict[str, Any]]:
        sample = item[0]
        shas = [sample.source_id, *(c.sha256 for c in store.get_candidates(self.ws.db, sample.id))]
        return screening_messages(QUESTION, await self.encoder.urls(shas))

    def answered(self, item: tuple[Sample, Label], got: Rollouts) -> None:
        rate = _save(self.ws, item[0].id, self.model, item[1], got, self.temperature)
        self.counts["done"] += 1
        self.counts["hard"] += rate < store.HARD_BELOW

    def failed(self, item: tuple[Sample, Label], exc: RequestFailed) -> None:
        self.reporter.problem(f"sample {item[0].id}: {exc}")
        self.counts["failed"] += 1


def mine_hard(
    ws: Workspace,
    endpoint: Endpoint,
    *,
    rollouts: int = 4,
    limit: int | None = None,
    redo: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Mine every training sample still to do; return counts and the pass-rate figures of the model."""
    reporter = reporter or LogReporter()
    cot = ws.settings.cot
    endpoint = endpoint.resolved(cot)
    model = str(endpoint.model)
    params = {**endpoint.params(), "rollouts": rollouts, "limit": limit, "redo": redo, "prompt_hash": PROMPT_HASH}
    with ws.run("mine-hard", params) as run:
        # 1. what is still to do
        test = _test_samples(ws.db)
        todo: list[tuple[Sample, Label]] = []
        counts = {"test_split": 0, "needs_review": 0, "already": 0}
        for sample, label in store.iter_labelled(ws.db):
            row = ws.db.execute(
                "SELECT * FROM difficulty WHERE sample_id = ? AND model = ?", (sample.id, model)
            ).fetchone()
            if sample.id in test:
                counts["test_split"] += 1
            elif label.needs_review:
                counts["needs_review"] += 1
            elif not redo and _is_current(row, label, rollouts, endpoint.temperature):
                counts["already"] += 1
            elif limit is None or len(todo) < limit:
                todo.append((sample, label))
        # 2. ask and store, sample by sample
        encoder = ImageEncoder(ws.blobs, max_side=int(endpoint.max_side), cache_size=64,
                               cache_dir=image_cache(ws))
        miner = _Miner(ws, model, encoder, endpoint.temperature, reporter)
        if todo:
            ask_each(cot, endpoint, todo, Asking(miner.messages, miner.answered, miner.failed), rollouts=rollouts,
                     total=len(todo), description="mine-hard", reporter=reporter)
        mined = miner.counts
        for key, n in {**counts, **mined}.items():
            run.count(key, n)
    current = store.difficulties(ws.db, model)
    rates = [d.pass_rate for d in current.values()]
    return {
        "model": model,
        "mined_now": mined["done"],
        "failed": mined["failed"],
        "skipped_test_split": counts["test_split"],
        "skipped_needs_review": counts["needs_review"],
        "already_mined": counts["already"],
        "samples_with_difficulty": len(current),
        "hard": sum(d.hard for d in current.values()),
        "mean_pass_rate": round(sum(rates) / len(rates), 4) if rates else None,
    }

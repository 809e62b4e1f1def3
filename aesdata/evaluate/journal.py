"""Resume a killed or interrupted eval: each sample's replies are appended to a journal as they arrive.

The journal is a JSONL file beside the report (``REPORT.partial.jsonl``): a header line with the run's
key (model, endpoint, dataset, split, K, sampling, prompt hash), then one line per answered sample. A
re-run with the same key asks only the samples not in it; a different key starts a fresh journal. The
journal is removed once the report is written. A line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aesdata.evaluate.answers import parse_reply
from aesdata.evaluate.asking import Rollouts

JOURNAL_FORMAT = 1


def journal_path(report: Path) -> Path:
    return report.with_name(f"{report.name}.partial.jsonl")


class Journal:
    """Append-only record of answered samples for one eval key."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path, self.key = path, key

    def load(self) -> dict[str, Rollouts]:
        """Samples answered by an earlier run with the same key; starts a fresh journal otherwise."""
        done: dict[str, Rollouts] = {}
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.is_file() else []
        header = _json(lines[0]) if lines else None
        if header != {"journal": JOURNAL_FORMAT, "key": self.key}:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"journal": JOURNAL_FORMAT, "key": self.key}) + "\n", encoding="utf-8")
            return done
        for line in lines[1:]:
            entry = _json(line)
            if entry is None:
                continue
            texts = tuple(entry["texts"])
            done[entry["sample_id"]] = Rollouts(
                texts=texts,
                predictions=tuple(parse_reply(t) for t in texts),
                prompt_tokens=entry["prompt_tokens"],
                completion_tokens=entry["completion_tokens"],
                cost_usd=entry["cost_usd"],
            )
        return done

    def add(self, sample_id: str, got: Rollouts) -> None:
        """Append one answered sample (flushed at once: a kill loses at most the line being written)."""
        line = {"sample_id": sample_id, "texts": list(got.texts), "prompt_tokens": got.prompt_tokens,
                "completion_tokens": got.completion_tokens, "cost_usd": got.cost_usd}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None

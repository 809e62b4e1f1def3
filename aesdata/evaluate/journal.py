"""Resume a killed or interrupted eval: each sample's replies are appended to a journal as they arrive.

The journal is a JSONL file beside the report (``REPORT.partial.jsonl``): a header line with the run's
key (model, endpoint, dataset, split, K, sampling, prompt hash), then one line per answered sample. A
re-run with the same key asks only the samples not in it; a different key starts a fresh journal. The
journal is removed once the report is written. A line cut short (a crash or a full disk mid-write) is cut
off when the journal is next loaded, so the next line appended starts on a line of its own.
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
        lines = self._whole_lines()
        header = _json(lines[0]) if lines else None
        if header != {"journal": JOURNAL_FORMAT, "key": self.key}:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"journal": JOURNAL_FORMAT, "key": self.key}) + "\n", encoding="utf-8")
            return done
        for line in lines[1:]:
            entry = _json(line)
            try:
                texts = tuple(str(t) for t in entry["texts"])
                done[str(entry["sample_id"])] = Rollouts(
                    texts=texts,
                    predictions=tuple(parse_reply(t) for t in texts),
                    prompt_tokens=int(entry["prompt_tokens"]),
                    completion_tokens=int(entry["completion_tokens"]),
                    cost_usd=float(entry["cost_usd"]),
                )
            except (TypeError, KeyError, ValueError):  # not a line this module wrote: asked again
                continue
        return done

    def _whole_lines(self) -> list[str]:
        """The journal's complete lines; a torn last line is truncated away on disk."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(len(whole))
        return whole.decode("utf-8", errors="replace").splitlines()

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

"""``aesdata export``: a published version as JSONL + image files in the shape trainers read.

Layout of ``--out DIR`` (image paths in the JSONL are relative to DIR)::

    DIR/export.json                      what was exported: format, dataset, version, prompt hash, counts
    DIR/{split}.jsonl                    one sample per line
    DIR/images/<sample_id>/source.png    and A.png ... D.png, the published bytes untouched

* ``sft`` (supervised fine-tuning on the rationales, TRL ``SFTTrainer`` conversational vision format):
  ``{"sample_id", "messages": [user, assistant], "images": [5 paths]}``; the user message holds one
  ``{"type": "image"}`` placeholder per entry of ``images``, in order; the assistant message is the
  rationale ``<think>…</think><answer>…</answer>``. Rows without a rationale are skipped and counted.
* ``grpo`` (reinforcement learning with the scorer as reward, TRL ``GRPOTrainer``):
  ``{"sample_id", "prompt": [user], "images": [5 paths], "solution": "A,C", "difficulty", "regions"}``;
  ``solution`` is what :func:`aesdata.evaluate.reward.proportional_reward` scores completions against;
  ``regions`` (slot -> ``[{dimension, box: [x, y, w, h]}]``, fractions of the image) is there for reward
  functions that also score where a model says the defects are.

The folder is written beside its destination under a temporary name, read back with
``datasets.load_dataset("json")`` and checked (rows, placeholders against images, every image file and
its bytes, answers), and only then renamed into place: a crash never leaves a half export at DIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import datasets

from aesdata.errors import AesdataError
from aesdata.evaluate._runs import recorded
from aesdata.evaluate.dataset import IMAGE_NAMES, DatasetRef, Row, iter_rows, load_splits
from aesdata.progress import LogReporter, Reporter
from aesdata.prompting import PROMPT_HASH, user_content
from aesdata.schema import SLOTS, format_answer, parse_answer, parse_rationale
from aesdata.workspace import Workspace

Format = Literal["sft", "grpo"]
FORMATS: tuple[Format, ...] = ("sft", "grpo")
MANIFEST = "export.json"
_IMAGE_PART = {"type": "image"}
_EXTENSIONS = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp"}


def _extension(data: bytes) -> str:
    return next((ext for magic, ext in _EXTENSIONS.items() if data.startswith(magic)), ".img")


def image_paths(row: Row) -> list[str]:
    """Where the row's five images go, relative to the export folder."""
    return [
        f"images/{row.sample_id}/{name}{_extension(data)}" for name, data in zip(IMAGE_NAMES, row.images, strict=True)
    ]


def _write_images(root: Path, paths: list[str], row: Row) -> None:
    (root / paths[0]).parent.mkdir(parents=True, exist_ok=True)
    for rel, data in zip(paths, row.images, strict=True):
        (root / rel).write_bytes(data)


def to_record(fmt: Format, row: Row, images: list[str]) -> dict[str, Any] | None:
    """The JSONL record of one row in ``fmt``; None when the row cannot be used (SFT without rationale)."""
    user = {"role": "user", "content": user_content(row.question, lambda _: dict(_IMAGE_PART))}
    if fmt == "sft":
        if not row.rationale:
            return None
        assistant = {"role": "assistant", "content": [{"type": "text", "text": row.rationale}]}
        return {"sample_id": row.sample_id, "messages": [user, assistant], "images": images}
    return {
        "sample_id": row.sample_id,
        "prompt": [user],
        "images": images,
        "solution": format_answer(row.answer),
        "difficulty": row.difficulty,
        "regions": {slot: [r.model_dump() for r in row.regions.get(slot, ())] for slot in SLOTS},
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate(root: Path, fmt: Format, expected: dict[str, dict[str, str]]) -> None:
    """Read the export back with ``datasets`` and check it against what was written.

    ``expected[split][relative image path]`` is the sha256 of the bytes that path must hold.
    """
    for split, images in expected.items():
        ds = datasets.load_dataset("json", data_files=str(root / f"{split}.jsonl"), split="train", streaming=True)
        seen: set[str] = set()
        for rec in ds:
            sid = rec["sample_id"]
            turns = rec["messages"] if fmt == "sft" else rec["prompt"]
            placeholders = sum(p["type"] == "image" for t in turns for p in t["content"])
            if placeholders != len(rec["images"]) or len(rec["images"]) != len(IMAGE_NAMES):
                raise AesdataError(
                    f"export check: {split} sample {sid}: {placeholders} image placeholders "
                    f"for {len(rec['images'])} images"
                )
            for rel in rec["images"]:
                path = root / rel
                if not path.is_file() or _sha(path.read_bytes()) != images.get(rel):
                    raise AesdataError(f"export check: {split} sample {sid}: {rel} missing or not as written")
                seen.add(rel)
            if fmt == "sft":
                parse_rationale(rec["messages"][-1]["content"][0]["text"])
            else:
                parse_answer(rec["solution"])
        if seen != set(images):
            raise AesdataError(f"export check: {split}: {len(set(images) - seen)} image(s) not referenced back")


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A fresh sibling folder renamed to ``out`` on success; removed on failure (and on the next run)."""
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # checked empty before the export began
    os.replace(staging, out)


def export(
    ws: Workspace | None,
    ref: DatasetRef,
    out: Path,
    *,
    fmt: Format,
    splits: Sequence[str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, int]:
    """Write ``ref`` (``splits``, default all) as a ``fmt`` export at ``out``, which must not exist or be
    empty; return counts."""
    reporter = reporter or LogReporter()
    # 1. check inputs before writing anything
    if fmt not in FORMATS:
        raise AesdataError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AesdataError(
            f"{out}: exists and is not empty; exports never overwrite",
            hint="choose a new --out folder or remove this one",
        )
    loaded = load_splits(ref, splits)
    params = {"format": fmt, "dataset": ref.name, "version": ref.version, "config": ref.config, "out": str(out),
              "splits": list(loaded)}
    summary = {"written": 0, "skipped": 0, "failed": 0}
    expected: dict[str, dict[str, str]] = {}
    with recorded(ws, "export", params) as run, _staging(out) as root:
        # 2. stream rows into JSONL + image files
        for split, ds in loaded.items():
            expected[split] = {}
            with (
                (root / f"{split}.jsonl").open("w", encoding="utf-8") as fh,
                reporter.task(f"export {split}", None) as task,
            ):
                for item in iter_rows(ds):
                    task.advance()
                    if isinstance(item, ValueError):
                        reporter.problem(f"{ref.name} {split}: {item}")
                        summary["failed"] += 1
                        continue
                    images = image_paths(item)
                    record = to_record(fmt, item, images)
                    if record is None:
                        summary["skipped"] += 1
                        continue
                    _write_images(root, images, item)
                    expected[split].update({p: _sha(d) for p, d in zip(images, item.images, strict=True)})
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    summary["written"] += 1
                    summary[split] = summary.get(split, 0) + 1
        # 3. read everything back before it is renamed into place
        for split in loaded:
            summary.setdefault(split, 0)
        validate(root, fmt, expected)
        manifest = {**params, "prompt_hash": PROMPT_HASH, "counts": summary}
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for key, n in summary.items():
            run.count(key, n)
    return summary

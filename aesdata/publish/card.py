"""The dataset card (``README.md``): YAML front matter the Hub reads, and a body people read.

Figures come from :class:`CardStats`, filled row by row while the shards are written, so the card
describes exactly what was published. Configs are a list of :class:`Config`: a later config (e.g.
``hard``, written by eval into its own folder) is one more entry.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from huggingface_hub import DatasetCardData

from aesdata.publish.select import SelectCounts
from aesdata.publish.versions import Changelog
from aesdata.schema import DIMENSIONS, PublishedRow

TASK_CATEGORIES = ["visual-question-answering", "image-text-to-text"]
FIELDS = [
    ["sample_id", "stable id of the sample"],
    ["source", "the product photo"],
    ["candidates", "four generated images, slots A-D in order"],
    ["question", "the screening question"],
    ["answer", "acceptable slots, comma-separated, or `none`"],
    ["defects", "defect dimensions per slot (empty: acceptable)"],
    ["regions", "where the defects are, per slot: `{dimension, box: [x, y, w, h]}` as fractions of the image"],
    ["rationale", "chain-of-thought reasoning to the answer"],
    ["rationale_mode", "answer-driven, automated, manual or template"],
    ["difficulty", "1 - the share of a mined model's rollouts that were exactly right, when known"],
    ["provenance", "generator, seeds, annotator pseudonyms, agreement, label origin, rationale model"],
]
_CONTENT_HASH_RE = re.compile(r"^Content hash: `([0-9a-f]{64})`$", re.M)


@dataclass(frozen=True)
class Config:
    """One ``configs`` entry: shards ``{folder}/{split}-*`` for each split that has rows."""

    name: str
    folder: str
    splits: tuple[str, ...]

    def yaml(self) -> dict[str, object]:
        entry: dict[str, object] = {
            "config_name": self.name,
            "data_files": [{"split": s, "path": f"{self.folder}/{s}-*"} for s in self.splits],
        }
        if self.name == "default":
            entry["default"] = True
        return entry


@dataclass
class CardStats:
    """Counts accumulated over the published rows."""

    rows: Counter[str] = field(default_factory=Counter)  # split -> rows
    samples_with: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, dim) -> samples
    candidates_with: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, dim) -> candidates
    acceptable: Counter[tuple[str, int]] = field(default_factory=Counter)  # (split, n acceptable) -> rows
    origins: Counter[str] = field(default_factory=Counter)
    rationales: Counter[tuple[str, str]] = field(default_factory=Counter)  # (mode, model) -> rows
    generators: Counter[str] = field(default_factory=Counter)
    annotators: set[str] = field(default_factory=set)
    overlaps: Counter[int] = field(default_factory=Counter)  # overlap asked for -> human-labelled rows
    left_out: set[str] = field(default_factory=set)
    annotation_quality: dict[str, Any] | None = None  # the team's figures as of the last pull
    agreements: int = 0
    agreement_sum: float = 0.0
    full_agreement: int = 0
    difficulties: int = 0
    hard_rows: int = 0

    def add(self, row: PublishedRow) -> None:
        split = row.split
        self.rows[split] += 1
        for dim in DIMENSIONS:
            n = sum(dim in dims for dims in row.defects.values())
            self.candidates_with[split, dim] += n
            self.samples_with[split, dim] += n > 0
        self.acceptable[split, sum(not dims for dims in row.defects.values())] += 1
        prov = row.provenance
        self.origins[prov.label_origin] += 1
        self.rationales[row.rationale_mode or "none", prov.rationale_model or "-"] += 1
        self.generators[prov.generator] += 1
        self.annotators.update(prov.annotators)
        if prov.overlap is not None:
            self.overlaps[prov.overlap] += 1
        self.left_out.update(prov.left_out)
        self.difficulties += row.difficulty is not None
        if prov.agreement is not None:
            self.agreements += 1
            self.agreement_sum += prov.agreement
            self.full_agreement += prov.agreement >= 1.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in ("train", "test") if self.rows[s])


def size_category(n: int) -> str:
    for bound, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < bound:
            return name
    return "10M<n<100M"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _team_section(stats: CardStats) -> str:
    """Overlap, annotators left out, Krippendorff's alpha per dimension and each annotator's gold accuracy."""
    overlap = ", ".join(f"{n} annotator(s): {rows} rows" for n, rows in sorted(stats.overlaps.items())) or "n/a"
    lines = [
        f"- each task was handed to (overlap): {overlap}",
        f"- annotators left out of the consensus for low gold accuracy: {len(stats.left_out)}",
    ]
    quality = stats.annotation_quality
    if not quality:
        return "\n".join(lines)
    box_iou = quality.get("box_iou", {})  # figures pulled before boxes were scored have none
    alpha = [[dim, _fmt(value), _fmt(box_iou.get(dim)) if dim in DIMENSIONS else ""]
             for dim, value in quality["alpha"].items()]
    headers = ["annotator", "tasks", "gold tasks", "gold exact", "gold proportional", "agreement", "left out"]
    people = [
        [a["annotator"], a["tasks"], a["gold_tasks"], _fmt(a["gold_exact"]), _fmt(a["gold_proportional"]),
         _fmt(a["agreement"]), "yes" if a["left_out"] else ""]
        for a in quality["annotators"]
    ]
    return "\n".join(lines) + f"""

Krippendorff's alpha (nominal) over samples with two or more annotators, on each slot's acceptance and on
each dimension's tags; box IoU: the mean pairwise IoU of two annotators' boxes of a defect both tagged
(where the defects are, as far as people agree on it):

{_table(["", "alpha", "box IoU"], alpha)}

Annotators (pseudonyms), scored on {quality["gold_samples"]} gold sample(s) with a known answer (exact and
proportional accuracy) and against the consensus of the others; consensus leaves out those under
{quality["min_gold_accuracy"]:g} gold accuracy. Figures over every annotation at the last `annotate pull`.

{_table(headers, people)}{_localisation(quality["annotators"])}"""


def _localisation(annotators: list[dict[str, Any]]) -> str:
    """Each annotator's boxes against the gold boxes (IoU per dimension), when some gold answer has boxes."""
    rows = [[a["annotator"], *(_fmt(a.get(f"located_{d}")) for d in DIMENSIONS)] for a in annotators]
    if all(cell == "n/a" for row in rows for cell in row[1:]):
        return ""
    return f"""

Localisation: the IoU of each annotator's boxes with the boxes of the gold answers, per dimension.

{_table(["annotator", *DIMENSIONS], rows)}"""


def _changelog_section(log: Changelog | None) -> str:
    if log is None or log.old is None:
        return "First published version."
    parts = [f"Against v{log.old}:", ""]
    kinds = (
        ("added", log.added),
        ("removed", log.removed),
        ("relabelled", log.relabelled),
        ("rationale changed", log.rationale_changed),
        ("moved from train to test", log.moved_to_test),
    )
    for name, ids in kinds:
        more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
        shown = ", ".join(f"`{i}`" for i in ids[:10]) + more
        parts.append(f"- {name}: {len(ids)}" + (f" ({shown})" if ids else ""))
    return "\n".join(parts)


def _difficulty_section(stats: CardStats, mined_by: str | None) -> str:
    if not stats.difficulties:
        return "Not measured for this version (`aesdata mine-hard` fills the `difficulty` column)."
    return (
        f"`difficulty` is 1 - the share of rollouts that `{mined_by}` answered exactly right, known for "
        f"{stats.difficulties} rows. The `hard` config holds the {stats.hard_rows} training rows it mostly "
        'fails: `load_dataset(..., "hard")`.'
    )


def _left_out_section(counts: SelectCounts | None) -> str:
    """What a workspace held that this version does not publish, and why."""
    if counts is None:
        return "Not recorded for this version."
    lines = [
        f"- samples whose label waits for review (annotators disagreed): {counts.needs_review}",
        f"- samples without a usable rationale (published only with one): {counts.no_rationale}",
        f"- samples with missing images or not four candidates: {counts.bad}",
        f"- samples with a rationale left out as stale (written from another judgement than the published"
        f" label): {counts.stale_rationale}",
    ]
    return "\n".join(lines)


def render(
    *,
    name: str,
    version: str,
    content_hash: str,
    created_at: datetime,
    license: str,
    stats: CardStats,
    changelog: Changelog | None,
    configs: list[Config],
    test_fraction: float,
    repo_id: str | None,
    mined_by: str | None = None,
    left_out: SelectCounts | None = None,
) -> str:
    """The whole README.md."""
    meta = DatasetCardData(
        license=license,
        language=["en"],
        task_categories=TASK_CATEGORIES,
        size_categories=[size_category(stats.total)],
        pretty_name=name,
        tags=["image-screening", "synthetic", "chain-of-thought", "aesdata"],
        configs=[c.yaml() for c in configs],
    )
    splits = stats.splits
    dims_rows = [
        [d, *(f"{stats.samples_with[s, d]} / {stats.candidates_with[s, d]}" for s in splits)] for d in DIMENSIONS
    ]
    answer_rows = [[k, *(stats.acceptable[s, k] for s in splits)] for k in range(5)]
    mean_agreement = f"{stats.agreement_sum / stats.agreements:.3f}" if stats.agreements else "n/a"
    load_from = repo_id or "path/to/this/folder"
    revision = f', revision="v{version}"' if repo_id else ""
    body = f"""
# {name}

An image-screening dataset built with aesdata: each row is a product photo (the
**source**), four candidates generated from it (slots **A-D**), the set of acceptable candidates, the defects
of each candidate along four dimensions (`{"`, `".join(DIMENSIONS)}`), and a chain-of-thought
**rationale** in `<think>…</think><answer>…</answer>` form.

## Version

v{version}, published {created_at:%Y-%m-%d %H:%M} UTC.

Content hash: `{content_hash}`

## Splits

{_table(["split", "rows"], [[s, stats.rows[s]] for s in splits] + [["total", stats.total]])}

The split is by source group: sources that are near-duplicates of each other always land in the same
split, so no near-duplicate crosses from train to test. Assignment is stable across versions (a test sample
stays in test) and stratified by the defect dimensions present; target test fraction {test_fraction:g}.

## Defects per dimension

Samples with at least one defective candidate / defective candidates, per split.

{_table(["dimension", *splits], dims_rows)}

Acceptable candidates per sample:

{_table(["acceptable", *splits], answer_rows)}

## Labels and agreement

Human labels are the consensus of annotators in Label Studio; synthetic labels are the defects the synthetic
generator drew in on purpose. Where a sample has both, the human label is published.

{_table(["", "rows"], [[f"{o} labels", n] for o, n in sorted(stats.origins.items())])}

- annotators (pseudonymised): {len(stats.annotators)}
- rows with an agreement figure: {stats.agreements}; mean agreement {mean_agreement};
  full agreement on {stats.full_agreement}

{_team_section(stats)}

## Rationales

{_table(["mode", "model", "rows"], [[m, model, n] for (m, model), n in sorted(stats.rationales.items())])}

## Generators

{_table(["generator", "rows"], [[g, n] for g, n in sorted(stats.generators.items())])}

## Left out

{_left_out_section(left_out)}

## Difficulty

{_difficulty_section(stats, mined_by)}

## Changelog

{_changelog_section(changelog)}

## How to load

```python
from datasets import load_dataset

ds = load_dataset("{load_from}"{revision})
row = ds["{splits[0] if splits else "train"}"][0]
row["source"]        # PIL image
row["candidates"]    # four PIL images, slots A-D
row["answer"]        # e.g. "A,C" or "none"
row["defects"]       # {{"A": [...], "B": [...], "C": [...], "D": [...]}}
row["regions"]       # {{"A": [{{"dimension": ..., "box": [x, y, w, h]}}], ...}} (fractions of the image)
row["rationale"]     # "<think>…</think><answer>…</answer>" (None when no rationale)
```

## Fields

{_table(["field", "meaning"], FIELDS)}
"""
    return f"---\n{meta.to_yaml()}\n---\n{body}"


def content_hash_of(card: str) -> str | None:
    """The content hash a card states (to recognise a folder this tool wrote)."""
    m = _CONTENT_HASH_RE.search(card)
    return m[1] if m else None

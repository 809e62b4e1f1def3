"""Read a published dataset version for evaluation and export, through ``datasets.load_dataset``.

A version is found in the workspace's ``versions`` table (its ``out_dir``, else its Hub repo at the
``vX.Y.Z`` tag); ``--dataset`` names a folder or a Hub repo directly. Images are read undecoded, as the
bytes stored in the parquet shards, so export copies them untouched and eval encodes each one once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets

from aesdata import store
from aesdata.errors import AesdataError
from aesdata.schema import DIMENSIONS, SLOTS, Region, parse_answer
from aesdata.workspace import Workspace

#: Image columns of a published row, in the order a model is shown them: the source, then A-D.
IMAGE_NAMES: tuple[str, ...] = ("source", *SLOTS)


@dataclass(frozen=True)
class DatasetRef:
    """Where a published dataset lives, and how to name it in reports."""

    path: str
    revision: str | None = None
    version: str | None = None
    config: str | None = None  # a named config of the dataset, e.g. publish's ``hard``

    @property
    def name(self) -> str:
        name = f"{self.path}@{self.revision}" if self.revision else self.path
        return f"{name}[{self.config}]" if self.config else name


@dataclass(frozen=True)
class Row:
    """One published sample as eval and export need it (images as their stored, encoded bytes)."""

    sample_id: str
    question: str
    answer: frozenset[str]
    defects: dict[str, list[str]]
    images: tuple[bytes, ...]
    rationale: str | None
    difficulty: float | None
    regions: dict[str, list[Region]] = field(default_factory=dict)  # slot -> where its defects are


def resolve(ws: Workspace | None, *, version: str | None, dataset: str | None, config: str | None = None) -> DatasetRef:
    """The dataset named by ``--dataset``, or the published ``--version`` of the workspace."""
    if (version is None) == (dataset is None):
        raise AesdataError("name the data with exactly one of --version X.Y.Z or --dataset DIR_OR_REPO")
    return replace(_locate(ws, version, dataset), config=config)


def _locate(ws: Workspace | None, version: str | None, dataset: str | None) -> DatasetRef:
    if dataset is not None:
        return DatasetRef(path=dataset)
    assert version is not None and ws is not None
    known = store.get_versions(ws.db)
    for v in known:
        if v.version == version:
            if v.out_dir and Path(v.out_dir).is_dir():
                return DatasetRef(path=v.out_dir, version=version)
            if v.repo_id:
                return DatasetRef(path=v.repo_id, revision=f"v{version}", version=version)
            raise AesdataError(f"version {version}: its folder {v.out_dir} is gone and it was not pushed to a repo")
    listed = ", ".join(v.version for v in known) or "none yet"
    raise AesdataError(
        f"version {version} is not published in {ws.root} (published: {listed})",
        hint="see `aesdata versions`, or publish it with `aesdata publish --version X.Y.Z`",
    )


def load_splits(ref: DatasetRef, splits: Sequence[str] | None = None) -> dict[str, datasets.IterableDataset]:
    """The named splits (default: every split there is), streamed with images undecoded.

    Streaming, not ``load_dataset``'s prepared Arrow cache: rows are read straight from the parquet shards
    (local or on the Hub), nothing is copied to ``~/.cache``, and a folder is always read as it is now.
    The prepared cache of a local folder whose card declares its configs is keyed by the folder's *name*
    and the card (datasets 5), so two published folders both called ``v1.0.0`` (two workspaces, or one
    folder re-created) can silently read each other's rows; streaming has no such cache.
    """
    try:
        dd = datasets.load_dataset(ref.path, ref.config, revision=ref.revision, streaming=True)
    except (FileNotFoundError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise AesdataError(f"{ref.name}: cannot load the dataset: {exc}") from exc
    missing = [s for s in splits or () if s not in dd]
    if missing:
        raise AesdataError(f"{ref.name}: no split {missing[0]!r} (splits: {', '.join(dd)})")
    return {name: dd[name].decode(False) for name in (splits or list(dd))}


def load_split(ref: DatasetRef, split: str) -> datasets.IterableDataset:
    """One split, streamed with images undecoded (see :func:`load_splits`)."""
    return load_splits(ref, [split])[split]


def _image_bytes(value: Mapping[str, Any] | None) -> bytes:
    if value and value.get("bytes"):
        return value["bytes"]
    if value and value.get("path") and Path(value["path"]).is_file():
        return Path(value["path"]).read_bytes()
    raise ValueError("an image has neither bytes nor a readable path")


def _defects(value: Any) -> dict[str, list[str]]:
    """Defects per slot from a struct column or its JSON text; unknown names are refused."""
    data = json.loads(value) if isinstance(value, str) else value
    out = {slot: list(data.get(slot) or ()) for slot in SLOTS}
    unknown = {d for dims in out.values() for d in dims} - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"unknown defect dimension(s) {', '.join(sorted(unknown))}")
    return out


def _regions(value: Any, defects: dict[str, list[str]]) -> dict[str, list[Region]]:
    """Regions per slot (a dataset without the column has none); a region of an untagged defect is refused."""
    data = json.loads(value) if isinstance(value, str) else (value or {})
    out = {slot: [Region.model_validate(r) for r in data.get(slot) or ()] for slot in SLOTS}
    for slot, regions in out.items():
        untagged = sorted({r.dimension for r in regions} - set(defects[slot]))
        if untagged:
            raise ValueError(f"slot {slot} has a region for {', '.join(untagged)} but no such defect")
    return {slot: regions for slot, regions in out.items() if regions}


def to_row(record: Mapping[str, Any]) -> Row:
    """A published record (images undecoded) as a :class:`Row`; ValueError names the sample and the fault."""
    sid = record.get("sample_id") or "?"
    try:
        candidates = record.get("candidates") or []
        if len(candidates) != len(SLOTS):
            raise ValueError(f"{len(candidates)} candidate images, expected {len(SLOTS)}")
        question = record["question"]
        if not isinstance(question, str) or not question.strip():
            raise ValueError("no question")
        defects = _defects(record.get("defects") or {})
        return Row(
            sample_id=sid,
            question=question,
            answer=parse_answer(record["answer"]),
            defects=defects,
            regions=_regions(record.get("regions"), defects),
            images=tuple(_image_bytes(img) for img in [record.get("source"), *candidates]),
            rationale=record.get("rationale"),
            difficulty=record.get("difficulty"),
        )
    except KeyError as exc:
        raise ValueError(f"sample {sid}: no column {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"sample {sid}: {exc}") from exc


def iter_rows(ds: datasets.IterableDataset) -> Iterator[Row | ValueError]:
    """Rows in order; a malformed one comes back as the error naming it, so callers report and go on."""
    for record in ds:
        try:
            yield to_row(record)
        except ValueError as exc:
            yield exc

"""Stream published rows into Hub-layout parquet shards: ``data/{split}-NNNNN-of-NNNNN.parquet``.

Rows are buffered only up to ``batch_bytes`` and then written as one row group through a pyarrow
``ParquetWriter``, so memory stays flat however large the dataset is. A shard is closed once it
holds ``max_shard_bytes``; shards are named with their final count when the split is finished.
The parquet schema carries the ``datasets`` features, so ``load_dataset`` decodes images as images.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Features, Image, List, Value

from aesdata.schema import SLOTS, PublishedRow

FEATURES = Features(
    {
        "sample_id": Value("string"),
        "source": Image(),
        "candidates": List(Image(), length=len(SLOTS)),
        "question": Value("string"),
        "answer": Value("string"),
        "defects": {slot: List(Value("string")) for slot in SLOTS},
        "regions": {slot: List({"dimension": Value("string"), "box": List(Value("float64"), length=4)})
                    for slot in SLOTS},
        "rationale": Value("string"),
        "rationale_mode": Value("string"),
        "difficulty": Value("float64"),
        "provenance": {
            "generator": Value("string"),
            "seeds": List(Value("int64")),
            "annotators": List(Value("string")),
            "agreement": Value("float64"),
            "label_origin": Value("string"),
            "rationale_model": Value("string"),
        },
    }
)

DATA_DIR = "data"  # the ``default`` config
HARD_DIR = "hard"  # the ``hard`` config: training rows the most recently mined model mostly fails
MAX_SHARD_BYTES = 500_000_000  # the Hub's guidance for parquet shards is a few hundred MB
BATCH_BYTES = 32_000_000  # one row group; also the most a writer buffers
BATCH_ROWS = 500  # ... and at most this many rows (Python row dicts cost ~10 KB each beyond their images)


#: Image bytes are PNG already: compressing or dictionary-encoding them again only costs time and memory.
IMAGE_BYTES = ("source.bytes", "candidates.list.element.bytes")


def _leaves(type_: pa.DataType, path: str) -> Iterator[str]:
    """Parquet leaf column paths (``provenance.seeds.list.element``) under one arrow field."""
    if pa.types.is_struct(type_):
        for field in type_:
            yield from _leaves(field.type, f"{path}.{field.name}")
    elif pa.types.is_list(type_) or pa.types.is_fixed_size_list(type_) or pa.types.is_large_list(type_):
        yield from _leaves(type_.value_type, f"{path}.list.element")
    else:
        yield path


def _column_options(schema: pa.Schema) -> dict[str, Any]:
    leaves = [leaf for field in schema for leaf in _leaves(field.type, field.name)]
    return {
        "compression": {c: "NONE" if c in IMAGE_BYTES else "SNAPPY" for c in leaves},
        "use_dictionary": [c for c in leaves if c not in IMAGE_BYTES],
    }


def encode(row: PublishedRow, source_png: bytes, candidate_pngs: list[bytes]) -> dict[str, Any]:
    """One arrow row: the validated record plus its images embedded as PNG bytes."""
    data = row.model_dump(exclude={"split"})
    data["source"] = {"bytes": source_png, "path": None}
    data["candidates"] = [{"bytes": png, "path": None} for png in candidate_pngs]
    return data


class SplitWriter:
    """Writes one split's rows into bounded shards inside ``folder/subdir`` (one folder per config)."""

    def __init__(
        self,
        folder: Path,
        split: str,
        *,
        subdir: str = DATA_DIR,
        max_shard_bytes: int = MAX_SHARD_BYTES,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.dir = folder / subdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.max_shard_bytes, self.batch_bytes = max_shard_bytes, min(batch_bytes, max_shard_bytes)
        self.schema = FEATURES.arrow_schema
        self.rows = 0
        self._shards: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0

    def add(self, row: dict[str, Any], nbytes: int) -> None:
        """Queue a row of about ``nbytes`` (its images); flushes a row group when the buffer is full."""
        self._buffer.append(row)
        self._buffer_bytes += nbytes
        self.rows += 1
        if self._buffer_bytes >= self.batch_bytes or len(self._buffer) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = self.dir / f".{self.split}-{len(self._shards):05d}.parquet.part"
            self._shards.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, **_column_options(self.schema))
        self._writer.write_batch(pa.RecordBatch.from_pylist(self._buffer, schema=self.schema))
        self._shard_bytes += self._buffer_bytes
        self._buffer, self._buffer_bytes = [], 0
        if self._shard_bytes >= self.max_shard_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer, self._shard_bytes = None, 0

    def close(self) -> list[Path]:
        """Finish the split; return its shards under their final names (none for an empty split)."""
        self._flush()
        self._close_shard()
        n = len(self._shards)
        final = []
        for i, part in enumerate(self._shards):
            dest = self.dir / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
            part.rename(dest)
            final.append(dest)
        return final

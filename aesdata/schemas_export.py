"""Generate ``schemas/*.json`` from the pydantic models in :mod:`aesdata.schema`."""

from __future__ import annotations

import json
from pathlib import Path

from aesdata.schema import EXPORTED


def render() -> dict[str, str]:
    """File name -> JSON text, for every exported model (stable formatting, so diffs are real)."""
    return {
        f"{stem}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for stem, model in EXPORTED.items()
    }


def write(folder: Path) -> list[Path]:
    """Write the schemas into ``folder``, removing stale ``*.json`` left by a renamed model."""
    folder.mkdir(parents=True, exist_ok=True)
    files = render()
    for old in folder.glob("*.json"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written

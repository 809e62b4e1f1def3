"""Run recording for commands that may read a dataset without any workspace (``--dataset DIR``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aesdata.workspace import RunRecorder, Workspace


@contextmanager
def recorded(ws: Workspace | None, stage: str, params: dict[str, Any]) -> Iterator[RunRecorder]:
    """``ws.run(stage, params)`` when there is a workspace; an unsaved recorder when there is none."""
    if ws is None:
        yield RunRecorder(id=0, stage=stage)
        return
    with ws.run(stage, params) as run:
        yield run

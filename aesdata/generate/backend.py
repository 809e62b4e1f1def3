"""What the stage hands a backend (one :class:`Job` per candidate) and what it gets back.

Both backends render a list of jobs in one call, so the stage batches across sources the same way
for either, and the near-duplicate redraw loop lives once, in the stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from aesdata.schema import Dimension, Layout, Region, Slot


@dataclass(frozen=True)
class Job:
    """One candidate to draw: everything comes from the source and the candidate's own seed."""

    source_id: str
    slot: Slot
    seed: int
    prompt: str
    layout: Layout
    product: Image.Image  # RGBA cut-out of the product, cropped to its mask
    injected: tuple[Dimension, ...] = ()


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    layout: Layout  # where the product actually went (a synthetic layout defect moves it)
    prompt: str
    regions: tuple[Region, ...] = ()  # where injected defects were drawn (synthetic backend only)


class Backend(Protocol):
    def identity(self) -> dict[str, Any]:
        """Provenance fields shared by every candidate of the run (model, revision, versions, steps...)."""
        ...

    def render(self, jobs: Sequence[Job]) -> list[Rendered]:
        """Draw every job, in order; one call is one batch."""
        ...

"""The event loop of a model run, with the garbage collector kept out of its way.

A run at hundreds of requests in flight allocates a few hundred container objects per request
(futures, coroutines, aiohttp's request and response, the reply's parsed JSON). With Python's default
thresholds the young generation was collected 130 times in a 1,024-request run, the middle one 11
times and the whole heap once (every import, every selected sample): about 200 ms of a 4.6 s run in
`make bench ONLY=cot` at 256 in flight, each collection a pause of the loop that sends and reads the
requests. :func:`run` freezes what exists when the run starts (the imports, the selected samples: it
lives for the run; a cycle already garbage then waits for the end of the run) and collects the young
generation every ``young`` allocations instead of 700: 2 collections, about 20 ms. Cycles made during the
run are still collected, later. A stage's selection of its work (thousands of rows made into records)
runs under :func:`fewer_collections` too, unfrozen: in a fresh process its allocations set off a collection
of the whole heap, 67 ms before the first request of a 1,024-sample cot run.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

#: Net allocations of container objects between collections of the young generation during a run.
YOUNG = 20_000


@contextmanager
def fewer_collections(young: int = YOUNG, *, freeze: bool = True) -> Iterator[None]:
    """The young generation collected every ``young`` allocations in the block, and (``freeze``) the objects
    alive at its start frozen out of collections; the collector's thresholds are restored, and the objects
    unfrozen, when it ends. A caller that froze objects itself keeps them frozen (nothing is frozen here)."""
    thresholds = gc.get_threshold()
    freeze = freeze and gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(young, thresholds[0]), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


def run(main: Coroutine[Any, Any, T], *, young: int = YOUNG) -> T:
    """``asyncio.run(main)`` under :func:`fewer_collections`."""
    with fewer_collections(young):
        return asyncio.run(main)

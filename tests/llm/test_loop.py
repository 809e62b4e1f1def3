"""aesdata.llm.loop: a model run's event loop with fewer collections, and the collector as it was after."""

from __future__ import annotations

import asyncio
import gc

import pytest

from aesdata.llm import loop


async def state() -> tuple[tuple[int, int, int], int]:
    await asyncio.sleep(0)
    return gc.get_threshold(), gc.get_freeze_count()


def test_a_run_freezes_what_lives_and_relaxes_the_young_generation_then_restores_both() -> None:
    before = gc.get_threshold(), gc.get_freeze_count()
    assert before[1] == 0
    thresholds, frozen = loop.run(state(), young=12_345)
    assert thresholds == (12_345, *before[0][1:]) and frozen > 1000
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_a_failing_run_restores_the_collector_too() -> None:
    before = gc.get_threshold(), gc.get_freeze_count()

    async def fail() -> None:
        raise RuntimeError("the endpoint is down")

    with pytest.raises(RuntimeError, match="the endpoint is down"):
        loop.run(fail())
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


def test_objects_the_caller_froze_stay_frozen() -> None:
    """Neither frozen again nor unfrozen by the run. The count is compared within a margin: a frozen object
    freed meanwhile (a thread of an earlier test ending) leaves the permanent generation, and that is not
    the run's doing; the 10,000 lists made after the caller's freeze would all join it if the run froze."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        unfrozen = [[] for _ in range(10_000)]
        _, during = loop.run(state())
        assert frozen - 1000 < during <= frozen and during - 1000 < gc.get_freeze_count() <= during
        del unfrozen  # alive until checked
    finally:
        gc.unfreeze()


def test_a_selection_collects_less_without_freezing_and_a_run_inside_it_still_freezes() -> None:
    """``fewer_collections(freeze=False)`` (cot's selection of its work), then a run inside the same block."""
    before = gc.get_threshold(), gc.get_freeze_count()
    with loop.fewer_collections(young=23_456, freeze=False):
        assert (gc.get_threshold(), gc.get_freeze_count()) == ((23_456, *before[0][1:]), 0)
        thresholds, frozen = loop.run(state(), young=12_345)
        assert thresholds == (23_456, *before[0][1:]) and frozen > 1000  # the larger of the two
        assert gc.get_threshold()[0] == 23_456 and gc.get_freeze_count() == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == before

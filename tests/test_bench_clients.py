"""The benchmark's load clients hold their garbage collector off while a phase is timed: one
full pass before the phase, none during it, and as it was afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from bench.clients import collector_paused


@pytest.fixture
def full_passes() -> Iterator[list[int]]:
    """Each full (oldest-generation) collection started while the test runs."""
    started: list[int] = []

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            started.append(2)

    was_enabled = gc.isenabled()
    gc.callbacks.append(seen)
    try:
        yield started
    finally:
        gc.callbacks.remove(seen)
        if was_enabled:
            gc.enable()


def test_a_phase_collects_once_before_and_none_during(full_passes: list[int]) -> None:
    with collector_paused():
        assert full_passes == [2]
        assert not gc.isenabled()
        # More new objects than start a pass when the collector is on (the served application
        # raises that threshold, and another test may have loaded it): counted, never
        # collected, as any pass would have reset the youngest generation's count.
        kept: list[list[int]] = [[] for _ in range(gc.get_threshold()[0] + 1_000)]
        assert gc.get_count()[0] >= len(kept)
    assert full_passes == [2]
    assert gc.isenabled()


def test_a_phase_inside_another_neither_collects_nor_turns_the_collector_on(
    full_passes: list[int],
) -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
        assert full_passes == [2]
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(full_passes: list[int]) -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
    assert full_passes == []

"""Handing a value straight to whoever waits for it, for the queues that keep no queue while a
receiver waits (`companion.layers`, `companion.appqueue`)."""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def hand_over(waiting: list[asyncio.Future[T]] | None, value: T) -> bool:
    """Give `value` to the first of `waiting` still waiting (removing those served or gone);
    whether one took it."""
    while waiting:
        receiver = waiting.pop(0)
        if not receiver.done():
            receiver.set_result(value)
            return True
    return False

"""How soon the task reading a streamed reply wants the text that arrives.

A reply's text goes to the browser in coalesced frames (`conversations.streaming`): the first
piece at once, then one frame per flush interval. Text arriving between two frames only waits, so
the reading task need not wake for each token: its `Pace` says until when arriving text may be
held, and by when what was held must be handed over. A stream that can (`StreamSession`) then
takes the tokens in the connection's own callback and wakes the reader once per frame.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class Pace:
    """Event-loop times (`loop.time()`): text arriving before `hold_until` may wait for the
    reader until `deliver_by`; text arriving later is handed over at once."""

    hold_until: float = 0.0
    deliver_by: float = 0.0


_current: contextvars.ContextVar[Pace | None] = contextvars.ContextVar("reply_pace", default=None)


@contextlib.contextmanager
def paced(pace: Pace) -> Iterator[None]:
    """Streams read by the current task inside this block follow `pace`."""
    token = _current.set(pace)
    try:
        yield
    finally:
        _current.reset(token)


def current_pace() -> Pace | None:
    return _current.get()

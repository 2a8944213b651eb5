"""New sockets are set up a few at a time, in the order they came.

Setting up a socket is the server's work between the handshake and the socket being ready: its
session read, its ownership check, joining its groups, and its first `sync`. When many sockets
open at once (a crowd arriving, every page reconnecting after a restart) and all are set up
together, each step of each socket queues behind the same step of all the others. Every socket
becomes ready near the end; a message sent meanwhile on a socket already open waits behind the
crowd's work, and the crowd's own first messages arrive together and wait for each other.

So `SLOTS` sockets at most are set up at once, and the rest wait their turn in the order they
came. A socket holds a slot only while the server works on it: it lets go once it is accepted,
and takes a slot again for its first `sync`, ahead of every socket that has not started (a
client that never sends one holds nothing). Sockets then become ready one after another, their
first messages arrive spread out, and each is started as it comes (a user's action goes first
on the database thread, `companion.dbthread`).

Fewer slots start messages sooner and cost more: with little set up at once, the event loop and
the database thread hand over to each other more often, each a thread switch. On the benchmark's
machine, with six slots the last socket of a crowd of 100 was ready 15–30 % later than without
the turnstile, with four a third later; the README's Performance section has the figures.

Each event loop has its own turnstile (the test suite runs many loops in one process).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from companion.perloop import PerLoop

SLOTS = 6


class _Turnstile:
    def __init__(self) -> None:
        self.free = SLOTS
        # Sockets coming back for their first `sync` go before sockets that have not started.
        self.returning: deque[asyncio.Future[None]] = deque()
        self.arriving: deque[asyncio.Future[None]] = deque()

    async def take(self, *, returning: bool) -> None:
        if self.free > 0 and not self.returning and (returning or not self.arriving):
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        (self.returning if returning else self.arriving).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            queue = self.returning if returning else self.arriving
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed the slot just as it was cancelled
            elif waiter in queue:  # (a slot given back meanwhile passed it by, and dropped it)
                queue.remove(waiter)
            raise

    def give_back(self) -> None:
        """The slot goes to the next waiter, or is free again."""
        for queue in (self.returning, self.arriving):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self.free += 1


_turnstiles = PerLoop(_Turnstile)


class Setup:
    """One socket's passage: `await arrive()` before its first step, `pause()` once accepted,
    `await resume()` before its first `sync`, `done()` when set up (or closed). Each is safe to
    call when it no longer applies: a socket that never pauses or never syncs ends with `done`."""

    def __init__(self) -> None:
        self._turnstile = _turnstiles.get()
        self._holding = False
        self._finished = False

    async def arrive(self) -> None:
        await self._take(returning=False)

    def pause(self) -> None:
        self._give_back()

    async def resume(self) -> None:
        await self._take(returning=True)

    def done(self) -> None:
        self._finished = True
        self._give_back()

    async def _take(self, *, returning: bool) -> None:
        if self._holding or self._finished:
            return
        await self._turnstile.take(returning=returning)
        self._holding = True
        if self._finished:
            self._give_back()  # the socket ended while this waited

    def _give_back(self) -> None:
        if self._holding:
            self._holding = False
            self._turnstile.give_back()


class TurnstileMiddleware:
    """Gives each websocket its `Setup` (`scope["setup"]`), waiting for a slot before anything
    else of the socket runs; the slot is given back when the socket ends, at the latest."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        setup = Setup()
        await setup.arrive()
        try:
            return await self.inner(dict(scope, setup=setup), receive, send)
        finally:
            setup.done()

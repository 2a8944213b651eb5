"""The in-process channel layer used when no Redis is configured (a single daphne process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from companion.handoff import hand_over

SWEEP_INTERVAL = 1.0


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """Channels' in-memory layer with its per-message costs taken out.

    The parent scans every channel and every group membership for expired entries on each
    `receive` and `group_send`, deep-copies each message, and starts one task per group member;
    with a few hundred open sockets that was most of the server's CPU (see bench/). Here expiry
    is swept at most once a second, members get a shallow copy (messages hold only immutable
    values), and a group send is a plain loop. Capacity, expiry and groups behave as before.

    A channel's queue exists only while messages wait in it. A receiver finding none (every open
    socket, nearly all the time) waits on a future, and the next message is handed to it directly:
    the parent kept an `asyncio.Queue` (four deques, ~3.4 KiB) for every open socket, and made
    and dropped another on each `receive`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_sweep = 0.0
        # A list, not a deque: there is rarely more than one, and an empty deque is ~0.7 KiB.
        self._receivers: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        super()._clean_expired()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.require_valid_channel_name(channel)
        copy = dict(message)
        queue = self.channels.get(channel)
        # Nothing waits in the channel, so a receiver may be waiting for it.
        if queue is None and hand_over(self._receivers.get(channel), copy):
            return
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, copy))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def receive(self, channel: str) -> dict[str, Any]:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is not None:  # never empty: emptied, it is dropped
            message: dict[str, Any] = queue.get_nowait()[1]
            if queue.empty():
                del self.channels[channel]
            return message
        receiver: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._receivers.setdefault(channel, []).append(receiver)
        try:
            return await receiver
        except asyncio.CancelledError:
            if receiver.done() and not receiver.cancelled():
                # Handed a message just as it was cancelled: the message is not lost.
                self._put_back(channel, receiver.result())
            raise
        finally:
            waiting = self._receivers.get(channel)
            if waiting is not None:
                if receiver in waiting:
                    waiting.remove(receiver)
                if not waiting:
                    del self._receivers[channel]

    def _put_back(self, channel: str, message: dict[str, Any]) -> None:
        """Return a message a cancelled receiver was handed: next in line, before any sent
        after it."""
        if hand_over(self._receivers.get(channel), message):
            return
        later = self.channels.get(channel)
        queue: asyncio.Queue[tuple[float, dict[str, Any]]]
        queue = asyncio.Queue(maxsize=self.get_capacity(channel))
        self.channels[channel] = queue
        queue.put_nowait((time.time() + self.expiry, message))
        # Beyond the channel's capacity the newest are dropped, as a send would have been refused.
        while later is not None and not later.empty() and not queue.full():
            queue.put_nowait(later.get_nowait())

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            try:
                await self.send(channel, message)
            except ChannelFull:
                # As in the parent: a full channel misses this message. Events carry a seq,
                # so its client sees the gap and resyncs from the database.
                continue

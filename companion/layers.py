"""The in-process channel layer used when no Redis is configured (a single daphne process)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL = 1.0


class LocalChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """Channels' in-memory layer with its per-message costs taken out.

    The parent scans every channel and every group membership for expired entries on each
    `receive` and `group_send`, deep-copies each message, and starts one task per group member;
    with a few hundred open sockets that was most of the server's CPU (see bench/). Here expiry
    is swept at most once a second, members get a shallow copy (messages hold only immutable
    values), and a group send is a plain loop. Capacity, expiry and groups behave as before.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        super()._clean_expired()

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self.require_valid_channel_name(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

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

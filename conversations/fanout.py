"""Conversation events to every open socket: this process's sockets directly, other processes'
through the channel layer.

An event is serialised once and handed straight to the local sockets, with no channel-layer
message, consumer task wake-up or dispatch per socket (that hop was a large share of the server's
CPU per streamed frame). When the layer is shared between processes (Redis), the event is also
published once per conversation group; each process subscribes one channel of its own to the
groups its sockets watch and delivers what other processes published.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer

from companion import jsoncodec
from companion.perloop import PerLoop

log = logging.getLogger(__name__)

# Tells this process's own publications apart when they come back from the shared layer.
PROCESS_ID = uuid.uuid4().hex
RETRY_SECONDS = 1.0


class Subscriber(Protocol):
    async def deliver(self, frames: Sequence[tuple[int, str]]) -> None:
        """Events published together, as (seq, text) in order: written to a socket at once."""


def reaches_other_processes(layer: BaseChannelLayer) -> bool:
    """Whether the channel layer is shared between processes (Redis), not this process's own."""
    return not isinstance(layer, InMemoryChannelLayer)


def events_group(conversation_id: UUID) -> str:
    return f"conv.{conversation_id.hex}"


class _Hub:
    """The sockets of one event loop, by conversation, and the loop's link to other processes."""

    def __init__(self) -> None:
        self.local: dict[UUID, set[Subscriber]] = {}
        self.layer = get_channel_layer()
        self.shared = reaches_other_processes(self.layer)
        self._channel: str | None = None
        self._channel_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        # Per conversation, the joining of its group: later sockets wait for the same join.
        self._joins: dict[UUID, asyncio.Future[None]] = {}
        # While publishing to other processes fails, it is tried again only after a pause (and
        # logged once), not for every delta of every reply.
        self.publish_paused_until = 0.0
        self.publish_failing = False

    async def channel(self) -> str:
        async with self._channel_lock:  # one channel (and listener) per process, not two
            if self._channel is None:
                self._channel = await self.layer.new_channel("events.")
                self._listener = asyncio.create_task(self._listen(self._channel))
            return self._channel

    async def _join(self, conversation_id: UUID) -> None:
        await self.layer.group_add(events_group(conversation_id), await self.channel())

    async def subscribe(self, conversation_id: UUID, subscriber: Subscriber) -> None:
        self.local.setdefault(conversation_id, set()).add(subscriber)
        if not self.shared:
            return
        join = self._joins.get(conversation_id)
        if join is None or (join.done() and _failed(join)):
            join = self._joins[conversation_id] = asyncio.ensure_future(self._join(conversation_id))
        try:
            await asyncio.shield(join)
        except Exception:
            # Not joined: undo, so the next socket on this conversation tries again.
            await self.unsubscribe(conversation_id, subscriber)
            raise

    async def unsubscribe(self, conversation_id: UUID, subscriber: Subscriber) -> None:
        sockets = self.local.get(conversation_id)
        if sockets is None or subscriber not in sockets:
            return
        sockets.discard(subscriber)
        if sockets:
            return
        del self.local[conversation_id]
        join = self._joins.get(conversation_id)
        if join is None or not join.done():
            return  # a join still under way is kept: the next socket here reuses it
        del self._joins[conversation_id]
        if not _failed(join):
            await self.layer.group_discard(events_group(conversation_id), await self.channel())

    async def deliver(self, conversation_id: UUID, frames: Sequence[tuple[int, str]]) -> None:
        sockets = self.local.get(conversation_id)
        if not sockets:
            return
        for socket in list(sockets):
            try:
                await socket.deliver(frames)
            except Exception:
                # One broken socket must not cost the others (or the reply) their events.
                log.exception("could not deliver events %s", [seq for seq, _ in frames])

    async def _listen(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except Exception:
                # A lost Redis connection must not end this process's share of other processes'
                # events for good; clients that missed some see the gap in seqs and resync.
                log.exception("receiving events from other processes failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message.get("origin") == PROCESS_ID:
                continue  # delivered locally when it was published
            try:
                conversation_id = UUID(message["conversation"])
                frames = [(int(seq), str(text)) for seq, text in message["events"]]
            except (KeyError, TypeError, ValueError):
                log.warning("ignored a malformed event message")
                continue
            await self.deliver(conversation_id, frames)


def _failed(future: asyncio.Future[None]) -> bool:
    return future.cancelled() or future.exception() is not None


_hubs = PerLoop(_Hub)


async def subscribe(conversation_id: UUID, subscriber: Subscriber) -> None:
    await _hubs.get().subscribe(conversation_id, subscriber)


async def unsubscribe(conversation_id: UUID, subscriber: Subscriber) -> None:
    await _hubs.get().unsubscribe(conversation_id, subscriber)


async def publish(conversation_id: UUID, events: list[dict[str, Any]]) -> None:
    """Send events (each with its `seq`) to every socket on the conversation, in any process."""
    if not events:
        return
    frames = [(payload["seq"], jsoncodec.dumps(payload)) for payload in events]
    hub = _hubs.get()
    await hub.deliver(conversation_id, frames)
    if hub.shared and time.monotonic() >= hub.publish_paused_until:
        await _publish_shared(hub, conversation_id, frames)


async def _publish_shared(hub: _Hub, conversation_id: UUID, frames: list[tuple[int, str]]) -> None:
    try:
        await hub.layer.group_send(
            events_group(conversation_id),
            {
                "type": "chat.events",
                "origin": PROCESS_ID,
                "conversation": conversation_id.hex,
                "events": frames,
            },
        )
    except Exception:
        # What is published is stored already, and this process's sockets have it. Tabs in
        # other processes see the gap in seqs (or the stall) and sync; a reply or an action
        # must not fail because the layer is briefly unreachable.
        hub.publish_paused_until = time.monotonic() + RETRY_SECONDS
        if not hub.publish_failing:
            hub.publish_failing = True
            log.exception("could not publish events to other processes; pausing")
    else:
        if hub.publish_failing:
            hub.publish_failing = False
            log.warning("publishing events to other processes works again")

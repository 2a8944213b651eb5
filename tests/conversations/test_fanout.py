"""Events reach this process's sockets directly, once serialised, in order."""

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, get_channel_layer
from django.test import Client
from django.urls import reverse

from conversations import fanout
from conversations.services.conversations import conversation_create
from conversations.wire import event
from tests.conversations.chat_helpers import collect_until, open_socket, send, send_message, synced
from tests.factories import make_character


class Socket:
    def __init__(self) -> None:
        self.frames: list[tuple[int, str]] = []
        self.deliveries = 0

    async def deliver(self, frames):
        self.frames.extend(frames)
        self.deliveries += 1


class BrokenSocket:
    async def deliver(self, frames):
        raise ConnectionResetError("gone")


async def test_every_socket_gets_each_event_in_order_serialised_once():
    conversation_id = uuid.uuid4()
    one, two = Socket(), Socket()
    await fanout.subscribe(conversation_id, one)
    await fanout.subscribe(conversation_id, two)
    events = [event("reply.delta", seq, turn_id=1, text=f"w{seq}") for seq in (5, 6, 7)]
    await fanout.publish(conversation_id, events)
    assert [seq for seq, _ in one.frames] == [5, 6, 7]
    assert [json.loads(text) for _, text in one.frames] == events
    # The same string object for every socket: serialised once per event, not once per socket.
    assert all(a is b for (_, a), (_, b) in zip(one.frames, two.frames, strict=True))
    # Published together, handed over together (one write to each socket).
    assert one.deliveries == two.deliveries == 1
    await fanout.unsubscribe(conversation_id, one)
    await fanout.unsubscribe(conversation_id, two)


async def test_other_conversations_and_unsubscribed_sockets_get_nothing():
    watched, other = uuid.uuid4(), uuid.uuid4()
    stays, leaves = Socket(), Socket()
    await fanout.subscribe(watched, stays)
    await fanout.subscribe(watched, leaves)
    await fanout.unsubscribe(watched, leaves)
    await fanout.unsubscribe(watched, leaves)  # twice is harmless
    await fanout.publish(other, [event("turns.hidden", 1, turn_ids=[1])])
    await fanout.publish(watched, [event("turns.hidden", 2, turn_ids=[2])])
    assert [seq for seq, _ in stays.frames] == [2]
    assert leaves.frames == []
    await fanout.unsubscribe(watched, stays)


async def test_a_broken_socket_does_not_cost_the_others_their_events(caplog):
    conversation_id = uuid.uuid4()
    broken, fine = BrokenSocket(), Socket()
    await fanout.subscribe(conversation_id, broken)
    await fanout.subscribe(conversation_id, fine)
    await fanout.publish(conversation_id, [event("turns.hidden", 3, turn_ids=[])])
    assert [seq for seq, _ in fine.frames] == [3]
    assert "could not deliver events [3]" in caplog.text
    await fanout.unsubscribe(conversation_id, broken)
    await fanout.unsubscribe(conversation_id, fine)


class FlakySharedLayer(BaseChannelLayer):  # type: ignore[misc]
    """Channels' layer interface shared like Redis's (not in-process), whose first receive and
    first group join fail as with a dropped Redis connection."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = InMemoryChannelLayer()
        self.receive_failures = 1
        self.join_failures = 1
        self.channels_made = 0

    async def new_channel(self, prefix="specific."):
        self.channels_made += 1
        await asyncio.sleep(0.01)
        return await self.inner.new_channel(prefix)

    async def send(self, channel, message):
        await self.inner.send(channel, message)

    async def receive(self, channel):
        if self.receive_failures:
            self.receive_failures -= 1
            raise ConnectionError("the connection to Redis was lost")
        return await self.inner.receive(channel)

    async def group_add(self, group, channel):
        await asyncio.sleep(0.01)  # a round trip, as to Redis
        if self.join_failures:
            self.join_failures -= 1
            raise ConnectionError("the connection to Redis was lost")
        await self.inner.group_add(group, channel)

    async def group_discard(self, group, channel):
        await self.inner.group_discard(group, channel)

    async def group_send(self, group, message):
        await self.inner.group_send(group, message)


async def _until(condition, timeout=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def _from_another_process(conversation_id, seq, text):
    """What another process's `publish` puts on the shared layer."""
    await get_channel_layer().group_send(
        fanout.events_group(conversation_id),
        {
            "type": "chat.events",
            "origin": "another-process",
            "conversation": conversation_id.hex,
            "events": [(seq, text)],
        },
    )


async def test_other_processes_events_arrive_once_and_survive_a_broken_receive(settings, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.FlakySharedLayer"}
    }
    conversation_id = uuid.uuid4()
    socket = Socket()
    get_channel_layer().join_failures = 0
    await fanout.subscribe(conversation_id, socket)
    # Published here: delivered at once, and its echo from the shared layer is not delivered again.
    await fanout.publish(conversation_id, [event("turns.hidden", 1, turn_ids=[])])
    # Published by another process: arrives through the layer, after the failed receive.
    theirs = json.dumps(event("turns.hidden", 2, turn_ids=[]))
    await _from_another_process(conversation_id, 2, theirs)
    await _until(lambda: len(socket.frames) >= 2)
    await asyncio.sleep(0.1)
    assert [seq for seq, _ in socket.frames] == [1, 2]
    assert socket.frames[1][1] == theirs
    assert "retrying" in caplog.text
    await fanout.unsubscribe(conversation_id, socket)


async def test_a_failed_join_is_undone_and_the_next_socket_joins(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.FlakySharedLayer"}
    }
    conversation_id = uuid.uuid4()
    first, second = Socket(), Socket()
    with pytest.raises(ConnectionError):
        await fanout.subscribe(conversation_id, first)
    await fanout.subscribe(conversation_id, second)
    theirs = json.dumps(event("turns.hidden", 4, turn_ids=[]))
    await _from_another_process(conversation_id, 4, theirs)
    await _until(lambda: second.frames)
    assert second.frames == [(4, theirs)]
    assert first.frames == []
    await fanout.unsubscribe(conversation_id, second)


async def test_sockets_connecting_together_share_one_channel_and_one_join(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.FlakySharedLayer"}
    }
    layer = get_channel_layer()
    layer.join_failures = 0
    conversations = [uuid.uuid4() for _ in range(3)]
    # Two sockets on each conversation, all connecting at once.
    sockets = [(c, Socket()) for c in conversations for _ in range(2)]
    await asyncio.gather(*(fanout.subscribe(c, s) for c, s in sockets))
    assert layer.channels_made == 1
    sent = {}
    for seq, conversation_id in enumerate(conversations, start=1):
        sent[conversation_id] = json.dumps(event("turns.hidden", seq, turn_ids=[]))
        await _from_another_process(conversation_id, seq, sent[conversation_id])
    await _until(lambda: all(s.frames for _, s in sockets))
    await asyncio.sleep(0.05)
    for conversation_id, socket in sockets:  # once each, none missed, none crossed
        assert [text for _, text in socket.frames] == [sent[conversation_id]]
    for conversation_id, socket in sockets:
        await fanout.unsubscribe(conversation_id, socket)


@pytest.fixture
def conversation(alice):
    return conversation_create(owner=alice, character=make_character(name="Aria"))


@pytest.mark.django_db(transaction=True)
async def test_a_closed_tab_stops_receiving_while_the_open_one_continues(m2her, conversation):
    closing, _ = await synced(conversation.pk, conversation.owner)
    staying, _ = await synced(conversation.pk, conversation.owner)
    await closing.disconnect()
    await send_message(staying, "[[words=8]] just us")
    events = await collect_until(staying, "reply.completed")
    assert events[-1]["content"].endswith("word8")
    assert await closing.receive_nothing(timeout=0.1)
    await staying.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_another_users_socket_is_refused_and_hears_nothing(m2her, conversation, bob):
    mine, _ = await synced(conversation.pk, conversation.owner)
    theirs, _ = await open_socket(conversation.pk, bob)
    assert (await theirs.receive_output(timeout=3))["code"] == 4404
    await send_message(mine, "[[words=5]] private")
    await collect_until(mine, "reply.completed")
    assert await theirs.receive_nothing(timeout=0.1)
    await mine.disconnect()


class UnreachableSharedLayer(FlakySharedLayer):
    """A shared layer whose group joins and group sends fail once it is `down` (the sockets'
    own receives go on): the failures of publishing and joining, taken alone."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.receive_failures = self.join_failures = 0
        self.down = False

    async def group_add(self, group, channel):
        if self.down:
            raise ConnectionError("Redis is unreachable")
        await super().group_add(group, channel)

    async def group_send(self, group, message):
        if self.down:
            raise ConnectionError("Redis is unreachable")
        await super().group_send(group, message)


async def socket_while_group_sends_fail(conversation, settings):
    """A synced socket of the owner's, on a layer whose group sends and joins now fail."""
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.UnreachableSharedLayer"}
    }
    ws, _ = await synced(conversation.pk, conversation.owner)
    get_channel_layer().down = True
    return ws


async def streaming_while_group_sends_fail(conversation, settings):
    """As above, with a reply of 40 words under way."""
    ws = await socket_while_group_sends_fail(conversation, settings)
    await send_message(ws, "[[words=40]][[tps=20]] a longer one")
    await collect_until(ws, "reply.delta")
    return ws


@pytest.mark.django_db(transaction=True)
async def test_a_reply_runs_to_its_end_when_publishing_to_other_processes_fails(
    m2her, conversation, settings, caplog
):
    ws = await socket_while_group_sends_fail(conversation, settings)

    await send_message(ws, "[[words=5]] through the outage")
    events = await collect_until(ws, "reply.completed")

    assert [e["type"] for e in events][:3] == ["turn.created", "turn.created", "reply.started"]
    assert events[-1]["content"].endswith("word5")
    assert "could not publish events" in caplog.text
    assert "could not join its control group" in caplog.text
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_sync_whose_snapshot_request_fails_is_answered_from_the_database(
    m2her, conversation, settings
):
    ws = await streaming_while_group_sends_fail(conversation, settings)

    await send(ws, type="sync", after_seq=0)
    state = (await collect_until(ws, "sync.state"))[-1]

    assert state["streaming"] is not None  # the reply, from its stored row
    events = await collect_until(ws, "reply.completed", timeout=10)
    assert events[-1]["content"].endswith("word40")
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_stop_and_sign_out_work_when_group_sends_fail(m2her, conversation, settings):
    ws = await streaming_while_group_sends_fail(conversation, settings)

    await send(ws, type="reply.stop")
    events = await collect_until(ws, "reply.stopped", "error")

    assert events[-1]["type"] == "reply.stopped"
    client = Client()
    await sync_to_async(client.force_login)(conversation.owner)
    assert (await sync_to_async(client.post)(reverse("account_logout"))).status_code == 302
    assert (await sync_to_async(client.get)(reverse("conversations:list"))).status_code == 302
    await ws.disconnect()

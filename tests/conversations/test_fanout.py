"""Events reach this process's sockets directly, once serialised, in order."""

import json
import uuid

import pytest

from conversations import fanout
from conversations.services.conversations import conversation_create
from conversations.wire import event
from tests.conversations.chat_helpers import collect_until, open_socket, send_message, synced
from tests.factories import make_character


class Socket:
    def __init__(self) -> None:
        self.frames: list[tuple[int, str]] = []

    async def deliver(self, seq: int, text: str) -> None:
        self.frames.append((seq, text))


class BrokenSocket:
    async def deliver(self, seq: int, text: str) -> None:
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
    assert "could not deliver event 3" in caplog.text
    await fanout.unsubscribe(conversation_id, broken)
    await fanout.unsubscribe(conversation_id, fine)


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

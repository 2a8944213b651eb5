"""The in-process channel layer keeps Channels' semantics: groups, capacity, expiry."""

import asyncio

import pytest
from channels.exceptions import ChannelFull

from companion.layers import LocalChannelLayer


async def test_group_send_reaches_every_member_once_in_order():
    layer = LocalChannelLayer()
    one, two = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conv.x", one)
    await layer.group_add("conv.x", two)
    for seq in (1, 2, 3):
        await layer.group_send("conv.x", {"type": "chat.event", "seq": seq})
    for channel in (one, two):
        assert [(await layer.receive(channel))["seq"] for _ in range(3)] == [1, 2, 3]


async def test_members_get_their_own_copy():
    layer = LocalChannelLayer()
    one, two = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", one)
    await layer.group_add("g", two)
    await layer.group_send("g", {"type": "t", "text": "hi"})
    first = await layer.receive(one)
    first["text"] = "changed"
    assert (await layer.receive(two))["text"] == "hi"


async def test_a_discarded_member_gets_nothing():
    layer = LocalChannelLayer()
    one = await layer.new_channel()
    await layer.group_add("g", one)
    await layer.group_discard("g", one)
    await layer.group_send("g", {"type": "t"})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(one), 0.05)


async def test_a_full_channel_refuses_sends_and_group_sends_skip_it():
    layer = LocalChannelLayer(capacity=2)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.send(full, {"type": "t", "n": 1})
    await layer.send(full, {"type": "t", "n": 2})
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "t", "n": 3})
    await layer.group_add("g", full)
    await layer.group_add("g", other)
    await layer.group_send("g", {"type": "t", "n": 4})
    assert (await layer.receive(other))["n"] == 4
    assert [(await layer.receive(full))["n"] for _ in range(2)] == [1, 2]


async def test_expired_messages_are_swept(monkeypatch):
    layer = LocalChannelLayer(expiry=0)
    stale = await layer.new_channel()
    await layer.group_add("g", stale)
    await layer.send(stale, {"type": "t"})
    await asyncio.sleep(0.01)
    layer._next_sweep = 0.0
    layer._clean_expired()
    # The expired message is gone and its channel left the group, as in Channels' own layer.
    assert stale not in layer.channels
    assert stale not in layer.groups.get("g", {})


async def test_a_waiting_receiver_holds_no_queue_and_is_handed_the_message():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    receiving = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)

    # An open socket waits like this nearly all the time: no queue is kept for it.
    assert layer.channels == {}
    await layer.send(channel, {"type": "t", "n": 1})
    assert (await receiving)["n"] == 1
    assert layer.channels == {}
    assert layer._receivers == {}


async def test_messages_sent_while_nobody_waits_are_received_in_order():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    for n in range(3):
        await layer.send(channel, {"type": "t", "n": n})
    receiving = asyncio.create_task(layer.receive(channel))
    assert (await receiving)["n"] == 0
    await layer.send(channel, {"type": "t", "n": 3})
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [1, 2, 3]
    assert layer.channels == {}


async def test_a_receiver_cancelled_after_it_was_handed_a_message_loses_nothing():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    receiving = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    await layer.send(channel, {"type": "t", "n": 1})
    receiving.cancel()  # before it runs again to return the message
    await layer.send(channel, {"type": "t", "n": 2})
    with pytest.raises(asyncio.CancelledError):
        await receiving

    received = [await asyncio.wait_for(layer.receive(channel), 1) for _ in range(2)]
    assert [message["n"] for message in received] == [1, 2]


async def test_a_cancelled_receiver_stops_waiting():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    receiving = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving

    assert layer._receivers == {}
    await layer.send(channel, {"type": "t", "n": 1})  # kept for the next receiver
    assert (await layer.receive(channel))["n"] == 1


async def test_two_receivers_on_one_channel_get_one_message_each():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    first = asyncio.create_task(layer.receive(channel))
    second = asyncio.create_task(layer.receive(channel))
    await asyncio.sleep(0)
    await layer.send(channel, {"type": "t", "n": 1})
    await layer.send(channel, {"type": "t", "n": 2})
    assert sorted([(await first)["n"], (await second)["n"]]) == [1, 2]

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

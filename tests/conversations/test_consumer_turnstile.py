"""Sockets go through the turnstile (`companion.turnstile`) as they are set up: a few at once,
a socket's first `sync` before new sockets, and a refused or silent socket holds no slot."""

import asyncio

import pytest

from companion.turnstile import SLOTS, Setup
from tests.conversations.chat_helpers import (
    collect_until,
    open_socket,
    receive,
    send,
    send_message,
    synced,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def take_every_slot():
    setups = [Setup() for _ in range(SLOTS)]
    for setup in setups:
        await asyncio.wait_for(setup.arrive(), 2)
    return setups


async def slots_are_free():
    """Every slot can be taken at once; they are given back straight after."""
    for setup in await take_every_slot():
        setup.done()


async def test_a_new_socket_waits_while_every_slot_is_taken(conversation, owner):
    held = await take_every_slot()
    opening = asyncio.ensure_future(open_socket(conversation.pk, owner))
    await asyncio.sleep(0.3)
    assert not opening.done()
    held[0].done()
    ws, connected = await asyncio.wait_for(opening, 5)
    assert connected
    for setup in held[1:]:
        setup.done()
    await ws.disconnect()


async def test_a_first_sync_goes_before_a_socket_that_came_earlier(conversation, owner):
    ws, connected = await open_socket(conversation.pk, owner)
    assert connected
    held = await take_every_slot()
    # A new socket waits for a slot, then the open socket's first sync does.
    opening = asyncio.ensure_future(open_socket(conversation.pk, owner))
    await asyncio.sleep(0.2)
    await send(ws, type="sync", after_seq=0)
    assert await ws.receive_nothing(timeout=0.2)
    held[0].done()
    # The freed slot goes to the sync, though the other socket waited longer: the sync is
    # answered while that socket is still being set up.
    state = await receive(ws)
    assert state["type"] == "sync.state"
    assert state["turns"][0]["role"] == "assistant"
    assert not opening.done()
    # The sync gave its slot on: the waiting socket is let in.
    other, connected = await asyncio.wait_for(opening, 5)
    assert connected
    for setup in held[1:]:
        setup.done()
    await other.disconnect()
    await ws.disconnect()


async def test_sockets_that_do_not_sync_hold_no_slot(conversation, owner):
    sockets = []
    for _ in range(SLOTS + 2):
        ws, connected = await open_socket(conversation.pk, owner)
        assert connected
        sockets.append(ws)
    await slots_are_free()
    ws, state = await synced(conversation.pk, owner)
    assert state["type"] == "sync.state"
    for socket in [*sockets, ws]:
        await socket.disconnect()


async def test_another_users_refused_socket_gives_its_slot_back(conversation, owner):
    stranger = await asyncio.to_thread(make_user, "stranger")
    for _ in range(SLOTS + 1):
        other, connected = await open_socket(conversation.pk, stranger)
        assert connected
        assert (await other.receive_output(timeout=5))["code"] == 4404
    await slots_are_free()
    ws, state = await synced(conversation.pk, owner)
    assert state["type"] == "sync.state"
    await ws.disconnect()


async def test_a_signed_out_socket_gives_its_slot_back(conversation):
    for _ in range(SLOTS + 1):
        anonymous, connected = await open_socket(conversation.pk)
        assert connected
        assert (await anonymous.receive_output(timeout=5))["code"] == 4401
    await slots_are_free()


async def test_a_message_before_any_sync_goes_on_and_later_syncs_do_not_wait(
    m2her, conversation, owner
):
    ws, connected = await open_socket(conversation.pk, owner)
    assert connected
    held = await take_every_slot()
    try:
        # Every slot is taken, yet nothing of this socket waits: its setting up is over.
        await send_message(ws, "[[words=3]] hi")
        events = await collect_until(ws, "reply.completed")
        assert events[-1]["content"].startswith("word1")
        await send(ws, type="sync", after_seq=0)
        assert (await receive(ws))["type"] == "sync.state"
    finally:
        for setup in held:
            setup.done()
    await ws.disconnect()


async def test_a_socket_gone_while_it_waits_for_a_slot_takes_none(conversation, owner):
    held = await take_every_slot()
    with pytest.raises(TimeoutError):
        await open_socket(conversation.pk, owner, timeout=0.3)
    for setup in held:
        setup.done()
    await slots_are_free()

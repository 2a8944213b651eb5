"""The consumers' database thread: a user's action in an open conversation is served before
other sockets' setting up, and a reply's own end is not."""

import asyncio
import threading

import pytest
from asgiref.sync import SyncToAsync, sync_to_async

from companion.dbthread import PriorityExecutor
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


async def hold_database_thread():
    """Occupy the consumers' database thread until the returned event is set."""
    started, release = threading.Event(), threading.Event()

    def blocker():
        started.set()
        release.wait(10)

    blocked = asyncio.ensure_future(sync_to_async(blocker)())
    assert await asyncio.to_thread(started.wait, 5)
    return release, blocked


async def queued_on_database_thread(urgent, ordinary):
    executor = SyncToAsync.single_thread_executor
    assert isinstance(executor, PriorityExecutor)
    async with asyncio.timeout(5):
        while executor.queued() != (urgent, ordinary):
            await asyncio.sleep(0.001)


async def test_a_message_on_an_open_socket_starts_before_another_tabs_sync(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    other_tab, connected = await open_socket(conversation.pk, owner)
    assert connected
    release, blocked = await hold_database_thread()
    try:
        await send(other_tab, type="sync", after_seq=0)
        await queued_on_database_thread(0, 1)
        await send_message(ws, "Hello Aria")
        await queued_on_database_thread(1, 1)
    finally:
        release.set()
    await blocked
    # The message's start ran first, so the tab's sync already holds the message.
    state = await receive(other_tab)
    assert state["type"] == "sync.state"
    assert [t["content"] for t in state["turns"] if t["role"] == "user"] == ["Hello Aria"]
    events = await collect_until(ws, "reply.completed")
    assert events[0]["type"] == "turn.created"
    await ws.disconnect()
    await other_tab.disconnect()


async def test_a_replys_own_end_is_not_urgent_on_the_database_thread(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=10]][[tps=50]] a short story")
    await collect_until(ws, "reply.started")
    release, blocked = await hold_database_thread()
    try:
        # The reply ends while the thread is held: its end waits in the ordinary queue.
        await queued_on_database_thread(0, 1)
    finally:
        release.set()
    await blocked
    events = await collect_until(ws, "reply.completed")
    assert events[-1]["content"].startswith("word1")
    await ws.disconnect()


async def test_another_users_socket_is_refused_while_the_thread_serves_actions(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    stranger = await asyncio.to_thread(make_user, "stranger")
    await send_message(ws, "[[words=10]][[tps=50]] a short story")
    other, connected = await open_socket(conversation.pk, stranger)
    assert connected
    assert (await other.receive_output(timeout=5))["code"] == 4404
    await collect_until(ws, "reply.completed")
    await ws.disconnect()

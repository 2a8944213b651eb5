"""Helpers for websocket tests: a real session cookie, an Origin header, event collection."""

import asyncio
import json
import uuid

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from companion.asgi import application
from conversations.models import Turn
from tests.factories import make_session_cookie

ORIGIN = b"http://127.0.0.1"


session_cookie = database_sync_to_async(make_session_cookie)


async def open_socket(conversation_id, user=None, origin=ORIGIN, timeout=5):
    """A socket's handshake; past `timeout` the communicator stops the application (as a
    client that went away) and raises `TimeoutError`."""
    headers = [(b"origin", origin), (b"host", b"127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", (await session_cookie(user)).encode()))
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation_id}/", headers=headers
    )
    connected, _ = await communicator.connect(timeout=timeout)
    return communicator, connected


async def send(communicator, **frame):
    await communicator.send_to(text_data=json.dumps(frame))


async def send_message(communicator, text, client_id=None):
    client_id = client_id or str(uuid.uuid4())
    await send(communicator, type="message.send", client_id=client_id, text=text)
    return client_id


async def receive(communicator, timeout=5.0):
    return json.loads(await communicator.receive_from(timeout=timeout))


async def collect_until(communicator, *kinds, timeout=10.0):
    """Events up to and including the first whose type is one of `kinds`."""
    events = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        event = await receive(communicator, timeout=max(deadline - loop.time(), 0.01))
        events.append(event)
        if event["type"] in kinds:
            return events


async def synced(conversation_id, user, after_seq=0):
    communicator, connected = await open_socket(conversation_id, user)
    assert connected
    await send(communicator, type="sync", after_seq=after_seq)
    # Events of a reply already running may come first: the state covers them.
    state = (await collect_until(communicator, "sync.state"))[-1]
    return communicator, state


@database_sync_to_async
def stored_turns(conversation, *, active_only=False):
    """(role, content, status) of the conversation's turns, in seq order."""
    turns = Turn.objects.filter(conversation=conversation)
    if active_only:
        turns = turns.filter(active=True)
    return list(turns.order_by("seq").values_list("role", "content", "status"))


async def visible_turns(conversation):
    return await stored_turns(conversation, active_only=True)

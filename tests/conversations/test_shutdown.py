"""A server stopped as a deploy stops it (SIGTERM to `python -m companion.serve`) while a reply
streams: the reply ends stored as `interrupted` with the text sent so far, not left "streaming"
with nobody writing it."""

import asyncio
import json
import os
import signal
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async

from conversations.llm.fake_server import FakeM2her
from conversations.models import Turn
from conversations.services.conversations import conversation_create
from tests.conversations.chat_helpers import session_cookie
from tests.factories import make_character, make_user
from tests.servers import daphne_env, start_daphne, stop_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake():
    with FakeM2her.in_thread(tokens_per_second=20) as server:
        yield server


@pytest.fixture
def server(fake):
    process = start_daphne(daphne_env(fake.base_url, REDIS_URL=""))
    yield process
    stop_process(process)


@pytest.fixture
def conversation(db):
    return conversation_create(owner=make_user("term"), character=make_character(name="Aria"))


async def connect(server, conversation, user):
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation.pk}/"
    cookie = await session_cookie(user)
    return await websockets.connect(url, origin=server.url, additional_headers={"Cookie": cookie})


async def test_a_reply_streaming_when_the_server_stops_is_stored_as_interrupted(
    server, conversation
):
    stranger = await connect(server, conversation, await database_sync_to_async(make_user)("x"))
    with pytest.raises(websockets.ConnectionClosed) as refused:
        await asyncio.wait_for(stranger.recv(), 10)
    assert refused.value.rcvd is not None
    assert refused.value.rcvd.code == 4404  # another user's conversation, as everywhere
    ws = await connect(server, conversation, conversation.owner)
    await ws.send(json.dumps({"type": "sync", "after_seq": 0}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "sync.state"
    text = "[[words=200]] a long story"
    await ws.send(
        json.dumps({"type": "message.send", "client_id": str(uuid.uuid4()), "text": text})
    )
    seen = ""
    while len(seen.split()) < 5:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if event["type"] == "reply.delta":
            seen += event["text"]

    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0

    def reply():
        return Turn.objects.filter(conversation=conversation, role="assistant").latest("seq")

    stored = await database_sync_to_async(reply)()
    assert (stored.status, stored.error_code) == ("failed", "interrupted")
    # At least what this tab was shown, and no more than the model had said by then.
    assert stored.content.startswith(seen)
    assert len(stored.content.split()) < 200

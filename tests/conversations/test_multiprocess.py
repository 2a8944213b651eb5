"""Two daphne processes sharing Redis: tabs on different processes see one reply, can stop it,
and can resume it — the reply's runner lives in whichever process started it."""

import asyncio
import json
import uuid

import pytest
import websockets
from channels.db import database_sync_to_async
from django.conf import settings

from conversations.llm.fake_server import FakeM2her
from conversations.models import Turn
from conversations.services.conversations import conversation_create
from tests.conversations.chat_helpers import session_cookie
from tests.factories import make_character, make_user
from tests.servers import daphne_env, start_daphne, stop_process

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_url():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (CI runs this against Redis)")
    return settings.REDIS_URL


@pytest.fixture
def fake():
    with FakeM2her.in_thread(tokens_per_second=30) as server:
        yield server


@pytest.fixture
def two_servers(redis_url, fake):
    env = daphne_env(fake.base_url, REDIS_URL=redis_url)
    servers = []
    try:
        for name in ("daphne-a", "daphne-b"):
            servers.append(start_daphne(env, name))
        yield servers
    finally:
        for server in servers:
            stop_process(server)


@pytest.fixture
def conversation(db):
    owner = make_user("multi")
    return conversation_create(owner=owner, character=make_character(name="Aria"))


async def connect(server, conversation, cookie):
    url = f"ws://127.0.0.1:{server.port}/ws/conversations/{conversation.pk}/"
    ws = await websockets.connect(url, origin=server.url, additional_headers={"Cookie": cookie})
    await ws.send(json.dumps({"type": "sync", "after_seq": 0}))
    state = json.loads(await ws.recv())
    assert state["type"] == "sync.state"
    return ws, state


async def until(ws, kind, timeout=15):
    events = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        events.append(event)
        if event["type"] == kind:
            return events


async def send_message(ws, text):
    frame = {"type": "message.send", "client_id": str(uuid.uuid4())}
    await ws.send(json.dumps({**frame, "text": text}))


async def test_tabs_on_two_processes_share_one_reply_and_can_stop_it(two_servers, conversation):
    cookie = await session_cookie(conversation.owner)
    a, _ = await connect(two_servers[0], conversation, cookie)
    b, _ = await connect(two_servers[1], conversation, cookie)
    await send_message(a, "[[words=60]] hello from process a")
    seen_b = await until(b, "reply.delta")
    assert [e["type"] for e in seen_b[:3]] == ["turn.created", "turn.created", "reply.started"]
    # The stop goes to process b; the runner lives in process a.
    await b.send(json.dumps({"type": "reply.stop"}))
    stopped_b = (await until(b, "reply.stopped"))[-1]
    stopped_a = (await until(a, "reply.stopped"))[-1]
    assert stopped_a == stopped_b
    assert stopped_a["content"].startswith("word1")
    assert "word60" not in stopped_a["content"]
    turn = await database_sync_to_async(Turn.objects.get)(pk=stopped_a["turn_id"])
    assert (turn.status, turn.content) == ("stopped", stopped_a["content"])
    await a.close()
    await b.close()


async def test_a_tab_on_another_process_resumes_a_reply_midway(two_servers, conversation):
    cookie = await session_cookie(conversation.owner)
    a, _ = await connect(two_servers[0], conversation, cookie)
    await send_message(a, "[[words=45]] tell me everything")
    await until(a, "reply.delta")
    await a.close()
    b, resumed = await connect(two_servers[1], conversation, cookie)
    assert resumed["streaming"] is not None
    so_far = resumed["streaming"]["content"]
    assert so_far.startswith("word1")
    later = await until(b, "reply.completed")
    deltas = "".join(e["text"] for e in later if e["type"] == "reply.delta")
    assert so_far + deltas == later[-1]["content"]
    assert later[-1]["content"].endswith("word45")
    await b.close()

"""The live chat at its edges: text a database cannot store, a deleted conversation, numbers
out of range, clients that skip `sync`, replies that outlive the stale limit."""

import asyncio
import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import reverse

from companion.asgi import application
from conversations import fanout, streaming
from conversations.fanout import reaches_other_processes
from conversations.llm.factory import get_backend
from conversations.services.conversations import conversation_create, conversation_delete
from conversations.services.replies import reply_begin_for_message
from tests.conversations.chat_helpers import (
    ORIGIN,
    collect_until,
    open_socket,
    receive,
    send,
    send_message,
    session_cookie,
    stored_turns,
    synced,
)
from tests.conversations.llm.helpers import CHUNKED_HEAD, END, chunk, scripted_server, sse
from tests.factories import make_character, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_reply_holding_text_no_database_stores_is_cleaned_and_saved(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[unstorable]] say something odd")
    events = await collect_until(ws, "reply.completed", "reply.failed")
    assert events[-1]["type"] == "reply.completed"
    streamed = "".join(e["text"] for e in events if e["type"] == "reply.delta")
    assert streamed == events[-1]["content"] == "Hi there \ufffd friend"
    assert (await stored_turns(conversation))[-1] == (
        "assistant",
        "Hi there \ufffd friend",
        "complete",
    )
    # Nothing is left "streaming": the next message is answered.
    await send_message(ws, "hello again")
    assert (await collect_until(ws, "reply.completed"))[-1]["content"] == "You said: hello again"
    await ws.disconnect()


@pytest.mark.parametrize("text", ["hello\x00there", "hi \ud800 there"])
async def test_a_message_no_database_stores_is_refused_and_the_socket_stays(
    m2her, conversation, owner, text
):
    ws, _ = await synced(conversation.pk, owner)
    before = await stored_turns(conversation)
    # JSON carries both as escapes (`\u0000`, `\ud800`).
    await send(ws, type="message.send", client_id=str(uuid.uuid4()), text=text)
    error = await receive(ws)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    assert await stored_turns(conversation) == before
    await send_message(ws, "plain")
    assert (await collect_until(ws, "reply.completed"))[-1]["content"] == "You said: plain"
    await ws.disconnect()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message.send", "client_id": str(uuid.uuid4()), "text": "anyone there?"},
        {"type": "turn.delete", "turn_id": 1},
        {"type": "reply.select", "turn_id": 1, "index": 1},
        {"type": "sync", "after_seq": 0},
        {"type": "reply.stop"},
    ],
)
async def test_a_socket_on_a_deleted_conversation_is_closed_as_not_found(
    m2her, conversation, owner, frame
):
    ws, _ = await synced(conversation.pk, owner)
    await database_sync_to_async(conversation_delete)(owner=owner, conversation=conversation)
    await send(ws, **frame)
    output = await ws.receive_output(timeout=3)
    if output["type"] == "websocket.send":  # answered before the close (a sync finds nothing)
        output = await ws.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": 4404}


async def test_a_client_that_never_syncs_still_gets_the_events(m2her, conversation, owner):
    ws, connected = await open_socket(conversation.pk, owner)
    assert connected
    client_id = await send_message(ws, "Hello")
    events = await collect_until(ws, "reply.completed")
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["turn.created", "turn.created", "reply.started"]
    assert events[0]["turn"]["client_id"] == client_id
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await ws.disconnect()


async def test_a_sync_after_any_number_is_answered(m2her, conversation, owner):
    ws, first = await synced(conversation.pk, owner)
    for after_seq in (2**63, 10**30):
        await send(ws, type="sync", after_seq=after_seq)
        state = await receive(ws)
        assert (state["type"], state["turns"], state["seq"]) == ("sync.state", [], first["seq"])
    await ws.disconnect()


async def test_choosing_the_candidate_shown_changes_nothing_and_leaves_no_gap(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "Pick")
    done = (await collect_until(ws, "reply.completed"))[-1]
    await send(ws, type="reply.select", turn_id=done["turn_id"], index=1)
    await send(ws, type="turn.delete", turn_id=done["turn_id"])
    hidden = await receive(ws)
    assert (hidden["type"], hidden["seq"]) == ("turns.hidden", done["seq"] + 1)
    await ws.disconnect()


async def test_editing_a_reply_needs_no_model(m2her, conversation, owner, settings):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "Hi")
    done = (await collect_until(ws, "reply.completed"))[-1]
    settings.LLM_BACKEND = "openai"  # no longer usable: only actions that ask it are refused
    settings.OPENAI_BASE_URL = ""
    settings.CHAT_MESSAGES_PER_MINUTE = 0
    await send(ws, type="turn.edit", turn_id=done["turn_id"], text="Better words.")
    updated = await receive(ws)
    assert (updated["type"], updated["turn"]["content"]) == ("turn.updated", "Better words.")
    await send_message(ws, "And now?")
    assert (await receive(ws))["code"] == "unavailable"
    await ws.disconnect()


async def test_a_snapshot_after_the_outcome_is_stored_carries_the_last_delta_number(
    m2her, conversation, owner
):
    # A tab that syncs while the outcome is being published must still take the outcome's
    # event: the snapshot's seq is that of the text it holds, not the outcome's.
    watcher, _ = await synced(conversation.pk, owner)
    start = await database_sync_to_async(reply_begin_for_message)(
        conversation_id=conversation.pk, user_id=owner.pk, client_id=uuid.uuid4(), text="Hi"
    )
    runner = streaming.ReplyRunner(start, get_backend())
    await runner._generate()
    events = await collect_until(watcher, "reply.completed")
    last_delta = [e for e in events if e["type"] == "reply.delta"][-1]
    snapshot = runner.snapshot()
    assert snapshot["content"] == events[-1]["content"] == "You said: Hi"
    assert snapshot["seq"] == last_delta["seq"] < events[-1]["seq"]
    await watcher.disconnect()


async def test_in_one_process_a_reply_joins_no_control_group_and_still_hears_syncs_and_stops(
    m2her, conversation, owner
):
    ws, state = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=40]][[tps=20]] take your time")
    await collect_until(ws, "reply.delta")

    assert streaming.control_group(conversation.pk) not in get_channel_layer().groups
    # A second tab syncing now gets the text so far from the runner itself: the stored row
    # holds none of it until the reply ends.
    tab, resumed = await synced(conversation.pk, owner, after_seq=state["seq"])
    assert resumed["streaming"]["content"].startswith("word1")
    await send(tab, type="reply.stop")
    stopped = (await collect_until(ws, "reply.stopped"))[-1]
    assert stopped["content"].startswith("word1")
    assert not stopped["content"].endswith("word40")
    await ws.disconnect()
    await tab.disconnect()


async def test_a_sync_of_a_reply_no_runner_writes_is_answered_from_the_database_at_once(
    conversation, owner
):
    # As a process that died mid-reply leaves it (or one that has just ended): stored as
    # streaming, with no runner. In one process no other can hold it, so nothing is waited for.
    start = await database_sync_to_async(reply_begin_for_message)(
        conversation_id=conversation.pk, user_id=owner.pk, client_id=uuid.uuid4(), text="Hi"
    )
    assert streaming.running_reply(conversation.pk) is None
    ws, connected = await open_socket(conversation.pk, owner)
    assert connected
    await send(ws, type="sync", after_seq=0)

    # In one process, well before the two seconds a missing snapshot is waited for; with a
    # shared layer another process might hold the reply, so the wait stays.
    shared = reaches_other_processes(get_channel_layer())
    state = (await collect_until(ws, "sync.state", timeout=5.0 if shared else 1.0))[-1]
    assert state["streaming"] == {"turn_id": start.turn_id, "name": start.speaker, "content": ""}
    await ws.disconnect()


async def test_a_reply_outliving_the_stale_limit_is_kept_alive(
    m2her, conversation, owner, settings
):
    settings.CHAT_REPLY_STALE_SECONDS = 1
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=30]][[tps=15]] a long story")
    await collect_until(ws, "reply.delta")
    await asyncio.sleep(1.3)
    await send_message(ws, "are you done?")
    refused = (await collect_until(ws, "error"))[-1]
    assert refused["code"] == "busy"
    done = (await collect_until(ws, "reply.completed", timeout=5))[-1]
    assert done["content"].endswith("word30")
    assert len(m2her.requests) == 1
    await ws.disconnect()


async def test_another_users_socket_sees_none_of_it(m2her, conversation, owner):
    stranger = await database_sync_to_async(make_user)("stranger")
    ws, _ = await open_socket(conversation.pk, stranger)
    assert (await ws.receive_output(timeout=3))["code"] == 4404
    mine, _ = await synced(conversation.pk, owner)
    await send_message(mine, "[[unstorable]] private")
    await collect_until(mine, "reply.completed")
    assert await ws.receive_nothing(timeout=0.2)
    await mine.disconnect()


async def test_a_character_made_private_can_be_read_but_not_continued(m2her, owner):
    def begin():
        creator = make_user("creator")
        character = make_character(creator, name="Bea")
        mine = conversation_create(owner=owner, character=character)
        theirs = conversation_create(owner=creator, character=character)
        character.visibility = "private"
        character.save()
        return creator, mine, theirs

    creator, mine, theirs = await database_sync_to_async(begin)()
    ws, state = await synced(mine.pk, owner)
    assert [t["name"] for t in state["turns"]] == ["Bea"]  # still readable
    before = await stored_turns(mine)
    for frame in (
        {"type": "message.send", "client_id": str(uuid.uuid4()), "text": "still there?"},
        {"type": "reply.regenerate"},
    ):
        await send(ws, **frame)
        refused = await receive(ws)
        assert (refused["type"], refused["code"]) == ("error", "invalid")
        assert "private" in refused["message"]
    assert await stored_turns(mine) == before
    # Its creator goes on as before.
    ws2, _ = await synced(theirs.pk, creator)
    await send_message(ws2, "Hello me")
    assert (await collect_until(ws2, "reply.completed"))[-1]["content"] == "You said: Hello me"
    await ws.disconnect()
    await ws2.disconnect()


async def test_a_reply_longer_than_a_message_can_be_edited_but_a_message_cannot(
    m2her, conversation, owner, settings
):
    settings.CHAT_MAX_MESSAGE_CHARS = 20
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "Hi")
    done = (await collect_until(ws, "reply.completed"))[-1]
    long_text = "A reply much longer than any message."
    await send(ws, type="turn.edit", turn_id=done["turn_id"], text=long_text)
    updated = await receive(ws)
    assert (updated["type"], updated["turn"]["content"]) == ("turn.updated", long_text)
    user_turn = (await stored_turns(conversation))[-2]
    assert user_turn == ("user", "Hi", "complete")
    before = await stored_turns(conversation)
    user_id = done["turn_id"] - 1
    await send(ws, type="turn.edit", turn_id=user_id, text=long_text)
    refused = await receive(ws)
    assert (refused["type"], refused["code"]) == ("error", "too_long")
    assert await stored_turns(conversation) == before
    await ws.disconnect()


async def test_signing_out_closes_that_sessions_sockets_and_no_others(m2her, conversation, owner):
    cookie = await session_cookie(owner)
    signed_out = WebsocketCommunicator(
        application,
        f"/ws/conversations/{conversation.pk}/",
        headers=[(b"origin", ORIGIN), (b"host", b"127.0.0.1"), (b"cookie", cookie.encode())],
    )
    assert (await signed_out.connect(timeout=5))[0]
    other_browser, _ = await synced(conversation.pk, owner)  # the same user, another session

    def log_out():
        client = Client()
        name, _, key = cookie.partition("=")
        client.cookies[name] = key
        return client.post(reverse("account_logout"))

    assert (await sync_to_async(log_out)()).status_code == 302

    assert await signed_out.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    await send_message(other_browser, "[[words=2]] still here")
    assert (await collect_until(other_browser, "reply.completed"))[-1]["content"] == "word1 word2"
    await other_browser.disconnect()


def _conversation_with_description(owner, words):
    character = make_character(name="Wordy", description=" ".join(["lighthouse"] * words))
    return conversation_create(owner=owner, character=character, persona=None)


async def test_a_card_too_long_for_the_window_fails_before_anything_is_sent(m2her, settings):
    settings.M2HER_CONTEXT_TOKENS = 2048
    owner = await database_sync_to_async(make_user)("wordy-owner")
    conversation = await database_sync_to_async(_conversation_with_description)(owner, 1800)
    ws, _ = await synced(conversation.pk, owner)

    await send_message(ws, "Hello")
    failed = (await collect_until(ws, "reply.failed", "reply.completed"))[-1]

    assert failed["type"] == "reply.failed"
    assert failed["error"]["code"] == "context_too_long"
    assert not failed["error"]["retryable"]
    assert not m2her.requests
    turns = await stored_turns(conversation)
    assert [(role, status) for role, _, status in turns][-2:] == [
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    await ws.disconnect()


async def test_a_long_card_leaves_the_reply_what_the_window_has_left(m2her, settings, owner):
    settings.M2HER_CONTEXT_TOKENS = 2048
    conversation = await database_sync_to_async(_conversation_with_description)(owner, 580)
    other, plain = await _another_users_conversation("short-card-owner")
    ws, _ = await synced(conversation.pk, owner)
    theirs, _ = await synced(plain.pk, other)

    await send_message(ws, "Hello")
    await collect_until(ws, "reply.completed")
    await send_message(theirs, "Hello")
    await collect_until(theirs, "reply.completed")

    squeezed, roomy = (r.body["max_completion_tokens"] for r in m2her.requests)
    assert 64 <= squeezed < 400
    assert roomy == 400
    await ws.disconnect()
    await theirs.disconnect()


async def test_a_message_sent_while_the_server_stops_is_stored_and_its_reply_interrupted(
    m2her, conversation, owner, monkeypatch
):
    monkeypatch.setattr(streaming, "_closing", False)  # put back for the next tests
    other, theirs = await _another_users_conversation("stopping-server-bob")
    ws, _ = await synced(conversation.pk, owner)
    late, _ = await synced(theirs.pk, other)
    await send_message(ws, "[[words=200]][[tps=20]] a long story")
    await collect_until(ws, "reply.delta")

    stopping = asyncio.create_task(streaming.interrupt_replies(grace=5))
    await collect_until(ws, "reply.failed")
    # The sockets are still open while the server waits for its replies: a message comes in.
    await send_message(late, "[[words=5]] are you there?")
    failed = (await collect_until(late, "reply.failed"))[-1]
    await asyncio.wait_for(stopping, timeout=5)

    assert failed["error"]["code"] == "interrupted"
    assert failed["error"]["retryable"]
    assert len(m2her.requests) == 1  # the model was not asked for the late one
    turns = await stored_turns(theirs)
    assert [(role, status) for role, _, status in turns][-2:] == [
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    assert turns[-2][1].endswith("are you there?")  # nothing the user sent is lost
    assert not any(status == "streaming" for _, _, status in await stored_turns(conversation))
    await ws.disconnect()
    await late.disconnect()


async def _begun(conversation):
    """A reply stored as asked for (its message and placeholder), its runner not yet made."""
    return await database_sync_to_async(reply_begin_for_message)(
        conversation_id=conversation.pk,
        user_id=conversation.owner_id,
        client_id=uuid.uuid4(),
        text="[[words=50]] hello?",
    )


async def test_a_reply_whose_task_has_not_run_when_the_server_stops_is_recorded(
    m2her, conversation, monkeypatch
):
    monkeypatch.setattr(streaming, "_closing", False)  # put back for the next tests
    runner = streaming.start_reply(await _begun(conversation), get_backend())

    # In the same turn of the loop: its task exists but has not taken a step (a cancel now
    # would end it before any of its code ran).
    await streaming.interrupt_replies(grace=5)

    assert runner.task is not None
    assert runner.task.done()  # waited for
    assert [(role, status) for role, _, status in await stored_turns(conversation)][-1] == (
        "assistant",
        "failed",
    )
    assert not m2her.requests


async def test_a_reply_stopped_while_it_joins_its_control_group_is_recorded(
    m2her, conversation, settings, monkeypatch
):
    monkeypatch.setattr(streaming, "_closing", False)  # put back for the next tests
    # A shared layer (as Redis is) whose new channel is a round trip.
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.FlakySharedLayer"}
    }
    runner = streaming.start_reply(await _begun(conversation), get_backend())
    await asyncio.sleep(0)  # its first step: it now waits on the layer
    assert runner.started

    await streaming.interrupt_replies(grace=5)

    assert [(role, status) for role, _, status in await stored_turns(conversation)][-1] == (
        "assistant",
        "failed",
    )
    assert not m2her.requests


@database_sync_to_async
def _another_users_conversation(username):
    """A second user, and their conversation with a plain character."""
    user = make_user(username)
    return user, conversation_create(owner=user, character=make_character(), persona=None)


class SlowFirstFrameSocket:
    """A subscriber (a socket, to `fanout`) slow to take the reply's first frame, as a publish
    through a distant layer is; it notes when each frame of text reaches it."""

    def __init__(self) -> None:
        self.deltas: list[tuple[float, str]] = []

    async def deliver(self, frames):
        for _, text in frames:
            frame = json.loads(text)
            if frame["type"] == "reply.delta":
                self.deltas.append((asyncio.get_running_loop().time(), frame["text"]))
                if len(self.deltas) == 1:
                    await asyncio.sleep(0.04)


async def test_text_held_while_a_frame_waits_goes_out_with_that_frame(
    m2her, conversation, owner, settings
):
    settings.CHAT_FLUSH_INTERVAL_MS = 200  # frames 200 ms apart, text held up to 50 ms
    # w2 comes while the first frame is still being published, so the reply takes it early;
    # w3 comes after, and waits in the stream for the second frame.
    events = [chunk(e) for e in sse("w1 ", "w2 ", "w3 ", "w4")]
    parts = [
        (0, CHUNKED_HEAD + events[0]),
        (0.02, events[1]),
        (0.04, events[2]),
        (0.36, events[3] + chunk(END) + chunk(b"")),
    ]
    server, port = await scripted_server(parts, linger=1.0)
    settings.M2HER_BASE_URL = f"http://127.0.0.1:{port}"
    socket = SlowFirstFrameSocket()
    async with server:
        start = await database_sync_to_async(reply_begin_for_message)(
            conversation_id=conversation.pk, user_id=owner.pk, client_id=uuid.uuid4(), text="Hi"
        )
        await fanout.subscribe(conversation.pk, socket)
        try:
            await streaming.ReplyRunner(start, get_backend())._generate()
        finally:
            await fanout.unsubscribe(conversation.pk, socket)

    (first, text1), (second, text2), *rest = socket.deltas
    assert (text1, text2) == ("w1 ", "w2 w3 ")
    # In the second frame, which leaves before the reply's own timer for w2 (250 ms) would.
    assert second - first < 0.245
    assert [text for _, text in rest] == ["w4"]

import asyncio
import json
import logging
import uuid
from typing import Any

import pytest
from channels import consumer as channels_consumer
from channels.db import database_sync_to_async
from channels.generic import websocket as channels_websocket
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from companion.asgi import application
from conversations import actions, streaming
from conversations.models import Turn
from conversations.protocol import SendMessage, StopReply
from conversations.services.conversations import conversation_delete
from tests.conversations.chat_helpers import (
    ORIGIN,
    collect_until,
    open_socket,
    receive,
    send,
    send_message,
    synced,
    visible_turns,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def turn(turn_id):
    return Turn.objects.get(pk=turn_id)


async def test_a_reply_streams_in_order_and_is_stored(m2her, conversation, owner):
    ws, state = await synced(conversation.pk, owner)
    assert [t["role"] for t in state["turns"]] == ["assistant"]
    assert state["streaming"] is None
    await send_message(ws, "Hello Aria")
    events = await collect_until(ws, "reply.completed")
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["turn.created", "turn.created", "reply.started"]
    assert set(kinds[3:-1]) == {"reply.delta"}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))
    assert seqs[0] > state["seq"]
    completed = events[-1]
    assert completed["content"] == "You said: Hello Aria"
    assert "".join(e["text"] for e in events if e["type"] == "reply.delta") == completed["content"]
    assert completed["finish_reason"] == "stop"
    assert completed["usage"]["completion_tokens"] > 0
    assert await visible_turns(conversation) == [
        ("assistant", "*looks up from a book* Oh, hello Sam!", "complete"),
        ("user", "Hello Aria", "complete"),
        ("assistant", "You said: Hello Aria", "complete"),
    ]
    stored = await turn(completed["turn_id"])
    assert stored.prompt_tokens == completed["usage"]["prompt_tokens"]
    assert stored.cost_usd is not None
    assert stored.cost_usd > 0
    sent = m2her.requests[-1].body["messages"]
    assert [m["role"] for m in sent].count("system") == 1
    assert sent[-1] == {"role": "user", "content": "Hello Aria", "name": "Sam"}
    await ws.disconnect()


async def test_resending_a_client_id_creates_one_turn(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    client_id = await send_message(ws, "Once")
    await collect_until(ws, "reply.completed")
    await send_message(ws, "Once", client_id=client_id)
    refused = await receive(ws)
    assert (refused["type"], refused["code"]) == ("error", "duplicate")
    await send(ws, type="sync", after_seq=0)
    state = await receive(ws)
    assert state["type"] == "sync.state"
    assert [t["content"] for t in state["turns"] if t["role"] == "user"] == ["Once"]
    await ws.disconnect()


async def test_a_second_message_while_replying_is_busy(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=40]][[tps=20]] long one")
    await collect_until(ws, "reply.delta")
    await send_message(ws, "me again")
    events = await collect_until(ws, "error")
    assert events[-1]["code"] == "busy"
    await send(ws, type="reply.stop")
    await collect_until(ws, "reply.stopped")
    await ws.disconnect()


async def test_stop_keeps_what_arrived(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=60]][[tps=20]] tell me a story")
    events = await collect_until(ws, "reply.delta")
    await send(ws, type="reply.stop")
    events += await collect_until(ws, "reply.stopped")
    stopped = events[-1]
    streamed = "".join(e["text"] for e in events if e["type"] == "reply.delta")
    assert stopped["content"] == streamed
    assert streamed.startswith("word1")
    assert "word60" not in streamed
    stored = await turn(stopped["turn_id"])
    assert (stored.status, stored.content) == ("stopped", streamed)
    # The upstream request was abandoned, not left running.
    await asyncio.sleep(0.2)
    assert m2her.requests[-1].disconnected
    await ws.disconnect()


async def test_stop_before_the_first_word_ends_the_reply_at_once(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[slow_first_byte=5]] take your time")
    await collect_until(ws, "reply.started")
    await send(ws, type="reply.stop")
    events = await collect_until(ws, "reply.stopped", timeout=3)
    assert events[-1]["content"] == ""
    assert not [e for e in events if e["type"] == "reply.delta"]
    stored = await turn(events[-1]["turn_id"])
    assert (stored.status, stored.content) == ("stopped", "")
    await ws.disconnect()


async def test_a_stop_sent_right_behind_the_message_stops_its_reply(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    # No wait for `reply.started`: the stop may reach the server before the reply's runner
    # has begun, and must still be heard.
    await send_message(ws, "[[words=60]][[tps=20]] tell me a story")
    await send(ws, type="reply.stop")
    events = await collect_until(ws, "reply.stopped", "reply.completed", timeout=5)
    assert events[-1]["type"] == "reply.stopped"
    assert "word60" not in events[-1]["content"]
    stored = await turn(events[-1]["turn_id"])
    assert stored.status == "stopped"
    await ws.disconnect()


async def test_a_stop_taken_before_the_replys_task_has_run_still_stops_it(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    ids = {"user_id": owner.pk, "conversation_id": conversation.pk}
    message = SendMessage(client_id=uuid.uuid4(), text="[[words=60]][[tps=20]] a long story")
    await actions.perform(message=message, **ids)
    # No await between the two: the stop is taken before the reply's task has first run.
    await actions.perform(message=StopReply(), **ids)
    events = await collect_until(ws, "reply.stopped", "reply.completed", timeout=5)
    assert events[-1]["type"] == "reply.stopped"
    assert events[-1]["content"] == ""
    await ws.disconnect()


async def test_regenerate_adds_a_candidate_and_keeps_the_first(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "Pick a number")
    first = (await collect_until(ws, "reply.completed"))[-1]
    await send(ws, type="reply.regenerate")
    events = await collect_until(ws, "reply.completed")
    assert events[0] == {
        "type": "turns.hidden",
        "seq": events[0]["seq"],
        "turn_ids": [first["turn_id"]],
    }
    created = events[1]["turn"]
    assert (created["candidate_index"], created["candidate_count"]) == (2, 2)
    await send(ws, type="reply.select", turn_id=events[-1]["turn_id"], index=1)
    shown = await collect_until(ws, "turn.updated")
    assert shown[-1]["turn"]["id"] == first["turn_id"]
    assert (await visible_turns(conversation))[-1] == (
        "assistant",
        "You said: Pick a number",
        "complete",
    )
    await ws.disconnect()


async def test_continue_extends_a_reply_cut_at_length(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[length]] start")
    first = (await collect_until(ws, "reply.completed"))[-1]
    assert first["finish_reason"] == "length"
    await send(ws, type="reply.continue")
    events = await collect_until(ws, "reply.completed")
    assert [e["type"] for e in events[:2]] == ["turn.updated", "reply.started"]
    assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})
    assert events[0]["turn"]["status"] == "streaming"
    done = events[-1]
    assert done["turn_id"] == first["turn_id"]
    assert done["content"].startswith(first["content"])
    assert len(done["content"]) > len(first["content"])
    assert m2her.requests[-1].body["messages"][-2]["content"] == first["content"]
    await ws.disconnect()


async def test_an_upstream_cut_keeps_the_partial_reply(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=30]][[cut=5]] go")
    events = await collect_until(ws, "reply.failed")
    failed = events[-1]
    streamed = "".join(e["text"] for e in events if e["type"] == "reply.delta")
    assert failed["error"]["code"] == "truncated"
    assert failed["error"]["retryable"] is True
    assert failed["content"] == streamed
    assert streamed
    stored = await turn(failed["turn_id"])
    assert (stored.status, stored.error_code, stored.content) == ("failed", "truncated", streamed)
    await ws.disconnect()


@pytest.mark.parametrize(
    ("marker", "code"),
    [
        ("[[auth]]", "auth"),
        ("[[balance]]", "insufficient_balance"),
        ("[[input_flag]]", "content_filtered"),
        ("[[bad_request]]", "bad_request"),
    ],
)
async def test_upstream_failures_arrive_classified(m2her, conversation, owner, marker, code):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, f"{marker} hi")
    failed = (await collect_until(ws, "reply.failed"))[-1]
    assert failed["error"]["code"] == code
    assert failed["error"]["message"]
    assert "test-key" not in json.dumps(failed)
    stored = await turn(failed["turn_id"])
    assert stored.status == "failed"
    assert stored.error_code == code
    await ws.disconnect()


async def test_bad_frames_get_an_error_and_the_socket_stays_open(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await ws.send_to(text_data="not json")
    assert (await receive(ws))["code"] == "bad_frame"
    await send(ws, type="launch.missiles")
    assert (await receive(ws))["code"] == "bad_frame"
    await send(ws, type="message.send", client_id=str(uuid.uuid4()), text="")
    assert (await receive(ws))["code"] == "empty"
    await send(ws, type="message.send", client_id=str(uuid.uuid4()), text="x" * 5000)
    assert (await receive(ws))["code"] == "too_long"
    await send(ws, type="turn.delete", turn_id=999999)
    assert (await receive(ws))["code"] == "not_found"
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await receive(ws))["code"] == "bad_frame"
    await send(ws, type="sync", after_seq=0)
    assert (await receive(ws))["type"] == "sync.state"
    assert await visible_turns(conversation) == [
        ("assistant", "*looks up from a book* Oh, hello Sam!", "complete")
    ]
    await ws.disconnect()


async def test_rate_limit_refuses_extra_replies(m2her, conversation, owner, settings):
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "one")
    await collect_until(ws, "reply.completed")
    await send_message(ws, "two")
    error = (await collect_until(ws, "error"))[-1]
    assert error["code"] == "rate_limited"
    await ws.disconnect()


async def test_a_resend_past_the_rate_limit_is_still_a_duplicate(
    m2her, conversation, owner, settings
):
    settings.CHAT_MESSAGES_PER_MINUTE = 1
    ws, _ = await synced(conversation.pk, owner)
    client_id = await send_message(ws, "one")
    await collect_until(ws, "reply.completed")

    await send_message(ws, "one", client_id=client_id)
    resent = (await collect_until(ws, "error"))[-1]
    await send_message(ws, "two")
    new = (await collect_until(ws, "error"))[-1]

    assert resent["code"] == "duplicate"
    assert new["code"] == "rate_limited"
    await ws.disconnect()


async def test_two_tabs_see_the_same_events_in_the_same_order(m2her, conversation, owner):
    one, _ = await synced(conversation.pk, owner)
    two, _ = await synced(conversation.pk, owner)
    await send_message(one, "[[words=12]] both of you")
    seen_one = await collect_until(one, "reply.completed")
    seen_two = await collect_until(two, "reply.completed")
    assert seen_one == seen_two
    await one.disconnect()
    await two.disconnect()


async def test_a_reply_survives_its_socket_and_a_new_tab_resumes_it(m2her, conversation, owner):
    first, state = await synced(conversation.pk, owner)
    await send_message(first, "[[words=40]][[tps=40]] keep going")
    events = await collect_until(first, "reply.delta")
    await first.disconnect()
    await asyncio.sleep(0.3)
    second, resumed = await synced(conversation.pk, owner, after_seq=state["seq"])
    assert resumed["streaming"] is not None
    so_far = resumed["streaming"]["content"]
    assert so_far.startswith(events[-1]["text"].split()[0])
    later = await collect_until(second, "reply.completed", timeout=15)
    deltas = "".join(e["text"] for e in later if e["type"] == "reply.delta")
    assert so_far + deltas == later[-1]["content"]
    assert later[-1]["content"].endswith("word40")
    assert all(e["seq"] > resumed["seq"] for e in later)
    await second.disconnect()


async def test_events_during_a_resync_follow_its_state_without_gaps(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=60]][[tps=100]] keep talking")
    await collect_until(ws, "reply.delta")
    states = 0
    last_seq = 0
    text = ""
    for _ in range(3):
        await send(ws, type="sync", after_seq=0)
        while True:
            event = await receive(ws)
            if event["type"] == "sync.state":
                states += 1
                last_seq = event["seq"]
                text = event["streaming"]["content"] if event["streaming"] else text
                break
            # Events sent before the state answered are stale by then; the state covers them.
        for _ in range(3):
            event = await receive(ws)
            assert event["seq"] == last_seq + 1, event
            last_seq = event["seq"]
            if event["type"] == "reply.delta":
                text += event["text"]
            if event["type"] == "reply.completed":
                break
        if event["type"] == "reply.completed":
            break
    while event["type"] != "reply.completed":
        event = await receive(ws)
        assert event["seq"] == last_seq + 1, event
        last_seq = event["seq"]
        if event["type"] == "reply.delta":
            text += event["text"]
    assert states >= 1
    assert text == event["content"]
    await ws.disconnect()


async def test_one_whole_reply_makes_a_bounded_number_of_queries(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    # Every ORM call of the consumer and the runner runs on asgiref's one sync thread:
    # capture there, and read the log there too (connections are per thread).
    capture = CaptureQueriesContext(connection)
    await database_sync_to_async(capture.__enter__)()
    await send_message(ws, "[[words=30]] count me")
    await collect_until(ws, "reply.completed")

    def finish():
        capture.__exit__(None, None, None)
        return [q["sql"].lstrip().upper() for q in capture.captured_queries]

    sql = await database_sync_to_async(finish)()
    writes = [q for q in sql if q.startswith(("INSERT", "UPDATE", "DELETE"))]
    assert sql, "no queries were captured"
    # The count must not grow with the number of deltas (30 words here).
    assert len(writes) <= 4, writes
    assert len(sql) <= 20, sql
    await ws.disconnect()


async def test_frames_and_closing_take_no_database_step_for_channels_stale_connection_check(
    conversation, owner, monkeypatch
):
    checks = []

    async def counted() -> None:
        checks.append(1)

    # Channels makes that check (a step on the one database thread) before every message a
    # consumer handles and after a socket closes; each of this consumer's database steps makes
    # it already.
    monkeypatch.setattr(channels_consumer, "aclose_old_connections", counted)
    monkeypatch.setattr(channels_websocket, "aclose_old_connections", counted)
    ws, _ = await synced(conversation.pk, owner)
    for _ in range(3):
        await send(ws, type="sync", after_seq=10**9)
        assert (await receive(ws))["type"] == "sync.state"
    await ws.disconnect()
    assert checks == []


async def test_anonymous_users_are_refused_with_4401(conversation):
    ws, connected = await open_socket(conversation.pk, user=None)
    assert connected
    assert (await ws.receive_output(timeout=3))["code"] == 4401


async def test_a_logged_out_session_no_longer_opens_a_socket(conversation, owner):
    def log_in_and_out():
        client = Client()
        client.force_login(owner)
        name = settings.SESSION_COOKIE_NAME
        return client, f"{name}={client.cookies[name].value}"

    client, cookie = await database_sync_to_async(log_in_and_out)()
    headers = [(b"origin", ORIGIN), (b"host", b"127.0.0.1"), (b"cookie", cookie.encode())]
    path = f"/ws/conversations/{conversation.pk}/"
    ws = WebsocketCommunicator(application, path, headers=headers)
    assert (await ws.connect(timeout=5))[0]
    await send(ws, type="sync", after_seq=0)
    assert (await receive(ws))["type"] == "sync.state"
    await ws.disconnect()
    await database_sync_to_async(client.post)(reverse("account_logout"))
    # The session was read through the cache above; logging out must drop it there too.
    ws = WebsocketCommunicator(application, path, headers=headers)
    await ws.connect(timeout=5)
    assert (await ws.receive_output(timeout=3))["code"] == 4401


async def test_another_users_conversation_and_a_missing_one_look_the_same(conversation):
    stranger = await database_sync_to_async(make_user)("stranger")
    ws, _ = await open_socket(conversation.pk, user=stranger)
    assert (await ws.receive_output(timeout=3))["code"] == 4404
    ws, _ = await open_socket(uuid.uuid4(), user=stranger)
    assert (await ws.receive_output(timeout=3))["code"] == 4404


async def test_a_foreign_origin_is_refused(conversation, owner):
    _ws, connected = await open_socket(conversation.pk, user=owner, origin=b"https://evil.example")
    assert not connected


async def test_deleting_a_conversation_mid_reply_ends_the_reply_quietly(
    m2her, conversation, owner, caplog
):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=30]][[tps=30]] go on")
    await collect_until(ws, "reply.delta")
    runner = streaming.running_reply(conversation.pk)
    assert runner is not None
    await database_sync_to_async(conversation_delete)(owner=owner, conversation=conversation)
    task = runner.task
    assert task is not None
    await asyncio.wait_for(task, 10)
    assert task.exception() is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not await database_sync_to_async(Turn.objects.filter(pk=runner.start.turn_id).exists)()
    await ws.disconnect()


async def test_a_misconfigured_backend_is_refused_before_anything_is_stored(
    conversation, owner, settings
):
    settings.LLM_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "hello?")
    error = (await collect_until(ws, "error"))[-1]
    assert error["code"] == "unavailable"
    assert "OPENAI" not in error["message"]
    assert await visible_turns(conversation) == [
        ("assistant", "*looks up from a book* Oh, hello Sam!", "complete")
    ]
    await ws.disconnect()


async def test_deltas_are_coalesced_the_first_at_once(m2her, conversation, owner, settings):
    settings.CHAT_FLUSH_INTERVAL_MS = 40
    ws, _ = await synced(conversation.pk, owner)
    # 40 words at 100 a second: 0.4 s of stream, about ten 40 ms intervals.
    await send_message(ws, "[[tps=100]][[words=40]] go")
    events = await collect_until(ws, "reply.completed")
    deltas = [e["text"] for e in events if e["type"] == "reply.delta"]
    assert "".join(deltas) == events[-1]["content"]
    assert deltas[0].count("word") == 1  # the first word is not held back
    assert 5 <= len(deltas) <= 16  # one frame per ~40 ms, not one per word
    await ws.disconnect()


async def test_a_stop_while_the_finished_reply_tidies_its_connection_keeps_it_whole(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    # The whole reply and `[DONE]` come at once, then the body stays open: the runner has the
    # reply while it spends up to DRAIN_SECONDS reading for the body's end. Stop lands there:
    # once every word has been sent, the runner has read them and `[DONE]` behind them (a stop
    # after only the first word may come while the runner is still sending it, before it has
    # read the rest, and stops the reply).
    await send_message(ws, "[[done]][[linger=2]] all of it")
    sent = ""
    while sent != "You said: all of it":
        event = await receive(ws)
        if event["type"] == "reply.delta":
            sent += event["text"]
    await send(ws, type="reply.stop")
    events = await collect_until(ws, "reply.completed", "reply.stopped")

    assert events[-1]["type"] == "reply.completed"
    assert events[-1]["content"] == "You said: all of it"
    stored = await turn(events[-1]["turn_id"])
    assert (stored.status, stored.content) == ("complete", "You said: all of it")
    await ws.disconnect()


async def test_two_syncs_sent_together_while_a_reply_streams_are_each_answered(
    m2her, conversation, owner
):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=60]][[tps=20]] keep talking")
    await collect_until(ws, "reply.delta")

    await send(ws, type="sync", after_seq=0)
    await send(ws, type="sync", after_seq=0)
    states: list[dict[str, Any]] = []
    while len(states) < 2:
        event = await receive(ws)
        if event["type"] == "sync.state":
            states.append(event)

    # Both from the start: each holds the whole conversation, the reply among it.
    for state in states:
        assert [t["role"] for t in state["turns"]] == ["assistant", "user", "assistant"]
        assert state["streaming"] is not None
    assert states[0]["seq"] <= states[1]["seq"]
    await send(ws, type="reply.stop")
    await collect_until(ws, "reply.stopped")
    await ws.disconnect()


async def test_a_usage_of_only_a_total_is_stored_and_sent_as_given(m2her, conversation, owner):
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[end=total_only]] Hi")
    completed = (await collect_until(ws, "reply.completed"))[-1]
    await send_message(ws, "Hello again")
    split = (await collect_until(ws, "reply.completed"))[-1]
    await ws.disconnect()

    only_total = await turn(completed["turn_id"])
    assert completed["usage"]["prompt_tokens"] is None
    assert completed["usage"]["total_tokens"] > 0
    assert (only_total.prompt_tokens, only_total.total_tokens) == (
        None,
        completed["usage"]["total_tokens"],
    )
    assert only_total.cost_usd is None
    usage = split["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (await turn(split["turn_id"])).total_tokens == usage["total_tokens"]

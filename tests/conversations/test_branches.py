import uuid

import pytest
from channels.db import database_sync_to_async

from conversations.models import Turn, TurnStatus
from conversations.services.branches import turn_delete, turn_select_candidate
from conversations.services.conversations import conversation_create
from conversations.services.replies import (
    ChatActionError,
    reply_begin_for_message,
    reply_begin_regenerate,
    reply_finish,
)
from conversations.services.sequence import conversation_current_seq
from conversations.sync import sync_state
from tests.conversations.chat_helpers import collect_until, send, send_message, synced
from tests.factories import make_character, make_persona

pytestmark = pytest.mark.django_db

GREETING = "*looks up from a book* Oh, hello Sam!"


@pytest.fixture
def conversation(alice):
    character = make_character(name="Aria", alternate_greetings=["Second hello."])
    persona = make_persona(alice, name="Sam")
    return conversation_create(owner=alice, character=character, persona=persona)


def finish(start, text):
    reply_finish(
        turn_id=start.turn_id, content=text, status=TurnStatus.COMPLETE, after_seq=start.next_seq
    )
    return Turn.objects.get(pk=start.turn_id)


def say(conversation, text):
    """The user's turn and its finished reply (`Re: <text>`)."""
    start = reply_begin_for_message(
        conversation_id=conversation.pk,
        user_id=conversation.owner_id,
        client_id=uuid.uuid4(),
        text=text,
    )
    reply = finish(start, f"Re: {text}")
    return reply.parent, reply


def regenerate(conversation, reply, text):
    start = reply_begin_regenerate(
        conversation_id=conversation.pk, user_id=conversation.owner_id, turn_id=reply.pk
    )
    return finish(start, text)


def select(conversation, turn, index):
    return turn_select_candidate(conversation_id=conversation.pk, turn_id=turn.pk, index=index)


def delete(conversation, turn):
    return turn_delete(conversation_id=conversation.pk, turn_id=turn.pk)


def transcript(conversation):
    return list(
        Turn.objects.filter(conversation=conversation, active=True)
        .order_by("seq")
        .values_list("content", flat=True)
    )


def greetings(conversation):
    return list(
        Turn.objects.filter(conversation=conversation, parent__isnull=True, role="assistant")
    )


def swipe_greeting_away_and_back(conversation):
    """Show the second greeting, then the first again; the events of coming back."""
    first, _ = greetings(conversation)
    select(conversation, first, 2)
    second = Turn.objects.get(conversation=conversation, parent__isnull=True, active=True)
    return select(conversation, second, 1)


def test_deleted_turns_stay_deleted_after_swiping_the_greeting_away_and_back(conversation):
    said, reply = say(conversation, "Something I regret")
    delete(conversation, reply)
    delete(conversation, said)

    for _ in range(2):
        back = swipe_greeting_away_and_back(conversation)

        assert transcript(conversation) == [GREETING]
        assert [e["type"] for e in back] == ["turns.hidden", "turn.updated"]
        assert back[-1]["turn"]["content"] == GREETING
    assert not Turn.objects.filter(pk__in=[said.pk, reply.pk], active=True).exists()


def test_a_turn_deleted_inside_a_branch_stays_deleted_when_its_candidate_is_chosen_again(
    conversation,
):
    _, first = say(conversation, "U1")
    said, _ = say(conversation, "U2")
    delete(conversation, said)  # its reply stays in the transcript
    again = regenerate(conversation, first, "A1 bis")
    assert transcript(conversation) == [GREETING, "U1", "A1 bis"]

    events = select(conversation, again, 1)

    assert transcript(conversation) == [GREETING, "U1", "Re: U1", "Re: U2"]
    assert events[0]["turn_ids"] == [again.pk]
    assert [e["turn"]["content"] for e in events[1:]] == ["Re: U1", "Re: U2"]
    assert all(e["turn"]["active"] for e in events[1:])


def test_swiping_back_shows_the_candidates_last_seen_without_the_deleted_turns(conversation):
    _, first = say(conversation, "U1")
    regenerate(conversation, first, "A1 bis")
    _, follow = say(conversation, "U2")
    delete(conversation, follow)
    assert transcript(conversation) == [GREETING, "U1", "A1 bis", "U2"]

    back = swipe_greeting_away_and_back(conversation)

    # The second candidate was the one on screen, so it comes back; the first stays a swipe.
    assert transcript(conversation) == [GREETING, "U1", "A1 bis", "U2"]
    assert [e["turn"]["content"] for e in back[1:]] == [GREETING, "U1", "A1 bis", "U2"]
    shown = back[3]["turn"]
    assert (shown["candidate_index"], shown["candidate_count"]) == (2, 2)


def test_events_and_sync_after_swiping_agree_with_the_stored_transcript(conversation):
    said, reply = say(conversation, "Hello")
    say(conversation, "Still here?")
    snapshot = sync_state(conversation_id=conversation.pk, after_seq=0)

    events = [*delete(conversation, reply), *delete(conversation, said)]
    first, _ = greetings(conversation)
    events += select(conversation, first, 2)
    second = Turn.objects.get(conversation=conversation, parent__isnull=True, active=True)
    events += select(conversation, second, 1)

    # Each change is numbered once, with no gap a client would take for a lost event.
    last = conversation_current_seq(conversation_id=conversation.pk)
    assert [e["seq"] for e in events] == list(range(snapshot.seq + 1, last + 1))
    expected = [GREETING, "Still here?", "Re: Still here?"]
    assert transcript(conversation) == expected
    by_events = client_view(snapshot.turns, events)
    assert by_events == expected
    resync = sync_state(conversation_id=conversation.pk, after_seq=snapshot.seq)
    assert resync.seq == last
    assert client_view(snapshot.turns, [], resync.turns) == expected


def test_a_turn_of_another_users_conversation_cannot_be_chosen(conversation, bob):
    other = conversation_create(owner=bob, character=make_character(name="Other"))
    foreign = Turn.objects.get(conversation=other, active=True)

    with pytest.raises(ChatActionError) as excinfo:
        select(conversation, foreign, 1)

    assert excinfo.value.code == "not_found"
    assert Turn.objects.get(pk=foreign.pk).updated_seq == foreign.updated_seq


def client_view(turns, events, synced_turns=()):
    """The transcript a client shows after loading `turns` and applying `events` (in order) and
    then the turns of a `sync.state`."""
    shown = {t["id"]: dict(t) for t in turns}
    for e in events:
        if e["type"] in ("turn.created", "turn.updated"):
            shown[e["turn"]["id"]] = dict(e["turn"])
        elif e["type"] == "turns.hidden":
            for turn_id in e["turn_ids"]:
                shown[turn_id]["active"] = False
    for t in synced_turns:
        shown[t["id"]] = dict(t)
    return [t["content"] for t in sorted(shown.values(), key=lambda t: t["seq"]) if t["active"]]


@database_sync_to_async
def stored_transcript(conversation):
    return transcript(conversation)


@pytest.mark.django_db(transaction=True)
async def test_a_client_swiping_away_and_back_does_not_see_its_deleted_turns(
    m2her, conversation, alice
):
    ws, state = await synced(conversation.pk, alice)
    greeting = state["turns"][0]
    await send_message(ws, "Something I regret")
    sent = await collect_until(ws, "reply.completed")
    said, reply = sent[0]["turn"]["id"], sent[-1]["turn_id"]
    events = list(sent)
    for turn_id in (reply, said):
        await send(ws, type="turn.delete", turn_id=turn_id)
        events += await collect_until(ws, "turns.hidden")
    await send(ws, type="reply.select", turn_id=greeting["id"], index=2)
    away = await collect_until(ws, "turn.updated")
    await send(ws, type="reply.select", turn_id=away[-1]["turn"]["id"], index=1)
    back = await collect_until(ws, "turn.updated")
    await ws.receive_nothing(timeout=0.3)  # no deleted turn follows the greeting back
    await ws.disconnect()

    assert [e["type"] for e in back] == ["turns.hidden", "turn.updated"]
    assert client_view(state["turns"], [*events, *away, *back]) == [GREETING]
    assert await stored_transcript(conversation) == [GREETING]

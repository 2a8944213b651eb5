import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from characters.models import Lorebook, LorebookEntry
from conversations.models import Turn, TurnStatus
from conversations.prompt_inputs import (
    HISTORY_FETCH_LIMIT,
    HISTORY_FIRST_READ,
    RecentTurn,
    conversation_for_prompt,
    prompt_input_for_conversation,
)
from conversations.prompts import build_prompt
from conversations.services.branches import turn_delete, turn_edit_reply, turn_select_candidate
from conversations.services.conversations import conversation_create
from conversations.services.replies import (
    ChatActionError,
    ReplyStart,
    reply_begin_continue,
    reply_begin_edit,
    reply_begin_for_message,
    reply_begin_regenerate,
    reply_finish,
)
from conversations.services.sequence import conversation_current_seq
from conversations.sync import sync_state
from tests.factories import make_character, make_persona, make_turns

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(alice):
    character = make_character(name="Aria", alternate_greetings=["Second hello."])
    persona = make_persona(alice, name="Sam")
    return conversation_create(owner=alice, character=character, persona=persona)


def send(conversation, text="Hi there", client_id=None):
    return reply_begin_for_message(
        conversation_id=conversation.pk,
        user_id=conversation.owner_id,
        client_id=client_id or uuid.uuid4(),
        text=text,
    )


def prompt_of(start):
    assert start.prompt is not None
    return start.prompt


def finish(start, text="Hello!", status=TurnStatus.COMPLETE):
    return reply_finish(
        turn_id=start.turn_id, content=text, status=status, after_seq=start.next_seq + 3
    )


def visible(conversation):
    return list(
        Turn.objects.filter(conversation=conversation, active=True)
        .order_by("seq")
        .values_list("role", "content", "status")
    )


def test_sending_stores_the_user_turn_and_a_placeholder_before_the_reply(conversation):
    start = send(conversation, "Hi there")
    assert visible(conversation) == [
        ("assistant", "*looks up from a book* Oh, hello Sam!", "complete"),
        ("user", "Hi there", "complete"),
        ("assistant", "", "streaming"),
    ]
    kinds = [e["type"] for e in start.events]
    assert kinds == ["turn.created", "turn.created", "reply.started"]
    seqs = [e["seq"] for e in start.events]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    # The reply's first event is numbered after the turns; its runner numbers on from it.
    assert start.next_seq == seqs[-1]
    assert start.events[-1]["turn_id"] == start.turn_id
    assert start.events[0]["turn"]["name"] == "Sam"
    assert prompt_of(start).history[-1].content == "Hi there"
    assert start.params.max_tokens == conversation.character.default_max_tokens


def test_resending_the_same_client_id_creates_nothing(conversation):
    client_id = uuid.uuid4()
    first = send(conversation, client_id=client_id)
    finish(first)
    again = send(conversation, client_id=client_id)
    assert again.duplicate
    assert Turn.objects.filter(conversation=conversation, role="user").count() == 1


def test_resending_while_its_reply_runs_is_a_duplicate_not_busy(conversation):
    client_id = uuid.uuid4()
    first = send(conversation, client_id=client_id)
    before = Turn.objects.count()
    again = send(conversation, client_id=client_id)
    assert again.duplicate
    assert again.turn_id == Turn.objects.get(client_id=client_id).pk
    assert Turn.objects.count() == before
    assert Turn.objects.get(pk=first.turn_id).status == "streaming"


def test_a_second_message_while_a_reply_runs_is_busy_and_writes_nothing(conversation):
    send(conversation)
    before = Turn.objects.count()
    with pytest.raises(ChatActionError) as excinfo:
        send(conversation, "another")
    assert excinfo.value.code == "busy"
    assert Turn.objects.count() == before


def test_a_reply_whose_runner_vanished_is_failed_as_interrupted(conversation):
    start = send(conversation)
    Turn.objects.filter(pk=start.turn_id).update(
        updated_at=timezone.now() - timedelta(hours=1), content="half a rep"
    )
    send(conversation, "hello again")
    stale = Turn.objects.get(pk=start.turn_id)
    assert (stale.status, stale.error_code, stale.content) == (
        "failed",
        "interrupted",
        "half a rep",
    )


def test_finishing_stamps_a_seq_past_the_runner_and_records_usage(conversation):
    start = send(conversation)
    seq = reply_finish(
        turn_id=start.turn_id,
        content="Hello!",
        status=TurnStatus.COMPLETE,
        after_seq=start.next_seq + 40,
        finish_reason="stop",
        prompt_tokens=300,
        completion_tokens=20,
        cost_usd="0.000114",
    )
    assert seq == start.next_seq + 41
    turn = Turn.objects.get(pk=start.turn_id)
    assert (turn.content, turn.status, turn.updated_seq) == ("Hello!", "complete", seq)
    assert (turn.prompt_tokens, turn.completion_tokens) == (300, 20)
    assert (turn.finish_reason, turn.cost_usd) == ("stop", Decimal("0.000114"))
    assert conversation_current_seq(conversation_id=conversation.pk) == seq
    # The next allocation continues after the finished reply's number.
    assert send(conversation, "next").events[0]["seq"] == seq + 1


def test_one_reply_costs_at_most_four_database_writes(conversation):
    with CaptureQueriesContext(connection) as ctx:
        start = send(conversation)
        finish(start)
    writes = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert len(writes) <= 4, writes


def test_regenerate_keeps_the_old_candidate_hidden_and_adds_a_sibling(conversation):
    first = send(conversation)
    finish(first, "First answer")
    again = reply_begin_regenerate(conversation_id=conversation.pk, user_id=conversation.owner_id)
    assert again.events[0] == {
        "type": "turns.hidden",
        "seq": again.events[0]["seq"],
        "turn_ids": [first.turn_id],
    }
    created = again.events[1]["turn"]
    assert (created["candidate_index"], created["candidate_count"]) == (2, 2)
    assert [t.content for t in prompt_of(again).history][-1] == "Hi there"
    finish(again, "Second answer")
    assert visible(conversation)[-1] == ("assistant", "Second answer", "complete")
    assert Turn.objects.get(pk=first.turn_id).content == "First answer"


def test_selecting_a_candidate_brings_back_its_branch(conversation):
    first = send(conversation)
    finish(first, "A1")
    follow = send(conversation, "U2")
    finish(follow, "A2")
    regen = reply_begin_regenerate(
        conversation_id=conversation.pk, user_id=conversation.owner_id, turn_id=first.turn_id
    )
    finish(regen, "A1 bis")
    assert [c for _, c, _ in visible(conversation)][-2:] == ["Hi there", "A1 bis"]
    events = turn_select_candidate(conversation_id=conversation.pk, turn_id=regen.turn_id, index=1)
    assert [c for _, c, _ in visible(conversation)][-4:] == ["Hi there", "A1", "U2", "A2"]
    assert events[0]["turn_ids"] == [regen.turn_id]
    assert [e["turn"]["content"] for e in events[1:]] == ["A1", "U2", "A2"]
    turn_select_candidate(conversation_id=conversation.pk, turn_id=first.turn_id, index=2)
    assert [c for _, c, _ in visible(conversation)][-2:] == ["Hi there", "A1 bis"]


def test_greeting_alternates_are_candidates_of_the_first_reply(conversation):
    greeting = Turn.objects.get(conversation=conversation, active=True)
    events = turn_select_candidate(conversation_id=conversation.pk, turn_id=greeting.pk, index=2)
    assert events[-1]["turn"]["content"] == "Second hello."
    assert events[-1]["turn"]["candidate_index"] == 2


def test_continue_extends_the_last_reply_in_place(conversation):
    first = send(conversation)
    finish(first, "Once upon a")
    more = reply_begin_continue(conversation_id=conversation.pk, user_id=conversation.owner_id)
    assert more.turn_id == first.turn_id
    assert more.prefix == "Once upon a"
    assert prompt_of(more).continue_last
    assert prompt_of(more).history[-1].content == "Once upon a"
    assert Turn.objects.get(pk=first.turn_id).status == "streaming"


def test_continue_needs_a_reply_last(conversation):
    start = send(conversation)
    Turn.objects.filter(pk=start.turn_id).delete()
    with pytest.raises(ChatActionError) as excinfo:
        reply_begin_continue(conversation_id=conversation.pk, user_id=conversation.owner_id)
    assert excinfo.value.code == "invalid"


def test_editing_a_user_turn_branches_and_replies_to_the_new_text(conversation):
    first = send(conversation, "Original")
    finish(first, "Reply to original")
    user_turn = Turn.objects.get(conversation=conversation, role="user")
    start = reply_begin_edit(
        conversation_id=conversation.pk,
        user_id=conversation.owner_id,
        turn_id=user_turn.pk,
        text="Edited",
    )
    assert start.events[0]["turn_ids"] == [user_turn.pk, first.turn_id]
    assert [c for _, c, _ in visible(conversation)][-2:] == ["Edited", ""]
    assert prompt_of(start).history[-1].content == "Edited"
    assert Turn.objects.filter(conversation=conversation).count() == 6


def test_editing_a_reply_replaces_its_text_and_deleting_hides_it(conversation):
    first = send(conversation)
    finish(first, "Typo reply")
    events = turn_edit_reply(conversation_id=conversation.pk, turn_id=first.turn_id, text="Fixed")
    assert events[0]["turn"]["content"] == "Fixed"
    hidden = turn_delete(conversation_id=conversation.pk, turn_id=first.turn_id)
    assert hidden[0]["turn_ids"] == [first.turn_id]
    assert Turn.objects.get(pk=first.turn_id).active is False


def test_turns_of_another_conversation_are_not_found(conversation, bob):
    other = conversation_create(owner=bob, character=make_character(name="Other"))
    foreign = Turn.objects.get(conversation=other, active=True)
    with pytest.raises(ChatActionError) as excinfo:
        turn_delete(conversation_id=conversation.pk, turn_id=foreign.pk)
    assert excinfo.value.code == "not_found"
    with pytest.raises(ChatActionError):
        reply_begin_regenerate(
            conversation_id=conversation.pk, user_id=conversation.owner_id, turn_id=foreign.pk
        )
    assert Turn.objects.get(pk=foreign.pk).active


def test_sync_state_lists_changes_after_a_seq_and_the_running_reply(conversation):
    start = send(conversation)
    state = sync_state(conversation_id=conversation.pk, after_seq=start.events[0]["seq"] - 1)
    assert [t["role"] for t in state.turns] == ["user", "assistant"]
    assert state.streaming_turn_id == start.turn_id
    seq = finish(start, "done")
    state = sync_state(conversation_id=conversation.pk, after_seq=seq - 1)
    assert [t["content"] for t in state.turns] == ["done"]
    assert state.streaming_turn_id is None
    assert state.seq == seq


@pytest.mark.django_db(transaction=True)
def test_a_message_stored_while_a_sync_reads_is_in_its_answer_or_after_its_seq(conversation):
    finish(send(conversation))
    after = conversation_current_seq(conversation_id=conversation.pk)
    stored: list[ReplyStart] = []

    def another_process_sends(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not stored:  # between the sync's first read and the next
            other = threading.Thread(target=lambda: stored.append(send(conversation, "meanwhile")))
            other.start()
            other.join()
        return result

    with connection.execute_wrapper(another_process_sends):
        state = sync_state(conversation_id=conversation.pk, after_seq=after)

    held = {turn["id"] for turn in state.turns}
    # Each new turn is in the answer, or its event comes after the answer's number.
    assert all(
        turn_event["turn"]["id"] in held or turn_event["seq"] > state.seq
        for turn_event in stored[0].events
        if turn_event["type"] == "turn.created"
    ), (state.seq, held, [turn_event["seq"] for turn_event in stored[0].events])


def test_concurrent_replies_per_user_are_limited(alice, settings):
    settings.CHAT_CONCURRENT_REPLIES_PER_USER = 1
    character = make_character()
    one = conversation_create(owner=alice, character=character)
    two = conversation_create(owner=alice, character=character)
    send(one)
    with pytest.raises(ChatActionError) as excinfo:
        send(two)
    assert excinfo.value.code == "rate_limited"


def test_a_stale_reply_elsewhere_does_not_count_as_running(alice, settings):
    settings.CHAT_CONCURRENT_REPLIES_PER_USER = 1
    character = make_character()
    one = conversation_create(owner=alice, character=character)
    two = conversation_create(owner=alice, character=character)
    orphan = send(one)  # its process died: nothing marks it alive any more
    Turn.objects.filter(pk=orphan.turn_id).update(updated_at=timezone.now() - timedelta(hours=1))

    started = send(two)

    assert not started.duplicate
    assert Turn.objects.get(pk=started.turn_id).status == "streaming"


def test_a_resend_refused_for_other_running_replies_is_still_a_duplicate(alice, settings):
    settings.CHAT_CONCURRENT_REPLIES_PER_USER = 1
    character = make_character()
    one = conversation_create(owner=alice, character=character)
    two = conversation_create(owner=alice, character=character)
    client_id = uuid.uuid4()
    finish(send(one, client_id=client_id))
    send(two)  # the user's one allowed reply now runs elsewhere
    again = send(one, client_id=client_id)
    assert again.duplicate
    assert Turn.objects.filter(conversation=one, role="user").count() == 1


def prompt_from_every_recent_turn(conversation):
    """The prompt the next reply would get if its start read the whole capped history."""
    rows = (
        Turn.objects.filter(conversation=conversation, active=True)
        .order_by("-seq")
        .values_list("id", "role", "name", "content", "status")[:HISTORY_FETCH_LIMIT]
    )
    recent = [RecentTurn(*row) for row in rows]
    loaded = conversation_for_prompt(conversation_id=conversation.pk)
    return prompt_input_for_conversation(conversation=loaded, recent=recent)


# About 60 tokens: the first read of a long conversation outweighs the prompt's budget.
LONG_TURN = "a long line of role-play " * 10


def test_a_long_conversation_reads_only_the_turns_its_prompt_can_hold(conversation):
    make_turns(conversation, 300, text=LONG_TURN)
    with CaptureQueriesContext(connection) as queries:
        start = send(conversation, "And then?")

    assert not any(f"LIMIT {HISTORY_FETCH_LIMIT}" in q["sql"] for q in queries.captured_queries)
    assert len(prompt_of(start).history) <= HISTORY_FIRST_READ + 1
    # The same prompt as from the whole capped history: nothing older could have fitted.
    expected = prompt_from_every_recent_turn(conversation)
    assert len(expected.history) > HISTORY_FIRST_READ + 1
    assert build_prompt(prompt_of(start)).messages == build_prompt(expected).messages


def test_short_turns_are_read_up_to_the_cap_when_more_of_them_fit(conversation):
    make_turns(conversation, 300, text="ok")
    start = send(conversation, "And then?")

    history = prompt_of(start).history
    assert len(history) > HISTORY_FIRST_READ + 1
    assert history == prompt_from_every_recent_turn(conversation).history


def test_a_lorebook_that_scans_deeper_than_the_first_read_still_sees_its_keys(conversation):
    book = Lorebook.objects.create(character=conversation.character, scan_depth=100)
    LorebookEntry.objects.create(lorebook=book, keys=["lighthouse"], content="The lighthouse.")
    make_turns(conversation, 2, text="We passed the lighthouse at dawn")
    make_turns(conversation, 60, text=LONG_TURN)

    start = send(conversation, "And then?")

    assert prompt_of(start).lore == ("The lighthouse.",)


def test_an_entry_scanning_deeper_than_its_book_still_sees_its_keys(conversation):
    book = Lorebook.objects.create(character=conversation.character, scan_depth=2)
    LorebookEntry.objects.create(
        lorebook=book, keys=["lighthouse"], content="@@scan_depth 100\nThe lighthouse."
    )
    make_turns(conversation, 2, text="We passed the lighthouse at dawn")
    make_turns(conversation, 60, text=LONG_TURN)

    start = send(conversation, "And then?")

    assert prompt_of(start).lore == ("The lighthouse.",)


def test_a_start_that_breaks_after_storing_fails_its_placeholder_and_frees_the_conversation(
    conversation,
):
    book = Lorebook.objects.create(character=conversation.character)
    entry = LorebookEntry.objects.create(lorebook=book, keys=["rain"], content="It rains.")
    # Stored by something other than this app (a hand-edited row, an old import): keys that
    # are not a list. Reading them breaks the prompt, after the message is stored.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE characters_lorebookentry SET keys = %s WHERE id = %s", ["5", entry.pk]
        )

    with pytest.raises(TypeError):  # reported to the client as a server error
        send(conversation, "Is it raining?")

    placeholder, user_turn = Turn.objects.filter(conversation=conversation).order_by("-seq")[:2]
    assert (user_turn.role, user_turn.content) == ("user", "Is it raining?")  # nothing lost
    assert (placeholder.role, placeholder.status) == ("assistant", TurnStatus.FAILED)
    assert placeholder.error_code == "upstream_unavailable"
    LorebookEntry.objects.filter(pk=entry.pk).update(keys=["rain"])
    assert send(conversation, "And now?").prompt is not None  # not held busy


def test_no_index_of_the_turn_table_is_the_leading_part_of_another():
    # Every message inserts two turns, and each insert updates every index of the table: an
    # index whose columns lead another one answers nothing the longer one cannot.
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Turn._meta.db_table)
    indexes = {
        name: tuple(found["columns"])
        for name, found in constraints.items()
        if found["index"] and not found["unique"] and not found["primary_key"]
    }
    everything = [tuple(found["columns"]) for found in constraints.values() if found["index"]]
    covered = {
        name: other
        for name, columns in indexes.items()
        for other in everything
        if len(other) > len(columns) and other[: len(columns)] == columns
    }
    assert indexes  # the composite ones are there
    assert covered == {}

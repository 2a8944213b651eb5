"""`Compiled` statements give what the ORM gives, with the caller's values, on every database."""

import datetime as dt
import gc
import threading
import uuid
import weakref
from decimal import Decimal
from typing import cast

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import F
from django.db.models.sql import Query, UpdateQuery
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from companion.compiled import PLANS_ATTRIBUTE, Compiled, constant, insert_query
from conversations import sync
from conversations.models import Conversation, Turn, TurnStatus
from conversations.services import replies
from conversations.services.replies import turn_insert
from tests.factories import make_conversation, make_turns, make_user

pytestmark = pytest.mark.django_db

CONVERSATION = uuid.UUID(int=0xC0FFEE)


def _turns(conversation_id: uuid.UUID) -> Query:
    return (
        Turn.objects.filter(conversation_id=conversation_id, active=True)
        .order_by("-seq")
        .values_list("id", "conversation_id", "content", "created_at")
        .query
    )


turns = Compiled(_turns, conversation_id=CONVERSATION)


def test_rows_are_the_orms_for_each_callers_values():
    owner = make_user()
    first, second = make_conversation(owner), make_conversation(owner)
    make_turns(first, 1, text="one")
    make_turns(second, 3, text="two")
    for conversation in (first, second):
        expected = list(
            Turn.objects.filter(conversation_id=conversation.pk, active=True)
            .order_by("-seq")
            .values_list("id", "conversation_id", "content", "created_at")
        )
        got = turns.rows(conversation_id=conversation.pk)
        assert got == [tuple(row) for row in expected]
        # The ORM's converters ran: typed values, not the database's text.
        assert isinstance(got[0][1], uuid.UUID)
        assert isinstance(got[0][3], dt.datetime)
    assert turns.rows(conversation_id=uuid.uuid4()) == []
    # A UUID given as text (as a URL gives it) binds the same way.
    assert turns.rows(conversation_id=str(second.pk)) == turns.rows(conversation_id=second.pk)


def test_compiled_once_per_connection():
    conversation = make_conversation(make_user())
    calls = []

    def build(conversation_id: uuid.UUID) -> Query:
        calls.append(conversation_id)
        return _turns(conversation_id)

    statement = Compiled(build, conversation_id=CONVERSATION)
    for _ in range(3):
        with CaptureQueriesContext(connection) as queries:
            statement.rows(conversation_id=conversation.pk)
        assert len(queries) == 1
    assert calls == [CONVERSATION]


def _bump(conversation_id: uuid.UUID, count: int, now: dt.datetime) -> UpdateQuery:
    query = cast(
        UpdateQuery, Conversation.objects.filter(pk=conversation_id).query.chain(UpdateQuery)
    )
    query.add_update_values({"last_seq": F("last_seq") + count, "updated_at": now})
    return query


def test_update_returning_binds_every_marker():
    bump = Compiled(
        _bump,
        returning=["last_seq"],
        conversation_id=CONVERSATION,
        count=987_654_321,
        now=dt.datetime(2001, 2, 3, 4, 5, 6, 789, tzinfo=dt.UTC),
    )
    owner = make_user()
    conversation, other = make_conversation(owner), make_conversation(owner)
    before = Conversation.objects.get(pk=conversation.pk).last_seq
    now = timezone.now()
    assert bump.rows(conversation_id=conversation.pk, count=5, now=now) == [(before + 5,)]
    stored = Conversation.objects.get(pk=conversation.pk)
    assert stored.updated_at == now
    # Only the row asked for changed.
    assert Conversation.objects.get(pk=other.pk).last_seq == other.last_seq
    assert bump.rows(conversation_id=uuid.uuid4(), count=1, now=now) == []


def test_a_marker_that_is_not_a_parameter_is_an_error():
    statement = Compiled(
        lambda conversation_id, limit: _turns(conversation_id),
        conversation_id=CONVERSATION,
        limit=424_242,
    )
    with pytest.raises(ImproperlyConfigured, match="limit"):
        statement.rows(conversation_id=CONVERSATION, limit=1)


def test_returning_needs_an_update_or_an_insert():
    statement = Compiled(_turns, returning=["id"], conversation_id=CONVERSATION)
    with pytest.raises(ImproperlyConfigured, match="UPDATE or an INSERT"):
        statement.rows(conversation_id=CONVERSATION)


def _columns(turn: Turn) -> dict[str, object]:
    return {f.attname: getattr(turn, f.attname) for f in Turn._meta.concrete_fields}


def test_a_compiled_insert_stores_what_save_stores():
    conversation = make_conversation(make_user())
    [parent] = make_turns(conversation, 1)
    values = {
        "conversation": conversation,
        "parent": parent,
        "role": "assistant",
        "name": "Mira",
        "content": "Évening — 你好 \u2028 'quoted'",
        "status": "failed",
        "finish_reason": "length",
        "prompt_tokens": 120,
        "completion_tokens": 7,
        "total_tokens": 127,
        "cost_usd": Decimal("0.00012345"),
        "model_name": "M2-her",
        "error_code": "timeout",
        "error_message": "slow",
        "client_id": uuid.uuid4(),
        "active": False,
    }
    saved = Turn(seq=100, updated_seq=100, **values)
    saved.save(force_insert=True)
    inserted = Turn(seq=101, updated_seq=102, **{**values, "client_id": uuid.uuid4()})
    turn_insert(inserted)

    assert inserted.pk is not None
    assert inserted.pk != saved.pk
    assert not inserted._state.adding
    stored = _columns(Turn.objects.get(pk=inserted.pk))
    assert stored == _columns(inserted)
    expected = _columns(Turn.objects.get(pk=saved.pk))
    differ = {"id", "seq", "updated_seq", "client_id", "created_at", "updated_at"}
    assert {k: v for k, v in stored.items() if k not in differ} == {
        k: v for k, v in expected.items() if k not in differ
    }
    # Nulls bind too, and the database's constraints still hold.
    bare = Turn(conversation=conversation, seq=103, updated_seq=103, role="user", name="Sam")
    turn_insert(bare)
    assert Turn.objects.get(pk=bare.pk).parent_id is None
    with pytest.raises(IntegrityError), transaction.atomic():
        turn_insert(Turn(conversation=conversation, seq=103, updated_seq=103, role="user"))


def test_a_threads_plans_do_not_outlive_its_connection():
    # Each thread has its own connection wrapper; its plans are kept on it, so a finished
    # thread's wrapper (and its open database connection) can be freed.
    conversation = make_conversation(make_user())
    seen: list[weakref.ref[object]] = []

    def in_a_thread() -> None:
        turns.rows(conversation_id=conversation.pk)
        seen.append(weakref.ref(connections["default"]))
        connections["default"].close()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    gc.collect()
    assert seen
    assert seen[0]() is None


def test_a_compiled_insert_refuses_an_unsaved_parent_as_save_does():
    conversation = make_conversation(make_user())
    unsaved = Turn(conversation=conversation, seq=1, updated_seq=1, role="user", name="Sam")
    child = Turn(conversation=conversation, seq=2, updated_seq=2, role="assistant", parent=unsaved)
    with pytest.raises(ValueError, match="unsaved"):
        turn_insert(child)
    assert not Turn.objects.filter(seq=2, conversation=conversation).exists()


def test_an_insert_without_a_marker_for_every_column_is_an_error():
    # A column left out would be compiled in with its default value for every row.
    statement = Compiled(
        lambda **values: insert_query(Turn, values),
        returning=["id"],
        conversation_id=CONVERSATION,
        seq=987_654_322,
    )
    with pytest.raises(ImproperlyConfigured, match="updated_seq"):
        statement.rows(conversation_id=CONVERSATION, seq=1)


def _running(conversation_id: uuid.UUID) -> Query:
    return (
        Turn.objects.filter(conversation_id=conversation_id, status=constant(TurnStatus.STREAMING))
        .values_list("id", flat=True)
        .query
    )


running = Compiled(_running, conversation_id=CONVERSATION)


def test_a_constant_is_written_into_the_statement_not_bound():
    owner = make_user()
    conversation, other = make_conversation(owner), make_conversation(owner)
    done, streaming = make_turns(conversation, 2)
    Turn.objects.filter(pk=streaming.pk).update(status=TurnStatus.STREAMING)
    _, elsewhere = make_turns(other, 2)
    Turn.objects.filter(pk=elsewhere.pk).update(status=TurnStatus.STREAMING)

    assert running.rows(conversation_id=conversation.pk) == [(streaming.pk,)]
    assert done.status == TurnStatus.COMPLETE
    with CaptureQueriesContext(connection) as captured:
        running.rows(conversation_id=conversation.pk)
    # The status is in the text; the only parameter left is the conversation.
    (query,) = captured.captured_queries
    assert "'streaming'" in query["sql"]
    plan = connections["default"].__dict__[PLANS_ATTRIBUTE][running]
    assert TurnStatus.STREAMING not in plan.params
    assert len(plan.params) == 1


def test_the_lookups_of_a_running_reply_bind_no_status():
    owner = make_user()
    conversation = make_conversation(owner)
    _, streaming = make_turns(conversation, 2)
    Turn.objects.filter(pk=streaming.pk).update(status=TurnStatus.STREAMING)
    lookups = {
        sync._streaming: {"conversation_id": conversation.pk},
        replies._streaming_in_conversation: {"conversation_id": conversation.pk},
        replies._streaming_for_user: {"user_id": owner.pk},
    }
    for statement, values in lookups.items():
        assert len(statement.rows(**values)) == 1
        plan = connections["default"].__dict__[PLANS_ATTRIBUTE][statement]
        assert "'streaming'" in plan.sql
        assert TurnStatus.STREAMING not in plan.params


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_the_running_reply_is_found_through_the_partial_index():
    conversation = make_conversation(make_user())
    running.rows(conversation_id=conversation.pk)
    plan = connections["default"].__dict__[PLANS_ATTRIBUTE][running]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {plan.sql}", [conversation.pk.hex])
        steps = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "one_streaming_reply_per_conversation" in steps


@pytest.mark.parametrize("value", ["it's", "a b", "Streaming", "", "x; drop table auth_user"])
def test_only_a_plain_word_is_a_constant(value):
    with pytest.raises(ImproperlyConfigured):
        constant(value)

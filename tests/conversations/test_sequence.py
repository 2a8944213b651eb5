"""Sequence numbers: the newest turn's number is found in one step down the index, however long
the conversation, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conversations.models import Conversation, Turn
from conversations.services.sequence import conversation_allocate_seq, conversation_current_seq
from tests.factories import make_conversation, make_turns, make_user

pytestmark = pytest.mark.django_db


def sqlite_steps(call: Callable[[], Any]) -> int:
    """The virtual-machine instructions SQLite ran for `call`: a count of work, not a time."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    connection.ensure_connection()
    raw: Any = connection.connection
    raw.set_progress_handler(tick, 1)
    try:
        call()
    finally:
        raw.set_progress_handler(None, 1)
    return steps


def postgres_plans(call: Callable[[], Any]) -> list[str]:
    """PostgreSQL's plan of each statement `call` runs."""
    with CaptureQueriesContext(connection) as queries:
        call()
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].startswith(("SELECT", "UPDATE")):
                cursor.execute("EXPLAIN " + query["sql"])
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def allocate(conversation: Conversation) -> Callable[[], int]:
    def call() -> int:
        with transaction.atomic():
            return conversation_allocate_seq(conversation_id=conversation.pk)

    return call


def current(conversation: Conversation) -> Callable[[], int]:
    return lambda: conversation_current_seq(conversation_id=conversation.pk)


@pytest.mark.parametrize("step", [allocate, current], ids=["allocate", "current"])
def test_the_newest_number_costs_the_same_in_a_long_conversation(step):
    owner = make_user()
    short, long = make_conversation(owner), make_conversation(owner)
    make_turns(short, 4)
    make_turns(long, 3000)

    if connection.vendor == "sqlite":
        step(short)()  # statements compiled and cached alike
        step(long)()
        # A walk over the long one's turns would take tens of thousands more steps.
        assert sqlite_steps(step(long)) < sqlite_steps(step(short)) + 200
    else:
        for plan in postgres_plans(step(long)):
            assert "Aggregate" not in plan, plan


def test_a_turn_numbered_past_the_conversation_is_counted():
    # A finished reply stamps its turn past the numbers its deltas used, without touching the
    # conversation's own counter.
    conversation = make_conversation(make_user())
    turns = make_turns(conversation, 6)
    last = conversation_current_seq(conversation_id=conversation.pk)
    Turn.objects.filter(pk=turns[2].pk).update(updated_seq=last + 50)

    assert conversation_current_seq(conversation_id=conversation.pk) == last + 50
    assert allocate(conversation)() == last + 51
    assert conversation_current_seq(conversation_id=conversation.pk) == last + 51

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Role, Turn
from conversations.selectors import (
    conversation_get_for_user,
    conversation_list_for_user,
    turn_page_for_conversation,
    usage_for_user,
    usage_months_for_user,
)
from tests.factories import make_character, make_conversation, make_turns


def seqs(page):
    return [t["seq"] for t in page.turns]


def test_my_conversation_is_returned_with_its_relations(alice, django_assert_num_queries):
    conversation = make_conversation(alice)

    with django_assert_num_queries(1):
        found = conversation_get_for_user(conversation_id=conversation.pk, user=alice)
        assert found.character.name == "Aria"


def test_another_users_or_a_missing_conversation_is_a_404(alice, bob):
    conversation = make_conversation(alice)

    attempts: list[tuple[Any, Any]] = [
        (bob, conversation.pk),
        (alice, uuid.uuid4()),
        (alice, "not-a-uuid"),
        (AnonymousUser(), conversation.pk),
    ]
    for user, conversation_id in attempts:
        with pytest.raises(Http404):
            conversation_get_for_user(conversation_id=conversation_id, user=user)


def test_list_holds_only_mine_most_recent_first_with_the_last_message(alice, bob):
    older = make_conversation(alice, make_character(alice, name="Old"))
    newer = make_conversation(alice, make_character(alice, name="New"))
    make_conversation(bob)
    make_turns(older, 2, text="x" * 500)

    listed: list[Any] = list(conversation_list_for_user(user=alice))

    assert [c.pk for c in listed] == [older.pk, newer.pk]
    assert listed[0].last_message == "x" * 160
    assert listed[0].last_role == Role.ASSISTANT
    assert listed[1].last_message.startswith("*looks up from a book*")


def test_turn_page_is_the_newest_turns_in_ascending_order(alice):
    conversation = make_conversation(alice, make_character(alice, greeting=""))
    make_turns(conversation, 10)

    first = turn_page_for_conversation(conversation=conversation, limit=4)
    second = turn_page_for_conversation(conversation=conversation, before_seq=7, limit=4)
    last = turn_page_for_conversation(conversation=conversation, before_seq=3, limit=4)

    assert (seqs(first), first.has_more) == ([7, 8, 9, 10], True)
    assert (seqs(second), second.has_more) == ([3, 4, 5, 6], True)
    assert (seqs(last), last.has_more) == ([1, 2], False)
    assert set(first.turns[0]) == {
        "id",
        "seq",
        "role",
        "name",
        "content",
        "status",
        "finish_reason",
        "created_at",
        "client_id",
        "parent_id",
        "active",
        "error",
        "candidate_index",
        "candidate_count",
    }
    assert first.turns[1]["candidate_index"] == 1


def test_paging_back_visits_every_active_turn_once(alice):
    conversation = make_conversation(alice)
    make_turns(conversation, 23)
    Turn.objects.filter(conversation=conversation, seq__in=[5, 6]).update(active=False)
    expected = list(
        Turn.objects.filter(conversation=conversation, active=True)
        .order_by("seq")
        .values_list("seq", flat=True)
    )

    seen: list[int] = []
    before = None
    while True:
        page = turn_page_for_conversation(conversation=conversation, before_seq=before, limit=5)
        seen = seqs(page) + seen
        if not page.has_more:
            break
        before = page.turns[0]["seq"]

    assert seen == expected
    assert 5 not in seen
    assert 6 not in seen


def test_limit_is_capped(alice):
    conversation = make_conversation(alice)
    make_turns(conversation, 260)

    page = turn_page_for_conversation(conversation=conversation, limit=10_000)

    assert len(page.turns) == 200
    assert page.has_more


def test_greeting_swipes_report_their_position_among_siblings(alice):
    character = make_character(alice, alternate_greetings=["Two", "Three"])
    conversation = make_conversation(alice, character)

    page = turn_page_for_conversation(conversation=conversation)

    assert [(t["seq"], t["candidate_index"], t["candidate_count"]) for t in page.turns] == [
        (1, 1, 3)
    ]
    Turn.objects.filter(conversation=conversation, seq=1).update(active=False)
    Turn.objects.filter(conversation=conversation, seq=3).update(active=True)
    page = turn_page_for_conversation(conversation=conversation)
    assert [(t["candidate_index"], t["candidate_count"]) for t in page.turns] == [(3, 3)]


def test_regenerated_replies_count_only_their_own_siblings(alice):
    conversation = make_conversation(alice, make_character(alice, greeting=""))
    _user_a, reply_a, user_b, reply_b = make_turns(conversation, 4)
    # Two more candidates for the last reply; the first one stays active.
    for seq in (5, 6):
        Turn.objects.create(
            conversation=conversation,
            seq=seq,
            updated_seq=seq,
            parent=user_b,
            active=False,
            role=Role.ASSISTANT,
            name="Aria",
            content=f"retry {seq}",
        )

    page = turn_page_for_conversation(conversation=conversation)

    candidates = {
        t["seq"]: (t["candidate_index"], t["candidate_count"])
        for t in page.turns
        if t["role"] == Role.ASSISTANT
    }
    assert candidates == {reply_a.seq: (1, 1), reply_b.seq: (1, 3)}
    assert (page.turns[0]["candidate_index"], page.turns[0]["candidate_count"]) == (1, 1)


def test_a_page_of_a_long_conversation_takes_a_fixed_number_of_queries(
    alice, django_assert_max_num_queries
):
    conversation = make_conversation(alice, make_character(alice, alternate_greetings=["Two"]))
    make_turns(conversation, 5000)

    with django_assert_max_num_queries(2):
        newest = turn_page_for_conversation(conversation=conversation, limit=200)
    with django_assert_max_num_queries(2):
        oldest = turn_page_for_conversation(conversation=conversation, before_seq=60, limit=200)

    assert len(newest.turns) == 200
    assert newest.turns[-1]["seq"] == conversation.last_seq
    assert seqs(oldest) == [1, *range(3, 60)]
    assert not oldest.has_more
    assert oldest.turns[0]["candidate_count"] == 2


@pytest.mark.skipif(connection.vendor != "sqlite", reason="query plans differ per database")
def test_turn_page_query_seeks_an_index_instead_of_sorting(alice):
    conversation = make_conversation(alice)
    make_turns(conversation, 50)
    with CaptureQueriesContext(connection) as captured:
        turn_page_for_conversation(conversation=conversation, before_seq=40, limit=10)
    page_sql = captured.captured_queries[0]["sql"]

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {page_sql}")
        plan = " ".join(str(row) for row in cursor.fetchall())

    assert "USING INDEX" in plan
    assert "conversation_id=?" in plan
    assert "TEMP B-TREE" not in plan


def test_usage_sums_tokens_and_cost_of_my_turns_per_month(alice, bob):
    conversation = make_conversation(alice, make_character(alice, greeting=""))
    _user_turn, reply, _, old_reply = make_turns(conversation, 4)
    Turn.objects.filter(pk=reply.pk).update(
        prompt_tokens=1000, completion_tokens=200, cost_usd=Decimal("0.00054")
    )
    last_year = timezone.now() - dt.timedelta(days=400)
    Turn.objects.filter(pk=old_reply.pk).update(
        prompt_tokens=10, completion_tokens=5, cost_usd=Decimal("0.00001"), created_at=last_year
    )
    bobs = make_conversation(bob, make_character(bob, greeting=""))
    Turn.objects.filter(pk=make_turns(bobs, 2)[1].pk).update(prompt_tokens=7, completion_tokens=7)

    total = usage_for_user(user=alice)
    this_month = usage_for_user(user=alice, month=reply.created_at.date().replace(day=1))
    months = usage_months_for_user(user=alice)

    assert (total.replies, total.prompt_tokens, total.completion_tokens) == (2, 1010, 205)
    assert total.cost_usd == Decimal("0.00055")
    assert (this_month.prompt_tokens, this_month.completion_tokens) == (1000, 200)
    assert months == [reply.created_at.date().replace(day=1), last_year.date().replace(day=1)]
    assert usage_for_user(user=alice, month=dt.date(2001, 12, 1)).prompt_tokens == 0

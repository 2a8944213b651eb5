"""Usage outlives deleted conversations: their tokens and cost stay in the owner's accounts."""

import datetime as dt
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation, Turn, UsageCarry
from conversations.selectors import usage_for_user, usage_months_for_user
from conversations.services.conversations import conversation_delete
from tests.admin_pages import logged_in
from tests.factories import make_character, make_conversation, make_turns, make_user

pytestmark = pytest.mark.django_db

LIST = reverse("conversations:list")


def spend(conversation, *usages, created_at=None):
    """Give the conversation's replies (prompt, completion, total, cost) usages."""
    replies = [t for t in make_turns(conversation, 2 * len(usages)) if t.role == "assistant"]
    for reply, (prompt, completion, total, cost) in zip(replies, usages, strict=True):
        values = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": total,
            "cost_usd": cost,
        }
        if created_at is not None:
            values["created_at"] = created_at
        Turn.objects.filter(pk=reply.pk).update(**values)


def test_deleting_a_conversation_keeps_its_usage_in_the_owners_accounts(alice, bob):
    chat = make_conversation(alice, make_character(alice, greeting=""))
    last_year = timezone.now() - dt.timedelta(days=400)
    spend(chat, (1000, 200, 1200, Decimal("0.00054")), (None, None, 70, None))
    spend(chat, (10, 5, 15, Decimal("0.00001")), created_at=last_year)
    kept = make_conversation(alice, make_character(alice, greeting=""))
    spend(kept, (1, 2, 3, Decimal("0.00000300")))
    bobs = make_conversation(bob, make_character(bob, greeting=""))
    spend(bobs, (99, 99, 198, Decimal("0.5")))
    before = usage_for_user(user=alice)
    months = usage_months_for_user(user=alice)
    this_month = months[0]
    month_before = usage_for_user(user=alice, month=this_month)

    assert logged_in(alice).post(LIST, {"delete": str(chat.pk)}).status_code == 302

    assert usage_for_user(user=alice) == before
    assert (before.replies, before.total_tokens, before.unpriced) == (4, 1288, 1)
    assert before.cost_usd == Decimal("0.000553")
    assert usage_months_for_user(user=alice) == months
    assert usage_for_user(user=alice, month=this_month) == month_before
    assert usage_for_user(user=alice, month=months[1]).prompt_tokens == 10
    assert usage_for_user(user=bob).total_tokens == 198


def test_a_character_deleted_with_others_chats_leaves_their_usage(alice, bob, admin_user):
    character = make_character(alice)
    bobs = make_conversation(bob, character)
    spend(bobs, (500, 50, 550, Decimal("0.0002")))

    url = reverse("admin:characters_character_delete", args=[character.pk])
    assert logged_in(admin_user).post(url, {"post": "yes"}).status_code == 302

    assert usage_for_user(user=bob).total_tokens == 550
    assert usage_for_user(user=alice).total_tokens == 0


def test_a_deleted_account_takes_its_carried_usage_along(alice, bob):
    chat = make_conversation(alice, make_character(bob, greeting=""))
    spend(chat, (5, 5, 10, Decimal("0.00001")))
    chat.delete()
    assert UsageCarry.objects.filter(owner=alice).exists()
    other = make_conversation(alice, make_character(bob, greeting=""))
    spend(other, (5, 5, 10, Decimal("0.00001")))

    alice.delete()

    assert not UsageCarry.objects.exists()
    assert usage_for_user(user=make_user("fresh")).total_tokens == 0


@pytest.mark.parametrize("how", ["instance", "queryset"])
def test_deleting_a_creators_account_keeps_the_usage_of_others_chats_with_their_characters(
    alice, bob, how
):
    mine = make_conversation(alice, make_character(bob, greeting=""))
    spend(mine, (5, 5, 10, Decimal("0.00001")))
    theirs = make_conversation(bob, make_character(alice, greeting=""))
    spend(theirs, (500, 50, 550, Decimal("0.0002")))

    if how == "instance":
        alice.delete()
    else:
        type(alice).objects.filter(pk=alice.pk).delete()

    assert usage_for_user(user=bob).total_tokens == 550
    assert not UsageCarry.objects.filter(owner_id=alice.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_two_deletes_of_one_conversation_at_once_carry_its_usage_once(alice):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the two deletes cannot overlap there")
    chat = make_conversation(alice, make_character(alice, greeting=""))
    spend(chat, (1000, 200, 1200, Decimal("0.5")))
    # Two tabs' requests, each with its own read of the row.
    mine, theirs = Conversation.objects.get(pk=chat.pk), Conversation.objects.get(pk=chat.pk)
    deleted, may_commit = threading.Event(), threading.Event()
    errors: list[Exception] = []

    first = threading.Thread(
        target=_delete, args=(mine, errors), kwargs={"hold": (deleted, may_commit)}
    )
    first.start()
    assert deleted.wait(5)
    # The first has deleted but not committed; the second now waits for its lock, and when it
    # gets it, the row is gone.
    second = threading.Thread(target=_delete, args=(theirs, errors))
    second.start()
    time.sleep(0.3)
    may_commit.set()
    first.join(5)
    second.join(5)

    assert not errors
    assert not Conversation.objects.filter(pk=chat.pk).exists()
    carried = UsageCarry.objects.get(owner=alice)
    assert (carried.replies, carried.total_tokens, carried.cost_usd) == (1, 1200, Decimal("0.5"))


def _delete(conversation, errors, *, hold=None):
    """Delete as the list page does, in a thread of its own; with `hold` (two events), set the
    first once deleted and wait for the second before committing."""
    try:
        with transaction.atomic():
            conversation_delete(owner=conversation.owner, conversation=conversation)
            if hold is not None:
                hold[0].set()
                hold[1].wait(5)
    except Exception as exc:  # reported by the test, not lost with the thread
        errors.append(exc)
    finally:
        connections.close_all()


def test_the_months_of_usage_come_from_the_database_one_row_each(alice, bob):
    chat = make_conversation(alice, make_character(alice, greeting=""))
    last_year = timezone.now() - dt.timedelta(days=400)
    spend(chat, *[(1, 1, 2, Decimal("0.001"))] * 30)
    spend(chat, *[(1, 1, 2, Decimal("0.001"))] * 20, created_at=last_year)
    make_turns(make_conversation(bob), 10)  # not alice's

    rows: list[int] = []

    def counted(execute, sql, params, many, context):
        if "DISTINCT" in sql and not rows:
            rows.append(0)  # the statement below passes through here too
            with connection.cursor() as cursor:  # the same statement, to count its rows
                cursor.execute(sql, params)
                rows[-1] = len(cursor.fetchall())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counted):
        months = usage_months_for_user(user=alice)

    this_month = timezone.now().date().replace(day=1)
    assert months == [this_month, last_year.date().replace(day=1)]
    # A row per turn (100 of them) would make a long history's account page slow.
    assert rows == [2]

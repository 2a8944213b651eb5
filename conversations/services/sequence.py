"""Per-conversation event numbers: every change a client can see gets the next one.

`Conversation.last_seq` is the last number handed out by a transaction; a finished reply stamps
its turn's `updated_seq` past the numbers its deltas used without touching the conversation row,
so the current number is the larger of the two (one write saved per reply).
"""

from __future__ import annotations

import datetime
from typing import cast
from uuid import UUID

from django.db import transaction
from django.db.models import F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from companion.compiled import Compiled
from conversations.models import Conversation, Turn


def _max_turn_seq() -> Coalesce:
    # The newest by the (conversation, updated_seq) index: one step down the index, whatever
    # the conversation's length. The ORM writes `MAX()` in a subquery with a GROUP BY, which
    # SQLite and PostgreSQL answer by reading every turn of the conversation (0.36 ms for 5,000
    # turns, on every message, sync and page).
    latest = (
        Turn.objects.filter(conversation_id=OuterRef("pk"))
        .order_by("-updated_seq")
        .values("updated_seq")[:1]
    )
    return Coalesce(Subquery(latest, output_field=IntegerField()), Value(0))


def _allocate(conversation_id: UUID, count: int, now: datetime.datetime) -> UpdateQuery:
    query = cast(
        UpdateQuery, Conversation.objects.filter(pk=conversation_id).query.chain(UpdateQuery)
    )
    query.add_update_values(
        {"last_seq": Greatest(F("last_seq"), _max_turn_seq()) + count, "updated_at": now}
    )
    return query


# The ORM's own UPDATE, reading the new value back in the same statement: one round trip instead
# of an UPDATE and a SELECT.
_allocate_statement = Compiled(
    _allocate,
    returning=["last_seq"],
    conversation_id=UUID(int=0x5E0),
    count=918_273_645,
    now=datetime.datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=datetime.UTC),
)


def conversation_allocate_seq(*, conversation_id: UUID, count: int = 1) -> int:
    """Reserve `count` consecutive sequence numbers and return the first.

    Must run inside the caller's transaction: the UPDATE holds the conversation's row lock until
    commit, so concurrent writers are numbered one after the other.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("conversation_allocate_seq must run inside a transaction")
    rows = _allocate_statement.rows(
        conversation_id=conversation_id, count=count, now=timezone.now()
    )
    if not rows:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    last: int = rows[0][0]
    return last - count + 1


def conversation_current_seq(*, conversation_id: UUID) -> int:
    """The newest sequence number a client can have seen from the database."""
    rows = _current_seq.rows(conversation_id=conversation_id)
    if not rows:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    return int(max(rows[0]))


_current_seq = Compiled(
    lambda conversation_id: (
        Conversation.objects.filter(pk=conversation_id)
        .annotate(turn_seq=_max_turn_seq())
        .values_list("last_seq", "turn_seq")
        .query
    ),
    conversation_id=UUID(int=0x5E6),
)

"""Per-conversation event numbers: every change a client can see gets the next one.

`Conversation.last_seq` is the last number handed out by a transaction; a finished reply stamps
its turn's `updated_seq` past the numbers its deltas used without touching the conversation row,
so the current number is the larger of the two (one write saved per reply).
"""

from __future__ import annotations

from typing import cast
from uuid import UUID

from django.db import transaction
from django.db.models import F, IntegerField, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from conversations.models import Conversation, Turn


def _max_turn_seq() -> Coalesce:
    latest = (
        Turn.objects.filter(conversation_id=OuterRef("pk"))
        .values("conversation_id")
        .annotate(m=Max("updated_seq"))
        .values("m")
    )
    return Coalesce(Subquery(latest, output_field=IntegerField()), Value(0))


def conversation_allocate_seq(*, conversation_id: UUID, count: int = 1) -> int:
    """Reserve `count` consecutive sequence numbers and return the first.

    Must run inside the caller's transaction: the UPDATE holds the conversation's row lock until
    commit, so concurrent writers are numbered one after the other.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("conversation_allocate_seq must run inside a transaction")
    query = cast(
        UpdateQuery, Conversation.objects.filter(pk=conversation_id).query.chain(UpdateQuery)
    )
    query.add_update_values(
        {"last_seq": Greatest(F("last_seq"), _max_turn_seq()) + count, "updated_at": timezone.now()}
    )
    statement, params = query.get_compiler(connection=connection).as_sql()
    # The ORM's own UPDATE, reading the new value back in the same statement (both SQLite and
    # PostgreSQL have RETURNING): one round trip instead of an UPDATE and a SELECT.
    with connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {connection.ops.quote_name('last_seq')}", params)
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    last: int = row[0]
    return last - count + 1


def conversation_last_seq(*, conversation_id: UUID) -> int:
    """The last number a transaction handed out (a finished reply may hold a newer one)."""
    last: int | None = (
        Conversation.objects.filter(pk=conversation_id).values_list("last_seq", flat=True).first()
    )
    return last or 0


def conversation_current_seq(*, conversation_id: UUID) -> int:
    """The newest sequence number a client can have seen from the database."""
    row = (
        Conversation.objects.filter(pk=conversation_id)
        .annotate(turn_seq=_max_turn_seq())
        .values_list("last_seq", "turn_seq")
        .first()
    )
    return max(row) if row else 0

"""Per-conversation event numbers: every change a client can see gets the next one."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations.models import Conversation


def conversation_allocate_seq(*, conversation_id: UUID, count: int = 1) -> int:
    """Reserve `count` consecutive sequence numbers and return the first.

    Must run inside the caller's transaction: the UPDATE holds the conversation's row lock until
    commit, so concurrent writers are numbered one after the other.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("conversation_allocate_seq must run inside a transaction")
    Conversation.objects.filter(pk=conversation_id).update(
        last_seq=F("last_seq") + count, updated_at=timezone.now()
    )
    last: int = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation_id)
    return last - count + 1

"""The opening reply of a new conversation, with alternate greetings as its other candidates."""

from __future__ import annotations

from django.db import transaction

from conversations.models import Conversation, Role, Turn, TurnStatus
from conversations.services.sequence import conversation_allocate_seq


def turns_create_greetings(
    *, conversation: Conversation, texts: list[str], name: str
) -> list[Turn]:
    """Store the greeting (active) and its alternates (inactive siblings, i.e. swipes)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return []
    with transaction.atomic():
        first = conversation_allocate_seq(conversation_id=conversation.pk, count=len(texts))
        turns = [
            Turn(
                conversation=conversation,
                seq=first + i,
                updated_seq=first + i,
                parent=None,
                active=i == 0,
                role=Role.ASSISTANT,
                name=name,
                content=text,
                status=TurnStatus.COMPLETE,
                finish_reason="stop",
            )
            for i, text in enumerate(texts)
        ]
        for turn in turns:
            turn.full_clean(exclude=["conversation", "parent"])
        return Turn.objects.bulk_create(turns)

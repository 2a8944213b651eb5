"""Usage outlives the conversations it was spent in.

Deleting a conversation removes its turns, which hold each reply's tokens and cost; before
they go, their usage is added to the owner's carried totals for each month. Deleting the
account itself takes those totals along.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from conversations.models import Conversation, Turn, UsageCarry
from conversations.selectors import Usage, usage_by_month

_NOTHING = Usage(
    replies=0, prompt_tokens=0, completion_tokens=0, total_tokens=0, cost_usd=Decimal(0)
)


def usage_carry_over(*, conversation: Conversation) -> None:
    """Add the conversation's usage to its owner's carried totals (inside the delete's
    transaction, so the two happen together or not at all)."""
    # Locked first: of two deletes of one conversation at once (a double click, two tabs), the
    # second finds it gone and carries nothing.
    if not Conversation.objects.select_for_update().filter(pk=conversation.pk).exists():
        return
    for month, usage in usage_by_month(Turn.objects.filter(conversation=conversation)):
        if usage == _NOTHING:
            continue
        carry, _ = UsageCarry.objects.get_or_create(owner_id=conversation.owner_id, month=month)
        # Increments in the database: two conversations of one owner may go at once.
        UsageCarry.objects.filter(pk=carry.pk).update(
            replies=F("replies") + usage.replies,
            prompt_tokens=F("prompt_tokens") + usage.prompt_tokens,
            completion_tokens=F("completion_tokens") + usage.completion_tokens,
            total_tokens=F("total_tokens") + usage.total_tokens,
            unpriced=F("unpriced") + usage.unpriced,
            cost_usd=F("cost_usd") + usage.cost_usd,
        )


def _owner_going(origin: Any, owner_id: int) -> bool:
    """Whether the delete is of the conversation's owner's own account (not of another user
    whose character it was with)."""
    user_model = get_user_model()
    if isinstance(origin, QuerySet):
        # In pre_delete the rows are still there to ask.
        return origin.model is user_model and origin.filter(pk=owner_id).exists()
    return isinstance(origin, user_model) and origin.pk == owner_id


@receiver(pre_delete, sender=Conversation)
def carry_usage_of_deleted_conversation(
    sender: type[Conversation], instance: Conversation, origin: Any = None, **kwargs: Any
) -> None:
    # Every way a conversation goes: its owner's delete, the admin's, its character's (with
    # the account of the character's creator, say). When the owner's own account is what is
    # deleted, there is no one left to carry it for.
    if not _owner_going(origin, instance.owner_id):
        usage_carry_over(conversation=instance)

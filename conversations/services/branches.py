"""Choosing among candidates (swipes), editing replies and hiding turns."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import transaction

from conversations.models import Role, Turn
from conversations.services.replies import ChatActionError, hide_after, lock_conversation
from conversations.services.sequence import conversation_allocate_seq
from conversations.wire import event, turns_to_wire


def siblings_of(turn: Turn) -> list[Turn]:
    parent = {"parent_id": turn.parent_id} if turn.parent_id else {"parent__isnull": True}
    return list(
        Turn.objects.filter(
            conversation_id=turn.conversation_id, role=turn.role, **parent
        ).order_by("seq")
    )


def turn_is_reply(*, conversation_id: UUID, turn_id: int) -> bool:
    return Turn.objects.filter(
        conversation_id=conversation_id, pk=turn_id, role=Role.ASSISTANT
    ).exists()


def _hidden_with(chosen: Turn) -> list[Turn]:
    """The turns that left the transcript together with `chosen` (the branch the user last saw
    below it), oldest first.

    Hiding a branch stamps every turn it hides with that one event's seq, while a deleted turn
    carries the seq of its own delete: matching the seq brings the branch back and leaves
    deletes inside it deleted, however often the branch was left and shown again.
    """
    return list(
        Turn.objects.filter(
            conversation_id=chosen.conversation_id,
            active=False,
            updated_seq=chosen.updated_seq,
            seq__gt=chosen.seq,
        ).order_by("seq")
    )


def _visible(conversation_id: UUID, turn_id: int) -> Turn:
    turn = Turn.objects.filter(conversation_id=conversation_id, pk=turn_id, active=True).first()
    if turn is None:
        raise ChatActionError("not_found", "That message is not in this conversation.")
    return turn


def turn_select_candidate(
    *, conversation_id: UUID, turn_id: int, index: int
) -> list[dict[str, Any]]:
    """Show candidate `index` (1-based) of a reply; the turns after it follow that branch."""
    with transaction.atomic():
        first = lock_conversation(conversation_id=conversation_id, count=1)
        current = _visible(conversation_id, turn_id)
        candidates = siblings_of(current)
        if not 1 <= index <= len(candidates):
            raise ChatActionError("not_found", "There is no such candidate.")
        chosen = candidates[index - 1]
        if chosen.pk == current.pk:
            # Nothing changes: the seq taken above is given back, or clients would see a gap.
            transaction.set_rollback(True)
            return []
        branch = [chosen, *_hidden_with(chosen)]
        hidden = hide_after(conversation_id=conversation_id, seq=current.seq, at_seq=first)
        start = conversation_allocate_seq(conversation_id=conversation_id, count=len(branch))
        for offset, turn in enumerate(branch):
            turn.active = True
            turn.updated_seq = start + offset
        Turn.objects.bulk_update(branch, ["active", "updated_seq"])
    events = [event("turns.hidden", first, turn_ids=hidden)]
    events.extend(
        event("turn.updated", t.updated_seq, turn=w)
        for t, w in zip(branch, turns_to_wire(branch), strict=True)
    )
    return events


def turn_delete(*, conversation_id: UUID, turn_id: int) -> list[dict[str, Any]]:
    """Hide one turn from the transcript; it stays stored."""
    with transaction.atomic():
        seq = lock_conversation(conversation_id=conversation_id, count=1)
        turn = _visible(conversation_id, turn_id)
        Turn.objects.filter(pk=turn.pk).update(active=False, updated_seq=seq)
    return [event("turns.hidden", seq, turn_ids=[turn.pk])]


def turn_edit_reply(*, conversation_id: UUID, turn_id: int, text: str) -> list[dict[str, Any]]:
    """Replace the text of a reply in place."""
    with transaction.atomic():
        seq = lock_conversation(conversation_id=conversation_id, count=1)
        turn = _visible(conversation_id, turn_id)
        if turn.role != Role.ASSISTANT:
            raise ChatActionError("invalid", "Edit your own messages with a new branch.")
        turn.content = text
        turn.updated_seq = seq
        turn.save(update_fields=["content", "updated_seq", "updated_at"])
    return [event("turn.updated", seq, turn=turns_to_wire([turn])[0])]

"""Turns as the wire (websocket and JSON API) shows them, with their candidate positions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypedDict
from uuid import UUID

from conversations.models import Role, Turn


class WireError(TypedDict):
    code: str
    message: str


class WireTurn(TypedDict):
    id: int
    seq: int
    role: str
    name: str
    content: str
    status: str
    finish_reason: str
    client_id: str | None
    created_at: str
    parent_id: int | None
    active: bool
    candidate_index: int
    candidate_count: int
    error: WireError | None


SiblingKey = tuple[int | None, str]


def sibling_seqs(conversation_id: UUID, keys: set[SiblingKey]) -> dict[SiblingKey, list[int]]:
    """The seqs of every turn sharing a (parent, role), ascending, in one query.

    A parent belongs to one conversation, so children are found by parent alone (the sibling
    index); roots (greetings) need the conversation. Separate branches of one UNION let each use
    its own index where an OR would make the planner scan the conversation.
    """
    base = Turn.objects.order_by()
    parents = {parent for parent, _ in keys}
    branches = []
    children = [p for p in parents if p is not None]
    if children:
        branches.append(base.filter(parent_id__in=children))
    if None in parents:
        branches.append(base.filter(conversation_id=conversation_id, parent__isnull=True))
    if not branches:
        return {}
    rows = branches[0].values_list("parent_id", "role", "seq")
    if len(branches) > 1:
        rows = rows.union(branches[1].values_list("parent_id", "role", "seq"), all=True)
    siblings: dict[SiblingKey, list[int]] = defaultdict(list)
    for parent_id, role, seq in sorted(rows, key=lambda row: row[2]):
        siblings[(parent_id, role)].append(seq)
    return siblings


def candidate_positions(turns: Iterable[Turn]) -> dict[int, tuple[int, int]]:
    """1-based index and count of each reply among its candidates (same parent); 1 of 1 for
    the user's turns."""
    positions: dict[int, tuple[int, int]] = {}
    by_conversation: dict[UUID, list[Turn]] = defaultdict(list)
    for turn in turns:
        if turn.role == Role.ASSISTANT:
            by_conversation[turn.conversation_id].append(turn)
        else:
            positions[turn.pk] = (1, 1)
    for conversation_id, group in by_conversation.items():
        siblings = sibling_seqs(conversation_id, {(t.parent_id, t.role) for t in group})
        for turn in group:
            seqs = siblings.get((turn.parent_id, turn.role)) or [turn.seq]
            index = seqs.index(turn.seq) + 1 if turn.seq in seqs else 1
            positions[turn.pk] = (index, len(seqs))
    return positions


def turn_to_wire(turn: Turn, position: tuple[int, int] = (1, 1)) -> WireTurn:
    return {
        "id": turn.pk,
        "seq": turn.seq,
        "role": turn.role,
        "name": turn.name,
        "content": turn.content,
        "status": turn.status,
        "finish_reason": turn.finish_reason,
        "client_id": str(turn.client_id) if turn.client_id else None,
        "created_at": turn.created_at.isoformat(),
        "parent_id": turn.parent_id,
        "active": turn.active,
        "candidate_index": position[0],
        "candidate_count": position[1],
        "error": (
            {"code": turn.error_code, "message": turn.error_message} if turn.error_code else None
        ),
    }


def turns_to_wire(turns: Iterable[Turn]) -> list[WireTurn]:
    turns = list(turns)
    positions = candidate_positions(turns)
    return [turn_to_wire(t, positions[t.pk]) for t in turns]


def event(kind: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "seq": seq, **fields}

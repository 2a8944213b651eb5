"""Turns as the wire (websocket and JSON API) shows them, with their candidate positions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, TypedDict

from django.db.models import Q

from conversations.models import Turn


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


def candidate_positions(turns: Iterable[Turn]) -> dict[int, tuple[int, int]]:
    """1-based index and count of each turn among its siblings (same parent and role), in one
    query however many turns are asked about."""
    turns = list(turns)
    if not turns:
        return {}
    conversation_ids = {t.conversation_id for t in turns}
    keys = {(t.parent_id, t.role) for t in turns}
    condition = Q()
    for parent_id, role in keys:
        condition |= (
            Q(parent_id=parent_id, role=role)
            if parent_id is not None
            else Q(parent__isnull=True, role=role)
        )
    siblings: dict[tuple[int | None, str], list[int]] = defaultdict(list)
    rows = (
        Turn.objects.filter(conversation_id__in=conversation_ids)
        .filter(condition)
        .order_by("seq")
        .values_list("id", "parent_id", "role")
    )
    for turn_id, parent_id, role in rows:
        siblings[(parent_id, role)].append(turn_id)
    positions: dict[int, tuple[int, int]] = {}
    for turn in turns:
        ids = siblings.get((turn.parent_id, turn.role), [turn.pk])
        index = ids.index(turn.pk) + 1 if turn.pk in ids else 1
        positions[turn.pk] = (index, len(ids))
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

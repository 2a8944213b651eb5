"""What a (re)connecting client needs: the turns changed since its last event, and whether a
reply is being generated."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from companion.compiled import Compiled, columns, constant, instance
from conversations.models import Turn, TurnStatus
from conversations.services.sequence import conversation_current_seq
from conversations.wire import WireTurn, turns_to_wire

SYNC_LIMIT = 200


@dataclass(frozen=True)
class SyncState:
    turns: list[WireTurn]
    complete: bool
    seq: int
    streaming_turn_id: int | None
    streaming_name: str
    streaming_content: str


def sync_state(*, conversation_id: UUID, after_seq: int) -> SyncState:
    """Turns changed after `after_seq` (the newest `SYNC_LIMIT`), oldest first."""
    # Read before the turns: a change committed in between is then among the turns, or has a
    # number above the answer's (numbers are handed out in commit order) and so reaches the
    # socket as an event. Read after, the answer could claim a turn it does not hold, and the
    # socket would drop that turn's event as already covered.
    current = conversation_current_seq(conversation_id=conversation_id)
    changed = [
        turn
        for row in _changed.rows(conversation_id=conversation_id, after_seq=after_seq)
        if (turn := instance(Turn, row)) is not None
    ]
    seq = max(changed[0].updated_seq, current) if changed else current
    complete = len(changed) <= SYNC_LIMIT
    changed = sorted(changed[:SYNC_LIMIT], key=lambda t: t.seq)
    streaming = _streaming.rows(conversation_id=conversation_id)
    return SyncState(
        turns=turns_to_wire(changed),
        complete=complete,
        seq=seq,
        streaming_turn_id=streaming[0][0] if streaming else None,
        streaming_name=streaming[0][1] if streaming else "",
        streaming_content=streaming[0][2] if streaming else "",
    )


# Every socket syncs when it connects: these run once per connection, compiled once.
_changed = Compiled(
    lambda conversation_id, after_seq: (
        Turn.objects.filter(conversation_id=conversation_id, updated_seq__gt=after_seq)
        .order_by("-updated_seq")
        .values_list(*columns(Turn))[: SYNC_LIMIT + 1]
        .query
    ),
    conversation_id=UUID(int=0x5E3),
    after_seq=918_273_647,
)
_streaming = Compiled(
    lambda conversation_id: (
        Turn.objects.filter(conversation_id=conversation_id, status=constant(TurnStatus.STREAMING))
        .order_by("seq")
        .values_list("id", "name", "content")[:1]
        .query
    ),
    conversation_id=UUID(int=0x5E4),
)

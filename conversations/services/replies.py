"""Starting and finishing replies. Each start is one short transaction (the user's turn and the
reply placeholder together); each finish is another. Nothing is held open across a model call."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models.sql import Query, UpdateQuery
from django.utils import timezone

from characters.models import Visibility
from companion.compiled import Compiled, constant, insert_query
from conversations.llm.base import GenerationParams
from conversations.models import Conversation, Role, Turn, TurnStatus
from conversations.prompt_inputs import (
    RecentTurn,
    conversation_for_prompt,
    prompt_input_for_conversation,
    recent_turns,
)
from conversations.prompts import PromptInput
from conversations.services.sequence import conversation_allocate_seq
from conversations.text import too_long_message
from conversations.wire import event, turn_to_wire, turns_to_wire

# A runner that died mid-reply may have sent numbers the database never saw; jump past them.
STALE_SEQ_JUMP = 100_000
# A reply whose turns were stored but whose start failed on the server.
START_FAILED_CODE = "upstream_unavailable"
START_FAILED_MESSAGE = "Something went wrong while starting this reply."


class ChatActionError(Exception):
    """A client action that cannot be carried out; `code` is the protocol's `error.code`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass
class ReplyStart:
    """A stored start. `events` are to be published before the reply runs, ending with its
    `reply.started`, numbered `next_seq`; the runner numbers its own events after that one. A
    `duplicate` (a message sent before) has neither and starts nothing."""

    conversation_id: UUID
    turn_id: int
    speaker: str
    events: list[dict[str, Any]]
    next_seq: int
    prompt: PromptInput | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    prefix: str = ""
    duplicate: bool = False


def _streaming(**where: Any) -> Query:
    return (
        Turn.objects.filter(status=constant(TurnStatus.STREAMING), **where)
        .values_list("conversation_id", "updated_at")
        .query
    )


# Replies being written, in one conversation or in all of a user's conversations.
_streaming_in_conversation = Compiled(
    lambda conversation_id: _streaming(conversation_id=conversation_id),
    conversation_id=UUID(int=0x5E1),
)
_streaming_for_user = Compiled(
    lambda user_id: _streaming(conversation__owner_id=user_id), user_id=918_273_646
)


def lock_conversation(
    *, conversation_id: UUID, count: int, replying_user_id: int | None = None
) -> int:
    """Allocate seqs (taking the row lock), fail stale replies, refuse while a reply runs.

    With `replying_user_id`, also refuse when that user has too many replies running; one query
    answers both questions.
    """
    first = conversation_allocate_seq(conversation_id=conversation_id, count=count)
    if replying_user_id is None:
        streaming = _streaming_in_conversation.rows(conversation_id=conversation_id)
    else:
        streaming = _streaming_for_user.rows(user_id=replying_user_id)
    alive_since = timezone.now() - timedelta(seconds=settings.CHAT_REPLY_STALE_SECONDS)
    started = next((at for conv, at in streaming if conv == conversation_id), None)
    if started is not None:
        if started >= alive_since:
            raise ChatActionError("busy", "A reply is already being written. Stop it or wait.")
        first = replies_fail_stale(conversation_id=conversation_id, count=count)
    if replying_user_id is not None:
        # A stale reply elsewhere (its process died) is not running: it must not count.
        others = sum(1 for conv, at in streaming if conv != conversation_id and at >= alive_since)
        if others >= settings.CHAT_CONCURRENT_REPLIES_PER_USER:
            raise ChatActionError(
                "rate_limited",
                "Too many replies are being written at once. Wait for one to finish.",
            )
    return first


def replies_fail_stale(*, conversation_id: UUID, count: int = 0) -> int:
    """Mark replies whose runner vanished as failed (`interrupted`), keeping their text."""
    last = conversation_allocate_seq(conversation_id=conversation_id, count=STALE_SEQ_JUMP)
    last += STALE_SEQ_JUMP - 1
    Turn.objects.filter(conversation_id=conversation_id, status=TurnStatus.STREAMING).update(
        status=TurnStatus.FAILED,
        error_code="interrupted",
        error_message="The server stopped while writing this reply.",
        updated_seq=last,
        updated_at=timezone.now(),
    )
    return conversation_allocate_seq(conversation_id=conversation_id, count=count or 1)


def params_for(conversation: Conversation) -> GenerationParams:
    character = conversation.character
    return GenerationParams(
        temperature=character.default_temperature,
        top_p=character.default_top_p,
        max_tokens=character.default_max_tokens,
    ).clamped()


def hide_after(*, conversation_id: UUID, seq: int, at_seq: int) -> list[int]:
    """Hide the visible turns from `seq` on (they stay stored as another branch)."""
    hidden = list(
        Turn.objects.filter(conversation_id=conversation_id, active=True, seq__gte=seq)
        .order_by("seq")
        .values_list("id", flat=True)
    )
    if hidden:
        Turn.objects.filter(pk__in=hidden).update(active=False, updated_seq=at_seq)
    return hidden


def last_visible_turn(conversation_id: UUID) -> Turn | None:
    return (
        Turn.objects.filter(conversation_id=conversation_id, active=True).order_by("-seq").first()
    )


def new_placeholder(conversation: Conversation, *, parent: Turn | None, seq: int) -> Turn:
    return Turn(
        conversation=conversation,
        seq=seq,
        updated_seq=seq,
        parent=parent,
        role=Role.ASSISTANT,
        name=conversation.character.name,
        status=TurnStatus.STREAMING,
        model_name="",
    )


def turn_insert(turn: Turn) -> None:
    """`turn.save(force_insert=True)` for the turns of every message, as one compiled INSERT
    (no model signals are sent; none are connected to turns)."""
    # As `save` does: an unsaved related turn or conversation is an error, not a NULL.
    # (`save`'s own step; django-stubs does not declare it.)
    turn._prepare_related_fields_for_save(operation_name="save")  # type: ignore[attr-defined]
    turn.created_at = turn.updated_at = timezone.now()
    values = {name: getattr(turn, name) for name in _TURN_MARKERS}
    turn.pk = _insert_turn.rows(**values)[0][0]
    turn._state.adding = False
    turn._state.db = _insert_turn.using


# Marker values of a turn's columns (all but `id`) for compiled statements: values no caller
# sends (the text markers hold a NUL).
_TURN_MARKERS: dict[str, Any] = {
    "conversation_id": UUID(int=0x5E9),
    "seq": 918_273_655,
    "updated_seq": 918_273_656,
    "parent_id": 918_273_657,
    "active": True,
    "role": "\0role",
    "name": "\0name",
    "content": "\0content",
    "status": "\0status",
    "finish_reason": "\0finish",
    "prompt_tokens": 918_273_658,
    "completion_tokens": 918_273_659,
    "total_tokens": 918_273_660,
    "cost_usd": Decimal("0.91827366"),
    "model_name": "\0model",
    "error_code": "\0code",
    "error_message": "\0message",
    "client_id": UUID(int=0x5EA),
    "created_at": datetime.datetime(2001, 2, 3, 4, 5, 6, 9, tzinfo=datetime.UTC),
    "updated_at": datetime.datetime(2001, 2, 3, 4, 5, 6, 10, tzinfo=datetime.UTC),
}
_insert_turn = Compiled(
    lambda **values: insert_query(Turn, values), returning=["id"], **_TURN_MARKERS
)


def _conversation_for_reply(conversation_id: UUID, user_id: int) -> Conversation:
    """The conversation with what its prompt needs, if its character may still answer the user.

    A character its creator made private after this conversation began is theirs again: the
    conversation can still be read, but not continued.
    """
    conversation = conversation_for_prompt(conversation_id=conversation_id)
    character = conversation.character
    if character.visibility != Visibility.PRIVATE or character.owner_id == user_id:
        return conversation
    user = get_user_model().objects.filter(pk=user_id).first()  # only here: a superuser may
    if user is not None and character.is_visible_to(user):
        return conversation
    raise ChatActionError(
        "invalid", f"{character.name} is private now: this conversation can be read, not continued."
    )


def reply_begin_for_message(
    *, conversation_id: UUID, user_id: int, client_id: UUID, text: str
) -> ReplyStart:
    """Store the user's turn and a reply placeholder, in one transaction. A `client_id` seen
    before returns the stored turn as a duplicate and starts nothing."""
    # A resend is rare: it is found by the unique `client_id` (or once the message is refused)
    # rather than looked up before every message.
    try:
        with transaction.atomic():
            first = lock_conversation(
                conversation_id=conversation_id, count=2, replying_user_id=user_id
            )
            conversation = _conversation_for_reply(conversation_id, user_id)
            # One read gives both the new turn's parent and the prompt's history.
            recent = recent_turns(conversation=conversation)
            user_turn = Turn(
                conversation=conversation,
                seq=first,
                updated_seq=first,
                parent_id=recent[0].id if recent else None,
                role=Role.USER,
                name=conversation.persona.name if conversation.persona else "User",
                content=text,
                client_id=client_id,
            )
            placeholder = new_placeholder(conversation, parent=user_turn, seq=first + 1)
            # Constraints are the database's job here; checking them in Python costs 9 queries.
            user_turn.full_clean(exclude=["conversation", "parent"], validate_constraints=False)
            turn_insert(user_turn)
            placeholder.parent = user_turn
            turn_insert(placeholder)
    except ChatActionError:
        # Refused (busy with its own reply, or too many running): a resend is still a resend.
        existing = message_sent_before(conversation_id=conversation_id, client_id=client_id)
        if existing is not None:
            return _duplicate(existing)
        raise
    except IntegrityError:
        existing = message_sent_before(conversation_id=conversation_id, client_id=client_id)
        if existing is None:
            raise
        return _duplicate(existing)
    said = RecentTurn(user_turn.pk, user_turn.role, user_turn.name, text, user_turn.status)
    return _start(
        conversation,
        placeholder,
        [user_turn, placeholder],
        first + 2,
        fresh=True,
        recent=[said, *recent],
    )


def message_sent_before(*, conversation_id: UUID, client_id: UUID) -> Turn | None:
    """The stored message with this `client_id` in the conversation, if any."""
    return Turn.objects.filter(conversation_id=conversation_id, client_id=client_id).first()


def _duplicate(turn: Turn) -> ReplyStart:
    return ReplyStart(
        conversation_id=turn.conversation_id,
        turn_id=turn.pk,
        speaker=turn.name,
        events=[],
        next_seq=0,
        duplicate=True,
    )


def _start(
    conversation: Conversation,
    placeholder: Turn,
    created: list[Turn],
    next_seq: int,
    *,
    leading: list[dict[str, Any]] | None = None,
    continue_last: bool = False,
    fresh: bool = False,
    recent: list[RecentTurn] | None = None,
) -> ReplyStart:
    """`fresh`: every created turn is the first child of a new parent, so 1 of 1 candidates.
    `recent`: the visible turns after this change, newest first, when the caller knows them."""
    try:
        events = list(leading or [])
        wires = [turn_to_wire(t) for t in created] if fresh else turns_to_wire(created)
        events.extend(
            event("turn.created", t.seq, turn=w) for t, w in zip(created, wires, strict=True)
        )
        # With the turns it follows: one publication (and one socket write) for all of them.
        events.append(
            event("reply.started", next_seq, turn_id=placeholder.pk, name=placeholder.name)
        )
        prompt = prompt_input_for_conversation(
            conversation=conversation, continue_last=continue_last, recent=recent
        )
        params = params_for(conversation)
    except Exception:
        # The turns are stored, and no runner will write this placeholder: left "streaming",
        # it would hold the conversation busy until the stale limit.
        reply_finish(
            turn_id=placeholder.pk,
            content=placeholder.content,
            status=TurnStatus.FAILED,
            after_seq=next_seq - 1,
            error_code=START_FAILED_CODE,
            error_message=START_FAILED_MESSAGE,
        )
        raise
    return ReplyStart(
        conversation_id=conversation.pk,
        turn_id=placeholder.pk,
        speaker=placeholder.name,
        events=events,
        next_seq=next_seq,
        prompt=prompt,
        params=params,
        prefix=placeholder.content,
    )


def reply_begin_regenerate(
    *, conversation_id: UUID, user_id: int, turn_id: int | None = None
) -> ReplyStart:
    """Add a new candidate for a reply; the earlier candidates stay stored, hidden."""
    with transaction.atomic():
        first = lock_conversation(
            conversation_id=conversation_id, count=2, replying_user_id=user_id
        )
        conversation = _conversation_for_reply(conversation_id, user_id)
        visible = Turn.objects.filter(conversation_id=conversation_id, active=True)
        target = (
            visible.filter(pk=turn_id).first()
            if turn_id is not None
            else visible.filter(role=Role.ASSISTANT).order_by("-seq").first()
        )
        if target is None or target.role != Role.ASSISTANT:
            raise ChatActionError("not_found", "There is no such reply to regenerate.")
        hidden = hide_after(conversation_id=conversation_id, seq=target.seq, at_seq=first)
        placeholder = new_placeholder(conversation, parent=target.parent, seq=first + 1)
        Turn.objects.bulk_create([placeholder])
    leading = [event("turns.hidden", first, turn_ids=hidden)]
    return _start(conversation, placeholder, [placeholder], first + 2, leading=leading)


def reply_begin_continue(*, conversation_id: UUID, user_id: int) -> ReplyStart:
    """Extend the last reply in place."""
    with transaction.atomic():
        first = lock_conversation(
            conversation_id=conversation_id, count=1, replying_user_id=user_id
        )
        conversation = _conversation_for_reply(conversation_id, user_id)
        target = last_visible_turn(conversation_id)
        if target is None or target.role != Role.ASSISTANT or not target.content:
            raise ChatActionError("invalid", "Only a reply with text can be continued.")
        target.status = TurnStatus.STREAMING
        target.updated_seq = first
        target.error_code = target.error_message = target.finish_reason = ""
        target.save(
            update_fields=[
                "status",
                "updated_seq",
                "error_code",
                "error_message",
                "finish_reason",
                "updated_at",
            ]
        )
    start = _start(conversation, target, [], first + 1, continue_last=True)
    start.events.insert(0, event("turn.updated", first, turn=turns_to_wire([target])[0]))
    return start


def reply_begin_edit(*, conversation_id: UUID, user_id: int, turn_id: int, text: str) -> ReplyStart:
    """Store an edited user turn as a new branch (the old one stays, hidden) and reply to it."""
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatActionError("too_long", too_long_message())
    with transaction.atomic():
        first = lock_conversation(
            conversation_id=conversation_id, count=3, replying_user_id=user_id
        )
        conversation = _conversation_for_reply(conversation_id, user_id)
        target = Turn.objects.filter(
            conversation_id=conversation_id, pk=turn_id, active=True, role=Role.USER
        ).first()
        if target is None:
            raise ChatActionError("not_found", "There is no such message to edit.")
        hidden = hide_after(conversation_id=conversation_id, seq=target.seq, at_seq=first)
        edited = Turn(
            conversation=conversation,
            seq=first + 1,
            updated_seq=first + 1,
            parent=target.parent,
            role=Role.USER,
            name=target.name,
            content=text,
        )
        Turn.objects.bulk_create([edited])
        placeholder = new_placeholder(conversation, parent=edited, seq=first + 2)
        Turn.objects.bulk_create([placeholder])
    leading = [event("turns.hidden", first, turn_ids=hidden)]
    return _start(
        conversation, placeholder, [edited, placeholder], first + 3, leading=leading, fresh=True
    )


def reply_keep_alive(*, turn_id: int) -> None:
    """Mark a reply as still being written: a reply whose turn has not changed for
    `CHAT_REPLY_STALE_SECONDS` is taken for one whose process died."""
    Turn.objects.filter(pk=turn_id, status=TurnStatus.STREAMING).update(updated_at=timezone.now())


def reply_finish(
    *,
    turn_id: int,
    content: str,
    status: str,
    after_seq: int,
    finish_reason: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    total_tokens: int | None = None,
    cost_usd: Any = None,
    model_name: str = "",
    error_code: str = "",
    error_message: str = "",
) -> int | None:
    """Persist the outcome of a reply in one UPDATE; return the seq of its final event, or
    None when the reply is no longer running (its conversation was deleted, or it was given up
    as stale).

    While a reply runs nothing else writes to its conversation, so the number after the
    runner's last one is free: the runner started from the database's newest number.
    """
    seq = after_seq + 1
    updated = _finish_statement.rows(
        turn_id=turn_id,
        content=content,
        status=status,
        seq=seq,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=total_tokens,
        cost_usd=None if cost_usd is None else Decimal(cost_usd),
        model_name=model_name[:100],
        error_code=error_code,
        error_message=error_message[:500],
        now=timezone.now(),
    )
    return seq if updated else None


def _finish(turn_id: int, seq: int, now: datetime.datetime, **values: Any) -> UpdateQuery:
    query = cast(
        UpdateQuery,
        Turn.objects.filter(pk=turn_id, status=TurnStatus.STREAMING).query.chain(UpdateQuery),
    )
    query.add_update_values({**values, "updated_seq": seq, "updated_at": now})
    return query


# Every reply ends here.
_FINISHED = [
    "content",
    "status",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
    "model_name",
    "error_code",
    "error_message",
]
_finish_statement = Compiled(
    _finish,
    returning=["id"],
    turn_id=918_273_651,
    seq=918_273_652,
    now=datetime.datetime(2001, 2, 3, 4, 5, 6, 8, tzinfo=datetime.UTC),
    **{name: _TURN_MARKERS[name] for name in _FINISHED},
)

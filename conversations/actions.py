"""What each client frame does: the async edge between the consumer and the sync services."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured

from companion import dbthread
from conversations import streaming
from conversations.fanout import publish
from conversations.llm.factory import get_backend
from conversations.models import Conversation
from conversations.protocol import (
    ClientMessage,
    ContinueReply,
    DeleteTurn,
    EditTurn,
    RegenerateReply,
    SelectCandidate,
    SendMessage,
    StopReply,
)
from conversations.ratelimit import replies_check_rate
from conversations.selectors import conversation_is_users
from conversations.services import branches, replies
from conversations.services.replies import ReplyStart

log = logging.getLogger(__name__)


async def perform(*, message: ClientMessage, user_id: int, conversation_id: UUID) -> None:
    """Carry out one client action; raise `ChatActionError` for the client to be told why."""
    if isinstance(message, StopReply):
        await streaming.request_stop(conversation_id)
        # Every other frame finds out from its own reads; a socket left on a deleted
        # conversation is closed at its next frame, this one included.
        if not await dbthread.run(
            conversation_is_users, conversation_id=conversation_id, user_id=user_id
        ):
            raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
        return
    if isinstance(message, SelectCandidate):
        await _apply(
            branches.turn_select_candidate,
            conversation_id,
            turn_id=message.turn_id,
            index=message.index,
        )
        return
    if isinstance(message, DeleteTurn):
        await _apply(branches.turn_delete, conversation_id, turn_id=message.turn_id)
        return
    if isinstance(message, EditTurn) and await dbthread.run(
        branches.turn_is_reply, conversation_id=conversation_id, turn_id=message.turn_id
    ):
        # A reply's text is replaced in place: no model is asked, so no model limits apply.
        await _apply(
            branches.turn_edit_reply, conversation_id, turn_id=message.turn_id, text=message.text
        )
        return
    try:
        backend = get_backend()
    except ImproperlyConfigured:
        # `manage.py check` reports the details to the operator; nothing is written.
        log.exception("the model backend is misconfigured")
        raise replies.ChatActionError(
            "unavailable", "The model service is not set up on this server."
        ) from None
    try:
        await replies_check_rate(user_id=user_id)
    except replies.ChatActionError:
        # A resend of a stored message (a reconnect's outbox) is answered as such whatever the
        # budget: called rate-limited, the page would mark a delivered message as failed.
        if (
            isinstance(message, SendMessage)
            and await dbthread.run(
                replies.message_sent_before,
                conversation_id=conversation_id,
                client_id=message.client_id,
            )
            is not None
        ):
            raise _duplicate() from None
        raise
    start: ReplyStart
    ids: dict[str, Any] = {"conversation_id": conversation_id, "user_id": user_id}
    if isinstance(message, SendMessage):
        start = await dbthread.run(
            replies.reply_begin_for_message, **ids, client_id=message.client_id, text=message.text
        )
    elif isinstance(message, RegenerateReply):
        start = await dbthread.run(replies.reply_begin_regenerate, **ids, turn_id=message.turn_id)
    elif isinstance(message, ContinueReply):
        start = await dbthread.run(replies.reply_begin_continue, **ids)
    elif isinstance(message, EditTurn):
        start = await dbthread.run(
            replies.reply_begin_edit, **ids, turn_id=message.turn_id, text=message.text
        )
    else:
        raise replies.ChatActionError("bad_frame", "Unsupported action.")
    if start.duplicate:
        raise _duplicate()
    await publish(conversation_id, start.events)
    streaming.start_reply(start, backend)


def _duplicate() -> replies.ChatActionError:
    # Said, not silently dropped: a page whose message was stored (and maybe hidden since)
    # waits for a word about it before it sends anything else.
    return replies.ChatActionError("duplicate", "This message was sent already.")


async def _apply(service: Any, conversation_id: UUID, **kwargs: Any) -> None:
    events = await dbthread.run(service, conversation_id=conversation_id, **kwargs)
    await publish(conversation_id, events)

"""Client frames of the live chat protocol (docs/chat-protocol.md), parsed and validated."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings

from conversations.text import is_storable, too_long_message

MAX_FRAME_BYTES = 64 * 1024
# The largest number a database column here holds; a larger `after_seq` means "after everything".
MAX_SEQ = 2**63 - 1


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class SendMessage:
    client_id: UUID
    text: str


@dataclass(frozen=True)
class StopReply:
    pass


@dataclass(frozen=True)
class RegenerateReply:
    turn_id: int | None


@dataclass(frozen=True)
class ContinueReply:
    pass


@dataclass(frozen=True)
class SelectCandidate:
    turn_id: int
    index: int


@dataclass(frozen=True)
class EditTurn:
    turn_id: int
    text: str


@dataclass(frozen=True)
class DeleteTurn:
    turn_id: int


@dataclass(frozen=True)
class Sync:
    after_seq: int


ClientMessage = (
    SendMessage
    | StopReply
    | RegenerateReply
    | ContinueReply
    | SelectCandidate
    | EditTurn
    | DeleteTurn
    | Sync
)


def _int(frame: dict[str, Any], key: str, *, optional: bool = False, minimum: int = 0) -> Any:
    value = frame.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError("bad_frame", f"`{key}` must be a whole number ≥ {minimum}.")
    return value


def _text(frame: dict[str, Any], *, limited: bool = True) -> str:
    """The frame's text; `limited` applies the message length limit (an edit of a reply may be
    as long as the reply, so a turn edit is checked where its role is known)."""
    text = frame.get("text")
    if not isinstance(text, str):
        raise ProtocolError("bad_frame", "`text` must be a string.")
    text = text.strip()
    if not text:
        raise ProtocolError("empty", "The message is empty.")
    if limited and len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ProtocolError("too_long", too_long_message())
    if not is_storable(text):
        raise ProtocolError(
            "bad_frame", "`text` holds a NUL character or an unpaired surrogate escape."
        )
    return text


def _client_id(frame: dict[str, Any]) -> UUID:
    try:
        return UUID(str(frame.get("client_id")))
    except ValueError:
        raise ProtocolError("bad_frame", "`client_id` must be a UUID.") from None


def parse_client_message(raw: str | None) -> ClientMessage:
    """Parse one text frame; raise `ProtocolError` with the `error.code` to answer with."""
    if raw is None:
        raise ProtocolError("bad_frame", "Only text frames are accepted.")
    # A character is 1 to 4 bytes: only a frame that may be over the limit is encoded to tell.
    if (
        len(raw) * 4 > MAX_FRAME_BYTES
        and len(raw.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES
    ):
        raise ProtocolError("too_long", "The frame is too large.")
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_frame", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError("bad_frame", "A frame must be a JSON object.")
    kind = frame.get("type")
    if kind == "message.send":
        return SendMessage(client_id=_client_id(frame), text=_text(frame))
    if kind == "reply.stop":
        return StopReply()
    if kind == "reply.regenerate":
        return RegenerateReply(turn_id=_int(frame, "turn_id", optional=True, minimum=1))
    if kind == "reply.continue":
        return ContinueReply()
    if kind == "reply.select":
        return SelectCandidate(
            turn_id=_int(frame, "turn_id", minimum=1), index=_int(frame, "index", minimum=1)
        )
    if kind == "turn.edit":
        return EditTurn(turn_id=_int(frame, "turn_id", minimum=1), text=_text(frame, limited=False))
    if kind == "turn.delete":
        return DeleteTurn(turn_id=_int(frame, "turn_id", minimum=1))
    if kind == "sync":
        return Sync(after_seq=min(_int(frame, "after_seq"), MAX_SEQ))
    raise ProtocolError("bad_frame", "Unknown message type.")

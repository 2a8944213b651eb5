"""Domain errors of conversations."""

from __future__ import annotations


class ConversationError(Exception):
    """A request about conversations that the rules refuse."""


class ConversationStartInvalid(ConversationError):
    """The character, persona and scene chosen for a new conversation do not fit together."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{field}: {', '.join(msgs)}" for field, msgs in errors.items()))
        self.errors = errors


class ConversationNotOwned(ConversationError):
    """The conversation belongs to someone else (callers show it as missing)."""


class SocketRefused(ConversationError):
    """A socket that may not chat: `code` is the close code it is sent."""

    def __init__(self, code: int) -> None:
        super().__init__(f"refused with {code}")
        self.code = code

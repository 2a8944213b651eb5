"""Domain errors of characters and personas."""

from __future__ import annotations


class CharacterError(Exception):
    """A request about characters or personas that the rules refuse."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PersonaNotOwned(CharacterError):
    """The persona belongs to someone else (callers show it as missing)."""


class PersonaLimitReached(CharacterError):
    """The user already has as many personas as allowed."""

"""The one error a card import or export can raise; its message is shown to the user."""

from __future__ import annotations


class CardError(Exception):
    """The file is not a card the app can read; nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

"""Rules for the text of a conversation: what every database can store, and how long a message
may be.

PostgreSQL refuses NUL in text, and no database driver encodes an unpaired UTF-16 surrogate
(JSON can carry one as a `\\ud83d` escape). A model's output holding either could not be saved
(the reply would stay "streaming"); a user's message holding either is refused.
"""

from __future__ import annotations

import re

from django.conf import settings

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def storable(text: str) -> str:
    """`text` without NUL, and with U+FFFD for each unpaired surrogate."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda match: "" if match.group() == "\x00" else "\ufffd", text)


def too_long_message() -> str:
    """Why a message (or an edited one) was refused for its length."""
    return f"Messages are limited to {settings.CHAT_MAX_MESSAGE_CHARS} characters."

"""Card macros: {{char}}, {{user}}, <BOT>, <USER> (case-insensitive)."""

from __future__ import annotations

import re

_CHAR = re.compile(r"\{\{char\}\}|<bot>|<char>", re.IGNORECASE)
_USER = re.compile(r"\{\{user\}\}|<user>", re.IGNORECASE)


def expand(text: str, *, char: str, user: str) -> str:
    """Replace the character and user placeholders with their names."""
    if "{" not in text and "<" not in text:
        return text
    text = _CHAR.sub(lambda _m: char, text)
    return _USER.sub(lambda _m: user, text)

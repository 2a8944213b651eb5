"""`mes_example` text <-> sample dialogue pairs.

Blocks are separated by `<START>`; a line starting with `{{user}}:` / `<USER>:` or
`{{char}}:` / `<BOT>:` / the character's name starts a turn, other lines continue the turn
above. A turn with no partner gets a placeholder, since a sample needs both lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_PAIRS = 50
MISSING_LINE = "…"
_START = re.compile(r"<START>", re.IGNORECASE)
_USER = re.compile(r"\s*(?:\{\{user\}\}|<user>)\s*:[ \t]?", re.IGNORECASE)
_CHAR = re.compile(r"\s*(?:\{\{char\}\}|<bot>|<char>)\s*:[ \t]?", re.IGNORECASE)


def _speaker(line: str, names: tuple[str, ...]) -> tuple[str, str] | None:
    if match := _USER.match(line):
        return "user", line[match.end() :]
    if match := _CHAR.match(line):
        return "char", line[match.end() :]
    stripped = line.lstrip()
    for name in names:
        if stripped.startswith(f"{name}:"):
            return "char", stripped[len(name) + 1 :].lstrip(" \t")
    return None


def _turns(block: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    # A turn's lines are joined once at the end: appending each to a growing string copies
    # the turn every time, quadratic in its number of lines.
    turns: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        found = _speaker(line, names)
        if found is None:
            if turns:
                turns[-1][1].append(line)
            elif line.strip():
                turns.append(("char", [line]))
        elif turns and turns[-1][0] == found[0]:
            turns[-1][1].append(found[1])
        else:
            turns.append((found[0], [found[1]]))
    return [(speaker, "\n".join(lines).strip() or MISSING_LINE) for speaker, lines in turns]


def parse_mes_example(text: str, *, names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """Sample (user line, character line) pairs, at most MAX_PAIRS."""
    known = tuple(name for name in names if name.strip())
    pairs: list[tuple[str, str]] = []
    for block in _START.split(text):
        pending: str | None = None
        for speaker, body in _turns(block, known):
            if speaker == "user":
                pending = body
            else:
                pairs.append((pending or MISSING_LINE, body))
                pending = None
        if pending is not None:
            pairs.append((pending, MISSING_LINE))
    return pairs[:MAX_PAIRS]


def build_mes_example(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"<START>\n{{{{user}}}}: {u}\n{{{{char}}}}: {a}" for u, a in pairs)

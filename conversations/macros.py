"""Card macros (CBS), matched case-insensitively.

`{{char}}` (the caller passes the nickname first), `{{user}}`, `<BOT>`/`<CHAR>`/`<USER>`,
`{{original}}`, `{{random:a,b}}` (`\\,` escapes a comma; `{{random::a::b}}` too),
`{{pick:a,b}}` (stable for a given seed), `{{roll:N}}`/`{{roll:dN}}`, `{{reverse:a}}`; and
`{{// …}}`, `{{hidden_key:…}}` and `{{comment:…}}` are removed. Unknown macros are left as
they are. Inner macros expand first, so `{{random:{{char}},{{user}}}}` works.

What a macro stands for (a name, `{{original}}`, a reversed text) is put in as it is and never
scanned for macros again: a persona named `{{user}}{{user}}` would otherwise double with every
pass, and a few such names made gigabytes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import Counter
from collections.abc import Callable

MAX_PASSES = 8
MAX_ROLL = 1_000_000
_CHAR = re.compile(r"<bot>|<char>", re.IGNORECASE)
_USER = re.compile(r"<user>", re.IGNORECASE)
_COMMENT_OPEN = "{{//"
_COMMENT_CLOSE = "}}"
_MACRO = re.compile(r"\{\{([^{}]*)\}\}")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")
_ROLL = re.compile(r"d?(\d{1,7})", re.IGNORECASE)
# Stands in for a literal while passes run: no braces, and NUL is taken out of the text first
# (no card or name may hold one; PostgreSQL cannot store it).
_LITERAL = re.compile("\x00(\\d+)\x00")


class _Literals:
    """Values put into the text that later passes must leave alone."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> str:
        self.values.append(value.replace("\x00", ""))
        return f"\x00{len(self.values) - 1}\x00"

    def resolve(self, text: str) -> str:
        if "\x00" not in text:
            return text
        return _LITERAL.sub(lambda match: self.values[int(match.group(1))], text)


def _options(argument: str) -> list[str]:
    if argument.startswith(":"):
        return [option.strip() for option in argument[1:].split("::")]
    return [o.replace("\\,", ",").strip() for o in _UNESCAPED_COMMA.split(argument)]


def _roll(argument: str, original: str) -> str:
    match = _ROLL.fullmatch(argument.strip())
    if match is None or not 1 <= int(match.group(1)) <= MAX_ROLL:
        return original
    return str(secrets.randbelow(int(match.group(1))) + 1)


def _stable_choice(options: list[str], key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def _replacer(
    *, plain: dict[str, str], literals: _Literals, seed: str, keep_comments: bool
) -> Callable[[re.Match[str]], str]:
    picks: Counter[str] = Counter()

    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        name, colon, argument = body.partition(":")
        name = name.strip().lower()
        if not colon:
            if name.startswith("//"):
                return ""
            return plain.get(name, match.group(0))
        if name == "random":
            return secrets.choice(_options(argument))
        if name == "pick":
            picks[argument] += 1
            return _stable_choice(_options(argument), f"{seed}\x00{argument}\x00{picks[argument]}")
        if name == "roll":
            return _roll(argument, match.group(0))
        if name == "reverse":
            return literals.add(literals.resolve(argument)[::-1])
        if name == "hidden_key":
            return ""
        if name == "comment":
            return argument.strip() if keep_comments else ""
        return match.group(0)

    return replace


def expand(
    text: str,
    *,
    char: str,
    user: str,
    seed: str | None = None,
    original: str = "",
    keep_comments: bool = False,
) -> str:
    """Expand the macros in `text`.

    `seed` makes `{{pick}}` stable (pass the conversation's id); without one, a pick is stable
    for the same text. `original` is what `{{original}}` stands for in a card's system prompt
    or post-history instructions: the app's own default, which is empty.
    """
    if "{" not in text and "<" not in text:
        return text
    literals = _Literals()
    plain = {"char": literals.add(char), "user": literals.add(user)}
    plain["original"] = literals.add(original)
    text = text.replace("\x00", "")
    text = _CHAR.sub(lambda _m: plain["char"], text)
    text = _USER.sub(lambda _m: plain["user"], text)
    if "{{" in text:
        replace = _replacer(
            plain=plain,
            literals=literals,
            seed=text if seed is None else seed,
            keep_comments=keep_comments,
        )
        text = _without_comments(text)
        for _ in range(MAX_PASSES):
            expanded = _MACRO.sub(replace, text)
            if expanded == text:
                break
            text = expanded
    return literals.resolve(text)


def _without_comments(text: str) -> str:
    # Each comment ends at the first `}}` after its opening, and an opening with no `}}` after
    # it means no later one has one either: one pass, where a lazy regex would rescan the rest
    # of the text from every unclosed `{{//`.
    kept: list[str] = []
    position = 0
    while (start := text.find(_COMMENT_OPEN, position)) != -1:
        end = text.find(_COMMENT_CLOSE, start + len(_COMMENT_OPEN))
        if end == -1:
            break
        kept.append(text[position:start])
        position = end + len(_COMMENT_CLOSE)
    kept.append(text[position:])
    return "".join(kept)


def strip_comments(text: str) -> str:
    """Remove `{{// …}}` comments: they are neither sent nor scanned for lore keys."""
    return _without_comments(text) if _COMMENT_OPEN in text else text

"""V3 lorebook decorators: `@@name value` lines at the top of an entry's content.

Read once per entry per message by `conversations.lore`, which applies `@@activate`,
`@@dont_activate` and the scanning ones (`@@additional_keys`, `@@exclude_keys`, `@@scan_depth`,
`@@instruct_scan_depth`). The other decorators of the V3 spec ask for what one system message
cannot do (a placement, a role, a turn count) and are reported as not applied for an entry that
fires. Unknown decorators are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DECORATOR = re.compile(r"(@@@?)([a-z_]+)(?:[ \t]([^\n]*))?", re.IGNORECASE)
_MAY_DECORATE = re.compile(r"\s*@@")
_DEPTH_VALUE = re.compile(r"\d{1,9}")
# The V3 decorators this engine applies, and those it knows but cannot apply with one system
# message before the history (they are reported instead).
APPLIED_DECORATORS = frozenset(
    {"activate", "dont_activate", "additional_keys", "exclude_keys", "scan_depth"}
    | {"instruct_scan_depth"}
)
UNAPPLIED_DECORATORS = frozenset(
    {"activate_only_after", "activate_only_every", "keep_activate_after_match"}
    | {"dont_activate_after_match", "is_greeting", "is_user_icon", "depth", "instruct_depth"}
    | {"reverse_depth", "reverse_instruct_depth", "position", "role", "ignore_on_max_context"}
    | {"disable_ui_prompt"}
)


@dataclass(frozen=True)
class Decorators:
    """What an entry's V3 decorators ask for, and its content without them."""

    body: str
    activate: bool = False
    dont_activate: bool = False
    additional_keys: tuple[str, ...] = ()
    exclude_keys: tuple[str, ...] = ()
    # Messages this entry scans instead of the book's depth (the engine bounds it).
    scan_depth: int | None = None
    not_applied: tuple[str, ...] = ()


def _decorator_lines(content: str) -> tuple[list[re.Match[str]], str]:
    """The decorator lines at the top of `content`, and the content after them.

    Walks line by line, so a long entry is not split whole for a decorator test.
    """
    found: list[re.Match[str]] = []
    if _MAY_DECORATE.match(content) is None:
        return found, content
    start = 0
    while True:
        end = content.find("\n", start)
        match = _DECORATOR.fullmatch((content[start:] if end < 0 else content[start:end]).strip())
        if match is None:
            return found, content[start:]
        found.append(match)
        if end < 0:
            return found, ""
        start = end + 1


def _keys(value: str) -> tuple[str, ...]:
    # Comma-separated, as the spec writes them: a regex key holding a comma (`/a{1,3}/`) cannot
    # be given by a decorator.
    return tuple(key for key in (part.strip() for part in value.split(",")) if key)


def parse_decorators(content: str) -> Decorators:
    """Read the V3 decorators at the top of an entry's content.

    `@@@name value` is a fallback for the decorator above it. The reading here: a decorator
    and its fallbacks form a chain, and the first link this engine can apply wins (one it does
    not know, knows but cannot apply, or whose value it cannot read passes to the next). If no
    link applies, the chain's first decorator of the V3 spec is reported as not applied, and
    names outside the spec are ignored. A fallback with no decorator above it heads a chain.
    """
    lines, body = _decorator_lines(content)
    chains: list[list[tuple[str, str]]] = []
    for match in lines:
        marker, name, value = match.groups()
        if marker == "@@" or not chains:
            chains.append([])
        chains[-1].append((name.lower(), (value or "").strip()))
    flags: set[str] = set()
    additional: list[str] = []
    exclude: list[str] = []
    depths: list[int] = []
    not_applied: list[str] = []
    for chain in chains:
        unapplied = ""
        for name, value in chain:
            if name in ("activate", "dont_activate"):
                flags.add(name)
                break
            if name in ("additional_keys", "exclude_keys") and (keys := _keys(value)):
                (additional if name == "additional_keys" else exclude).extend(keys)
                break
            if name in ("scan_depth", "instruct_scan_depth") and _DEPTH_VALUE.fullmatch(value):
                depths.append(int(value))
                break
            if not unapplied and (name in UNAPPLIED_DECORATORS or name in APPLIED_DECORATORS):
                unapplied = name
        else:
            if unapplied and unapplied not in not_applied:
                not_applied.append(unapplied)
    return Decorators(
        body=body,
        activate="activate" in flags,
        dont_activate="dont_activate" in flags,
        additional_keys=tuple(additional),
        exclude_keys=tuple(exclude),
        # Both depths narrow what the entry scans, and conditions combine with AND: the
        # narrowest one holds (a chat has no separate instruct mode).
        scan_depth=min(depths) if depths else None,
        not_applied=tuple(not_applied),
    )

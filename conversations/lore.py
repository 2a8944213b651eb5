"""Pure lorebook activation: which entries fire for the recent messages, within a budget.

Keys match as case-insensitive substrings unless an entry is case-sensitive; a key written
`/pattern/flags` is a regular expression when the entry uses regexes (an invalid or risky
pattern never matches). Selective entries need a secondary key as well (SillyTavern's
`selectiveLogic` is honoured). Constant entries always fire. With recursive scanning, fired
entries' content may trigger others, a bounded number of rounds deep. Over the budget, the
lowest priority entries are dropped first; the rest are placed by insertion order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from conversations.macros import strip_comments
from conversations.tokens import TokenEstimator, default_estimator

DEFAULT_SCAN_DEPTH = 2
MAX_SCAN_DEPTH = 100
MAX_SCAN_CHARS = 20_000
MAX_RECURSION = 3
MAX_REGEX_CHARS = 200
# `re` cannot be interrupted, so risky shapes are refused rather than timed out: no nested
# repetition, no backreferences, at most one unbounded repetition, and regexes see only the
# newest MAX_REGEX_SCAN_CHARS of the window (so the worst case stays quadratic in that).
MAX_REGEX_SCAN_CHARS = 4_000
MAX_UNBOUNDED_REPEATS = 1
_BOUNDED_REPEAT_MAX = 20
_REGEX_KEY = re.compile(r"/(.+)/([a-z]*)", re.DOTALL)
# A quantified group that itself repeats or alternates: the shape of catastrophic backtracking.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+}|])(?:[^()\\]|\\.)*\)\s*[*+{]")
_DECORATOR = re.compile(r"@@@?[a-z_]+(?:[ \t][^\n]*)?", re.IGNORECASE)


class Logic:
    AND_ANY = 0
    NOT_ALL = 1
    NOT_ANY = 2
    AND_ALL = 3


@dataclass(frozen=True)
class LoreEntry:
    id: int
    keys: tuple[str, ...]
    content: str
    secondary_keys: tuple[str, ...] = ()
    enabled: bool = True
    constant: bool = False
    selective: bool = False
    selective_logic: int = Logic.AND_ANY
    case_sensitive: bool = False
    use_regex: bool = False
    insertion_order: int = 100
    priority: int = 0
    position: str = ""
    name: str = ""
    exclude_recursion: bool = False
    prevent_recursion: bool = False


@dataclass(frozen=True)
class LoreBook:
    entries: tuple[LoreEntry, ...]
    scan_depth: int | None = None
    token_budget: int | None = None
    recursive_scanning: bool = False


@dataclass(frozen=True)
class FiredEntry:
    entry: LoreEntry
    reason: str
    tokens: int
    included: bool
    dropped_reason: str = ""


@dataclass(frozen=True)
class LoreResult:
    texts: tuple[str, ...] = ()
    fired: tuple[FiredEntry, ...] = field(default_factory=tuple)
    budget_tokens: int = 0
    used_tokens: int = 0
    # How many of `texts` (the first ones) go before the character's description.
    before_char: int = 0

    @property
    def included(self) -> tuple[FiredEntry, ...]:
        return tuple(f for f in self.fired if f.included)

    @property
    def dropped(self) -> tuple[FiredEntry, ...]:
        return tuple(f for f in self.fired if not f.included)


def _unbounded_repeats(pattern: str) -> int:
    """Count `*`, `+`, `{n,}` and wide `{n,m}` outside escapes and character classes."""
    count, i, in_class, after_repeat = 0, 0, False, False
    while i < len(pattern):
        char, step, repeat = pattern[i], 1, False
        if char == "\\":
            step = 2
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            step = 2 if pattern[i + 1 : i + 2] == "]" else 1
        elif char in "*+?":
            # A `+` or `?` right after a repetition makes it possessive or lazy, not a new one.
            repeat = True
            count += char != "?" and not after_repeat
        elif char == "{" and (bounds := re.match(r"\{(\d*),(\d*)\}", pattern[i:])):
            repeat, step = True, bounds.end()
            count += not bounds.group(2) or int(bounds.group(2)) > _BOUNDED_REPEAT_MAX
        after_repeat = repeat
        i += step
    return count


@lru_cache(maxsize=512)
def _compiled(key: str) -> re.Pattern[str] | None:
    """The regex a `/pattern/flags` key stands for, or None if it is invalid or risky."""
    match = _REGEX_KEY.fullmatch(key)
    if match is None or len(key) > MAX_REGEX_CHARS:
        return None
    pattern, flags = match.groups()
    if _NESTED_QUANTIFIER.search(pattern) or re.search(r"\\[1-9]|\(\?P=", pattern):
        return None
    if _unbounded_repeats(pattern) > MAX_UNBOUNDED_REPEATS:
        return None
    options = 0
    for flag in flags:
        options |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}.get(flag, 0)
    try:
        return re.compile(pattern, options)
    except (re.error, RecursionError, OverflowError):
        return None


def is_regex_key(key: str) -> bool:
    return _REGEX_KEY.fullmatch(key) is not None


def _matches(key: str, entry: LoreEntry, text: str, folded: str) -> bool:
    key = key.strip()
    if not key:
        return False
    if entry.use_regex and is_regex_key(key):
        pattern = _compiled(key)
        return pattern is not None and pattern.search(text[-MAX_REGEX_SCAN_CHARS:]) is not None
    if entry.case_sensitive:
        return key in text
    return key.casefold() in folded


def _secondary_ok(entry: LoreEntry, text: str, folded: str) -> bool:
    if not entry.selective or not entry.secondary_keys:
        return True
    hits = [_matches(k, entry, text, folded) for k in entry.secondary_keys]
    if entry.selective_logic == Logic.NOT_ALL:
        return not all(hits)
    if entry.selective_logic == Logic.NOT_ANY:
        return not any(hits)
    if entry.selective_logic == Logic.AND_ALL:
        return all(hits)
    return any(hits)


def _trigger(entry: LoreEntry, text: str, folded: str) -> str | None:
    """The key that makes `entry` fire on `text`, or None."""
    for key in entry.keys:
        if _matches(key, entry, text, folded) and _secondary_ok(entry, text, folded):
            return key.strip()
    return None


def _decorator_lines(content: str) -> int:
    lines = content.split("\n")
    count = 0
    while count < len(lines) and _DECORATOR.fullmatch(lines[count].strip()):
        count += 1
    return count


def strip_decorators(content: str) -> str:
    """Drop V3 `@@decorator` lines at the top of an entry's content."""
    return "\n".join(content.split("\n")[_decorator_lines(content) :])


def decorators(content: str) -> set[str]:
    """The names of the V3 decorators at the top of an entry's content (`@@@` fallbacks aside)."""
    lines = content.split("\n")[: _decorator_lines(content)]
    return {line.strip()[2:].split()[0].lower() for line in lines if not line.startswith("@@@")}


def messages_scanned(scan_depth: int | None) -> int:
    """How many of the newest messages a book with this `scan_depth` matches its keys against."""
    return DEFAULT_SCAN_DEPTH if scan_depth is None else min(scan_depth, MAX_SCAN_DEPTH)


def scan_window(messages: Sequence[str], scan_depth: int | None) -> str:
    """The text keys are matched against: the last `scan_depth` messages, newest last."""
    depth = messages_scanned(scan_depth)
    recent = list(messages[-depth:]) if depth > 0 else []
    return "\n".join(recent)[-MAX_SCAN_CHARS:]


def _activate(book: LoreBook, window: str) -> list[tuple[LoreEntry, str]]:
    candidates: list[LoreEntry] = []
    fired: list[tuple[LoreEntry, str]] = []
    for entry in book.entries:
        marks = decorators(entry.content) if entry.content.startswith("@@") else set()
        if not entry.enabled or "dont_activate" in marks:
            continue
        if entry.constant or "activate" in marks:
            fired.append((entry, "constant"))
        else:
            candidates.append(entry)
    content = [strip_comments(e.content) for e, _ in fired if not e.prevent_recursion]
    text, rounds = window, 0
    while True:
        folded = text.casefold()
        found = []
        for entry in candidates:
            if rounds > 0 and entry.exclude_recursion:
                continue
            key = _trigger(entry, text, folded)
            if key is not None:
                found.append((entry, f"key “{key}”" if rounds == 0 else f"recursion: “{key}”"))
        fired.extend(found)
        candidates = [e for e in candidates if all(e is not f for f, _ in found)]
        added = [strip_comments(e.content) for e, _ in found if not e.prevent_recursion]
        content += added
        if not book.recursive_scanning or rounds >= MAX_RECURSION or not content:
            return fired
        if rounds > 0 and not added:
            return fired
        # Entry content joins the messages, so a key and its secondary key may come from both.
        text = window + "\n" + "\n".join(content)[-MAX_SCAN_CHARS:]
        rounds += 1


def apply_lorebook(
    book: LoreBook,
    *,
    messages: Sequence[str],
    budget_tokens: int,
    estimator: TokenEstimator | None = None,
) -> LoreResult:
    """Fire the book's entries for `messages` and fit them in min(book budget, budget_tokens)."""
    est = estimator or default_estimator
    budget = max(budget_tokens, 0)
    if book.token_budget is not None:
        budget = min(budget, book.token_budget)
    fired = _activate(book, scan_window(messages, book.scan_depth))
    texts = {entry.id: strip_decorators(entry.content).strip() for entry, _ in fired}
    costs = {entry.id: est.count(texts[entry.id]) for entry, _ in fired}
    kept: set[int] = set()
    used = 0
    for entry, _ in sorted(fired, key=lambda f: (-f[0].priority, f[0].insertion_order, f[0].id)):
        if used + costs[entry.id] <= budget:
            kept.add(entry.id)
            used += costs[entry.id]
    report = tuple(
        FiredEntry(
            entry=entry,
            reason=reason,
            tokens=costs[entry.id],
            included=entry.id in kept,
            dropped_reason="" if entry.id in kept else "over the lore budget (lower priority)",
        )
        for entry, reason in fired
    )
    placed = sorted(
        (entry for entry, _ in fired if entry.id in kept and texts[entry.id]),
        key=lambda e: (e.position != "before_char", e.insertion_order, e.id),
    )
    before = sum(1 for e in placed if e.position == "before_char")
    return LoreResult(tuple(texts[e.id] for e in placed), report, budget, used, before)

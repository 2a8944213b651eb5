"""Pure lorebook activation: which entries fire for the recent messages, within a budget.

Keys match as case-insensitive substrings unless an entry is case-sensitive; a key written
`/pattern/flags` is a regular expression when the entry uses regexes, run by RE2 in time linear
in the text (a pattern RE2 cannot run, such as one with a backreference or a lookaround, never
matches, as an invalid one does). Selective entries need a secondary key as well
(SillyTavern's `selectiveLogic` is honoured). Constant entries always fire. With recursive
scanning, fired entries' content may trigger others, a bounded number of rounds deep. Over the
budget, the lowest priority entries are dropped first; the rest are placed by insertion order.

V3 decorators (`@@name value` lines at the top of an entry's content) are read once per entry
and stripped from what is inserted. The engine applies `@@activate`, `@@dont_activate` and the
scanning ones (`@@additional_keys`, `@@exclude_keys`, `@@scan_depth`, `@@instruct_scan_depth`);
the other decorators of the V3 spec ask for what one system message cannot do (a placement, a
role, a turn count) and are reported as not applied for an entry that fires. Unknown
decorators are ignored.

The key tests of one message share a bounded amount of work, whatever the book holds: a number
of tests, the characters plain keys search and the steps regexes may take. Once the tests or
the characters are spent, the keys not yet tested do not match; once the steps are, regexes
no longer match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2  # type: ignore[import-untyped]

from conversations.lore_decorators import Decorators, parse_decorators
from conversations.macros import strip_comments
from conversations.tokens import TokenEstimator, default_estimator

DEFAULT_SCAN_DEPTH = 2
MAX_SCAN_DEPTH = 100
MAX_SCAN_CHARS = 20_000
MAX_RECURSION = 3
MAX_REGEX_CHARS = 200
# Regexes see only the newest part of the window: a regex test costs far more than a plain one.
MAX_REGEX_SCAN_CHARS = 4_000
# Lore is matched on the thread that every socket of a process shares for the database, so
# one message's key tests are bounded (to a few tenths of a second, at worst, on a 2-core
# server), while a book at the key limit is still matched whole against a full window. A plain
# key test costs the characters it searches (300M took ~0.2 s). A regex test costs RE2's worst
# case: when its DFA gives up, every instruction of the program may step for every byte, plus
# a fixed cost per byte and for compiling; a pattern RE2 refuses costs only the attempt to
# compile it.
MAX_KEY_TESTS = 20_000
PLAIN_SCAN_BUDGET = 300_000_000
REGEX_SCAN_BUDGET = 100_000_000
_REGEX_STEP_OVERHEAD = 16
_REGEX_COMPILE_BYTES = 64
# Memory RE2 may use for one pattern (its program and DFA cache); a larger program is refused.
# With the cache of compiled keys, a process keeps at most 64 MiB of them.
_REGEX_MAX_MEM = 256 * 1024
_REGEX_KEY = re.compile(r"/(.+)/([a-z]*)", re.DOTALL)


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
    # The entry's V3 decorators the engine knows but did not apply (names, without the @@).
    not_applied: tuple[str, ...] = ()


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


def _re2_options() -> Any:
    options = re2.Options()
    options.max_mem = _REGEX_MAX_MEM
    options.never_capture = True
    options.log_errors = False
    return options


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=256)
def _compiled(key: str) -> Any | None:
    """The RE2 regex a `/pattern/flags` key stands for, or None if it is invalid or too large."""
    match = _REGEX_KEY.fullmatch(key)
    if match is None or len(key) > MAX_REGEX_CHARS:
        return None
    pattern, flags = match.groups()
    # JavaScript's flags, as cards write them; only these three change what matches.
    inline = "".join(flag for flag in "ims" if flag in flags)
    try:
        return re2.compile(f"(?{inline}){pattern}" if inline else pattern, _RE2_OPTIONS)
    except (re2.error, UnicodeError):
        return None


def is_regex_key(key: str) -> bool:
    return _REGEX_KEY.fullmatch(key) is not None


class _Text:
    """One text keys are tested against, with what its tests share."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: str | None = None
        self._tail: bytes | None = None
        # Books repeat keys across entries (a name, a secondary key): each is tested once.
        self.seen: dict[tuple[str, str], bool] = {}

    @property
    def folded(self) -> str:
        if self._folded is None:
            self._folded = self.text.casefold()
        return self._folded

    @property
    def tail(self) -> bytes:
        if self._tail is None:
            self._tail = self.text[-MAX_REGEX_SCAN_CHARS:].encode("utf-8", "replace")
        return self._tail


class _Scan:
    """The key tests of one message: each against the current text, all within one budget.

    Entries with their own scan depth test against other texts; the budget is the same.
    """

    def __init__(self) -> None:
        self.tests_left = MAX_KEY_TESTS
        self.plain_left = PLAIN_SCAN_BUDGET
        self.regex_left = REGEX_SCAN_BUDGET
        # Tests left undone for want of budget: an entry cannot be judged on them.
        self.skipped = 0
        self.current = _Text("")

    @property
    def spent(self) -> bool:
        return self.tests_left <= 0 or self.plain_left <= 0

    def use(self, text: _Text) -> None:
        self.current = text

    def matches(self, key: str, entry: LoreEntry) -> bool:
        if self.spent:
            self.skipped += 1
            return False
        self.tests_left -= 1
        # Reading a key (stripping it, telling a regex) costs its length, whatever it matches.
        self.plain_left -= len(key)
        key = key.strip()
        if not key:
            return False
        if entry.use_regex and is_regex_key(key):
            kind = "regex"
        else:
            kind = "case" if entry.case_sensitive else "fold"
        seen = self.current.seen
        found = seen.get((key, kind))
        if found is None:
            found = self._regex(key) if kind == "regex" else self._plain(key, kind)
            if found is None:
                self.skipped += 1
                return False
            seen[key, kind] = found
        return found

    def _plain(self, key: str, kind: str) -> bool | None:
        text = self.current
        cost = len(text.text)
        if cost > self.plain_left:
            self.plain_left = 0
            return None
        self.plain_left -= cost
        return key in text.text if kind == "case" else key.casefold() in text.folded

    def _regex(self, key: str) -> bool | None:
        if self.regex_left <= 0:
            return None
        tail = self.current.tail
        pattern = _compiled(key)
        if pattern is None:
            cost = (len(key) + _REGEX_STEP_OVERHEAD) * _REGEX_COMPILE_BYTES
        else:
            size = pattern.programsize + _REGEX_STEP_OVERHEAD
            cost = size * (len(tail) + _REGEX_COMPILE_BYTES)
        if cost > self.regex_left:
            self.regex_left = 0
            return None
        self.regex_left -= cost
        return pattern is not None and pattern.search(tail) is not None


def _secondary_ok(entry: LoreEntry, scan: _Scan) -> bool:
    if not entry.selective or not entry.secondary_keys:
        return True
    skipped = scan.skipped
    hits = [scan.matches(k, entry) for k in entry.secondary_keys]
    if scan.skipped != skipped:
        return False
    if entry.selective_logic == Logic.NOT_ALL:
        return not all(hits)
    if entry.selective_logic == Logic.NOT_ANY:
        return not any(hits)
    if entry.selective_logic == Logic.AND_ALL:
        return all(hits)
    return any(hits)


def _excluded(entry: LoreEntry, marks: Decorators, scan: _Scan) -> bool:
    """Whether an `@@exclude_keys` key matches (or one was left untested: it cannot be ruled
    out, so the entry stays out, as with untested secondary keys)."""
    skipped = scan.skipped
    hit = any(scan.matches(key, entry) for key in marks.exclude_keys)
    return hit or scan.skipped != skipped


def _trigger(entry: LoreEntry, marks: Decorators, scan: _Scan) -> str | None:
    """The key that makes `entry` fire on the scanned text, or None."""
    for key in entry.keys + marks.additional_keys:
        if scan.spent:
            return None
        if scan.matches(key, entry) and _secondary_ok(entry, scan):
            return None if _excluded(entry, marks, scan) else key.strip()
    return None


def messages_scanned(scan_depth: int | None) -> int:
    """How many of the newest messages a book with this `scan_depth` matches its keys against."""
    return DEFAULT_SCAN_DEPTH if scan_depth is None else min(scan_depth, MAX_SCAN_DEPTH)


def scan_window(messages: Sequence[str], scan_depth: int | None) -> str:
    """The text keys are matched against: the last `scan_depth` messages, newest last."""
    depth = messages_scanned(scan_depth)
    # Only the newest MAX_SCAN_CHARS are kept, so only the messages they come from are joined
    # (entries with their own depth ask for a window each).
    tail: list[str] = []
    size = 0
    for message in reversed(messages[-depth:] if depth > 0 else []):
        if size > MAX_SCAN_CHARS:
            break
        tail.append(message[-MAX_SCAN_CHARS - 1 :])
        size += len(tail[-1]) + 1
    return "\n".join(reversed(tail))[-MAX_SCAN_CHARS:]


class _Windows:
    """The text each scan depth in use matches against, in the current round."""

    def __init__(self, messages: Sequence[str], scan_depth: int | None) -> None:
        self._messages = messages
        self._default = messages_scanned(scan_depth)
        self._windows: dict[int, str] = {}
        self._texts: dict[int, _Text] = {}
        self._recursed = ""

    def next_round(self, content: list[str]) -> None:
        # Entry content joins the messages, so a key and its secondary key may come from both.
        self._recursed = "\n" + "\n".join(content)[-MAX_SCAN_CHARS:]
        self._texts.clear()

    def text(self, depth: int | None) -> _Text:
        depth = self._default if depth is None else min(depth, MAX_SCAN_DEPTH)
        text = self._texts.get(depth)
        if text is None:
            window = self._windows.get(depth)
            if window is None:
                window = self._windows[depth] = scan_window(self._messages, depth)
            text = self._texts[depth] = _Text(window + self._recursed)
        return text


def _activate(
    book: LoreBook, messages: Sequence[str], marks: dict[int, Decorators]
) -> list[tuple[LoreEntry, str]]:
    forced: list[LoreEntry] = []
    candidates: list[LoreEntry] = []
    for entry in book.entries:
        if not entry.enabled or marks[entry.id].dont_activate:
            continue
        if entry.constant or marks[entry.id].activate:
            forced.append(entry)
        else:
            candidates.append(entry)
    scan = _Scan()
    windows = _Windows(messages, book.scan_depth)
    fired: list[tuple[LoreEntry, str]] = []
    for entry in forced:
        # Conditions combine with AND: exclude keys keep even an always-on entry out.
        if marks[entry.id].exclude_keys:
            scan.use(windows.text(marks[entry.id].scan_depth))
            if _excluded(entry, marks[entry.id], scan):
                continue
        fired.append((entry, "constant"))
    content = [strip_comments(marks[e.id].body) for e, _ in fired if not e.prevent_recursion]
    rounds = 0
    while True:
        found = []
        for entry in candidates:
            if scan.spent:
                break
            if rounds > 0 and entry.exclude_recursion:
                continue
            scan.use(windows.text(marks[entry.id].scan_depth))
            key = _trigger(entry, marks[entry.id], scan)
            if key is not None:
                found.append((entry, f"key “{key}”" if rounds == 0 else f"recursion: “{key}”"))
        fired.extend(found)
        candidates = [e for e in candidates if all(e is not f for f, _ in found)]
        added = [strip_comments(marks[e.id].body) for e, _ in found if not e.prevent_recursion]
        content += added
        if not book.recursive_scanning or rounds >= MAX_RECURSION or not content:
            return fired
        if rounds > 0 and not added:
            return fired
        windows.next_round(content)
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
    # Each entry's decorators are read once here; activation and insertion share the reading.
    marks = {entry.id: parse_decorators(entry.content) for entry in book.entries if entry.enabled}
    fired = _activate(book, messages, marks)
    texts = {entry.id: marks[entry.id].body.strip() for entry, _ in fired}
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
            not_applied=marks[entry.id].not_applied,
        )
        for entry, reason in fired
    )
    placed = sorted(
        (entry for entry, _ in fired if entry.id in kept and texts[entry.id]),
        key=lambda e: (e.position != "before_char", e.insertion_order, e.id),
    )
    before = sum(1 for e in placed if e.position == "before_char")
    return LoreResult(tuple(texts[e.id] for e in placed), report, budget, used, before)

"""Character books (V2 `character_book`, V3 `Lorebook`) <-> Lorebook and LorebookEntry columns.

Risu (`key`/`secondkey` comma strings, `insertorder`, `alwaysActive`) and agnai (`entry`,
`keywords`, `weight`) shapes are accepted on import and renamed to the spec's keys; what has
no counterpart stays in the entry's `card_extras`, as does every unknown key. agnai's own
`constant`, `position`, `selective` (with `secondaryKeys`, `probability`) share the spec's
names but are kept, not applied (product contract §2.5): they stay in `card_extras` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from characters.cards import fields as f
from characters.cards.errors import CardError

MAX_ENTRIES = 2000
# Every key is matched against the recent messages each time the character replies: the
# book's keys (secondary ones too) bound the work one message causes.
MAX_KEYS = 5000
LORE_POSITIONS = ("before_char", "after_char")
SCAN_DEPTH_MAX = 1000
TOKEN_BUDGET_MAX = 1_000_000

BOOK_CODECS = (
    f.text("name"),
    f.text("description"),
    f.integer("scan_depth", None, 0, SCAN_DEPTH_MAX),
    f.integer("token_budget", None, 0, TOKEN_BUDGET_MAX),
    f.boolean("recursive_scanning", False),
    f.mapping("extensions"),
)
BOOK_REQUIRED = {"extensions"}


def _position(value: Any) -> str:
    if value in LORE_POSITIONS:
        return str(value)
    # SillyTavern's numeric world-info positions: 0 before the character, 1 after.
    if value in (0, 1) and not isinstance(value, bool):
        return LORE_POSITIONS[int(value)]
    return ""


ENTRY_CODECS = (
    f.key_list("keys"),
    f.text("content"),
    f.mapping("extensions"),
    f.boolean("enabled", True),
    f.integer("insertion_order", 100),
    f.boolean("case_sensitive", False),
    # V2 books have no `use_regex`; SillyTavern treats /…/ keys as regexes regardless.
    f.boolean("use_regex", True),
    f.boolean("constant", False),
    f.text("name"),
    f.integer("priority", 0),
    f.text("comment"),
    f.boolean("selective", False),
    f.key_list("secondary_keys"),
    f.Codec("position", _position, f.identity, ""),
)
ENTRY_REQUIRED = {"keys", "content", "extensions", "enabled", "insertion_order"}
ENTRY_REQUIRED_V3 = ENTRY_REQUIRED | {"use_regex"}
# The models' columns carry the spec's key names.
BOOK_COLUMNS = tuple(codec.key for codec in BOOK_CODECS)
ENTRY_COLUMNS = tuple(codec.key for codec in ENTRY_CODECS)

_RISU = {
    "key": "keys",
    "secondkey": "secondary_keys",
    "insertorder": "insertion_order",
    "alwaysActive": "constant",
    "useRegex": "use_regex",
}
_RISU_BOOK = {"tokenBudget": "token_budget", "scanDepth": "scan_depth"}
_RISU_BOOK |= {"recursiveScanning": "recursive_scanning"}
_AGNAI = {"entry": "content", "keywords": "keys", "weight": "insertion_order"}
# agnai entry keys kept verbatim for export but never applied, though some share a column's name.
_AGNAI_KEPT = ("secondaryKeys", "constant", "position", "selective", "probability")


@dataclass
class ParsedBook:
    fields: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)


def _renamed(raw: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        target = names.get(key, key)
        if target not in out:
            out[target] = value
    return out


def _normalise_entry(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entry under the spec's keys, and the keys to keep unapplied (as unknown keys are)."""
    if "keys" not in raw and any(k in raw for k in ("key", "secondkey", "insertorder")):
        entry = _renamed(raw, _RISU)
        if raw.get("mode") == "constant":
            entry["constant"] = True
        return entry, {}
    if "keys" not in raw and "content" not in raw and ("entry" in raw or "keywords" in raw):
        entry = _renamed(raw, _AGNAI)
        kept = {key: entry.pop(key) for key in _AGNAI_KEPT if key in entry}
        return entry, kept
    return raw, {}


def _split_entry(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    entry, kept = _normalise_entry(raw)
    values, meta = f.split(entry, ENTRY_CODECS)
    # Kept keys go where unknown ones do: the columns stay at their defaults (recorded absent,
    # so an unedited entry exports them from here, verbatim).
    meta["unknown"] = {**meta["unknown"], **kept}
    return values, meta


def _normalise_book(raw: Any) -> dict[str, Any]:
    if isinstance(raw, list):
        return {"entries": raw}
    if not isinstance(raw, dict):
        raise CardError("The card's lorebook is not an object.")
    if raw.get("kind") == "memory":
        return raw  # agnai: book-level settings are kept, not applied
    return _renamed(raw, _RISU_BOOK) if "entries" in raw else raw


def parse_book(raw: Any) -> ParsedBook:
    """Column values of a book and its entries, each with the `card_extras` that restore it."""
    book = _normalise_book(raw)
    entries = book.get("entries", [])
    if not isinstance(entries, list):
        raise CardError("The lorebook's entries are not a list.")
    if len(entries) > MAX_ENTRIES:
        raise CardError(f"The lorebook has too many entries (at most {MAX_ENTRIES}).")
    values, meta = f.split({k: v for k, v in book.items() if k != "entries"}, BOOK_CODECS)
    parsed = ParsedBook(fields={**values, "card_extras": meta})
    for index, item in enumerate(entries, start=1):
        if not isinstance(item, dict):
            raise CardError(f"Lorebook entry {index} is not an object.")
        entry_values, entry_meta = _split_entry(item)
        parsed.entries.append({**entry_values, "card_extras": entry_meta})
    keys = sum(len(entry["keys"]) + len(entry["secondary_keys"]) for entry in parsed.entries)
    if problem := too_many_keys(keys):
        raise CardError(problem)
    return parsed


def too_many_keys(keys: int) -> str | None:
    """Why a book whose entries hold `keys` keys (secondary ones too) is refused, or None."""
    if keys <= MAX_KEYS:
        return None
    return f"The lorebook has too many keys: {keys:,} across its entries (at most {MAX_KEYS:,})."


def build_book(
    book: dict[str, Any], entries: list[dict[str, Any]], *, version: int
) -> dict[str, Any]:
    """The card's book object from column values (each with its `card_extras`)."""
    required = ENTRY_REQUIRED_V3 if version >= 3 else ENTRY_REQUIRED
    out = f.join(book, book.get("card_extras") or {}, BOOK_CODECS, BOOK_REQUIRED)
    out["entries"] = [
        f.join(entry, entry.get("card_extras") or {}, ENTRY_CODECS, required) for entry in entries
    ]
    return out

"""Strict JSON reading for untrusted cards: UTF-8 only, bounded nesting, size and text content."""

from __future__ import annotations

import json
import math
from typing import Any

from characters.cards.errors import CardError

MAX_DEPTH = 64
MAX_NODES = 500_000


def decode_utf8(data: bytes, *, what: str = "The card") -> str:
    """Decode UTF-8 (a leading BOM is allowed), refusing any other encoding."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CardError(f"{what} is not UTF-8 text.") from None


def load_json(text: str, *, what: str = "The card") -> Any:
    """Parse JSON and check it: nesting depth, node count, no NUL or unpaired surrogates."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise CardError(f"{what} is nested too deeply.") from None
    except ValueError as error:
        raise CardError(f"{what} is not valid JSON ({error.args[0].split(':')[0]}).") from None
    check_tree(value, what=what)
    return value


def check_tree(value: Any, *, what: str = "The card") -> None:
    """Walk without recursion, so a hostile document cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise CardError(f"{what} is nested too deeply (at most {MAX_DEPTH} levels).")
        if nodes > MAX_NODES:
            raise CardError(f"{what} has too many values.")
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, float) and not math.isfinite(item):
            raise CardError(f"{what} holds a number out of range.")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, what)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise CardError(f"{what} contains NUL characters.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CardError(f"{what} contains invalid Unicode (unpaired surrogates).") from None


def dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

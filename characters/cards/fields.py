"""Lossless mapping between a card's JSON object and model columns.

Each known key has a codec (card value -> column value -> card value). `split` keeps what a
column cannot hold exactly: unknown keys verbatim, keys that were absent, and raw values the
codec had to coerce. `join` gives the raw value back while the column still holds what it was
coerced to, so an unedited import exports unchanged.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

_COMMA = re.compile(r"\s*,\s*")


@dataclass(frozen=True)
class Codec:
    key: str
    to_model: Callable[[Any], Any]
    to_card: Callable[[Any], Any]
    default: Any


def same(a: Any, b: Any) -> bool:
    """JSON equality that tells 1 from 1.0 from true."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def split(raw: dict[str, Any], codecs: Iterable[Codec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values for the known keys, and the metadata that restores `raw` exactly."""
    values: dict[str, Any] = {}
    absent: list[str] = []
    kept: dict[str, Any] = {}
    known: set[str] = set()
    for codec in codecs:
        known.add(codec.key)
        if codec.key not in raw:
            values[codec.key] = codec.default
            absent.append(codec.key)
            continue
        value = codec.to_model(raw[codec.key])
        values[codec.key] = value
        if not same(codec.to_card(value), raw[codec.key]):
            kept[codec.key] = raw[codec.key]
    meta: dict[str, Any] = {"unknown": {k: v for k, v in raw.items() if k not in known}}
    if absent:
        meta["absent"] = absent
    if kept:
        meta["raw"] = kept
    return values, meta


def join(
    values: dict[str, Any], meta: dict[str, Any], codecs: Iterable[Codec], required: set[str]
) -> dict[str, Any]:
    """The card object: known keys from `values`, restored raw values, then unknown keys."""
    codecs = tuple(codecs)
    kept = meta.get("raw") or {}
    # Without metadata the object was made in the app: optional keys at their default are left
    # out, as a card writer would.
    absent = set(meta.get("absent") or ()) if meta else {codec.key for codec in codecs}
    out: dict[str, Any] = {}
    for codec in codecs:
        value = values[codec.key]
        if codec.key in kept and same(codec.to_model(kept[codec.key]), value):
            out[codec.key] = kept[codec.key]
        elif codec.key in absent and codec.key not in required and same(value, codec.default):
            continue
        else:
            out[codec.key] = codec.to_card(value)
    for key, value in (meta.get("unknown") or {}).items():
        out.setdefault(key, value)
    return out


def identity(value: Any) -> Any:
    return value


def to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return ""


def to_text_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if not isinstance(value, list):
        return []
    return [to_text(item) for item in value if isinstance(item, str | int | float)]


def to_key_list(value: Any) -> list[str]:
    """Keys as a list; a comma string (Risu, some V3 writers) is split."""
    if isinstance(value, str):
        return [key for key in _COMMA.split(value.strip()) if key]
    return [key for key in to_text_list(value) if key]


INT_RANGE = (-(2**31), 2**31 - 1)


def to_int(default: int | None, lo: int, hi: int) -> Callable[[Any], int | None]:
    """An integer in [lo, hi]; anything else (bools, junk, out of range) is the default."""

    def convert(value: Any) -> int | None:
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value):
            number = int(value)
        elif isinstance(value, str):
            try:
                number = int(float(value.strip()))
            except (ValueError, OverflowError):
                number = None
        return number if number is not None and lo <= number <= hi else default

    return convert


def to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return value is True or (isinstance(value, int | float) and value == 1)


def to_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def text(key: str) -> Codec:
    return Codec(key, to_text, identity, "")


def text_list(key: str) -> Codec:
    return Codec(key, to_text_list, identity, [])


def key_list(key: str) -> Codec:
    return Codec(key, to_key_list, identity, [])


def integer(key: str, default: int | None, lo: int = INT_RANGE[0], hi: int = INT_RANGE[1]) -> Codec:
    return Codec(key, to_int(default, lo, hi), identity, default)


def boolean(key: str, default: bool) -> Codec:
    return Codec(key, to_bool, identity, default)


def mapping(key: str) -> Codec:
    return Codec(key, to_dict, identity, {})

"""Card objects (V1 flat, V2, V3) <-> Character columns, losslessly.

What a column holds is mapped; everything else (unknown keys, `extensions`, top-level keys
such as SillyTavern's V1 copies, coerced raw values) is kept in `Character.card_extras` and
written back on export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Field

from characters.cards import fields as f
from characters.cards.errors import CardError
from characters.cards.lorebooks import ParsedBook, build_book, parse_book
from characters.cards.samples import build_mes_example, parse_mes_example
from characters.models import Character

SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"
SPEC_V1 = "v1"
NATIVE = "native"
V1_KEYS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
V3_ONLY = {
    "nickname",
    "creator_notes_multilingual",
    "source",
    "group_only_greetings",
    "creation_date",
    "modification_date",
    "assets",
}
OUR_EXTENSION = "companion"
# Card key -> Character column.
COLUMNS = {
    "name": "name",
    "description": "description",
    "personality": "personality",
    "scenario": "scenario",
    "first_mes": "greeting",
    "creator_notes": "creator_notes",
    "system_prompt": "system_prompt",
    "post_history_instructions": "post_history_instructions",
    "alternate_greetings": "alternate_greetings",
    "tags": "tags",
    "creator": "creator",
    "character_version": "character_version",
    "nickname": "nickname",
    "group_only_greetings": "group_only_greetings",
}
_LISTS = {"alternate_greetings", "tags", "group_only_greetings"}
DATA_CODECS = tuple(f.text_list(k) if k in _LISTS else f.text(k) for k in COLUMNS)
REQUIRED_V2 = {*V1_KEYS, *COLUMNS, "extensions"} - {"nickname", "group_only_greetings"}
REQUIRED_V3 = REQUIRED_V2 | {"group_only_greetings"}
_SPECIAL = {"mes_example", "extensions", "character_book"}


@dataclass
class ParsedCard:
    spec: str
    fields: dict[str, Any]
    samples: list[tuple[str, str]]
    book: ParsedBook | None = None
    assets: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _newer(version: Any, current: float) -> bool:
    try:
        return float(version) > current
    except (TypeError, ValueError):
        return True


def _unwrap(payload: Any) -> tuple[str, dict[str, Any], dict[str, Any], list[str]]:
    """The spec, the `data` object, the other top-level keys and any warnings."""
    if not isinstance(payload, dict):
        raise CardError("The card is not a JSON object.")
    spec = payload.get("spec")
    if spec is None:
        if not any(key in payload for key in V1_KEYS):
            raise CardError("This file is not a character card (no name, no spec).")
        flat = {k: payload[k] for k in V1_KEYS if k in payload}
        return SPEC_V1, flat, {k: v for k, v in payload.items() if k not in V1_KEYS}, []
    if spec == "lorebook_v3":
        raise CardError("This is a lorebook, not a character card.")
    if spec not in (SPEC_V2, SPEC_V3):
        raise CardError(f"Unknown card spec {str(spec)[:40]!r}: expected V1, V2 or V3.")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise CardError("The card has no `data` object.")
    top = {k: v for k, v in payload.items() if k not in ("spec", "spec_version", "data")}
    warnings = []
    if _newer(payload.get("spec_version"), 3.0 if spec == SPEC_V3 else 2.0):
        warnings.append(
            f"The card says spec version {str(payload.get('spec_version'))[:20]}, newer than "
            "this app knows; known fields were imported and the rest kept as is."
        )
    return spec, data, top, warnings


# Our own extension's keys and the Character column each one sets.
OUR_SETTINGS = ("tagline", "default_temperature", "default_top_p", "default_max_tokens")
_OUR_TYPES: dict[str, tuple[type, ...]] = {
    "tagline": (str,),
    "default_temperature": (int, float),
    "default_top_p": (int, float),
    "default_max_tokens": (int, float),
}


def _our_value(key: str, value: Any) -> Any:
    """The column value for one key of our extension; ValueError if the model would refuse it."""
    if isinstance(value, bool) or not isinstance(value, _OUR_TYPES[key]):
        raise ValueError(key)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(key)
    if key == "default_max_tokens":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(key)
        value = int(value)
    elif key != "tagline":
        try:
            value = float(value)
        except OverflowError:  # a JSON integer of hundreds of digits
            raise ValueError(key) from None
    # The model's own validators are the bounds: a value the card check let through but the
    # model refused would refuse the whole card over a setting of ours.
    field = Character._meta.get_field(key)
    if not isinstance(field, Field):
        raise ValueError(key)
    try:
        field.run_validators(value)
    except ValidationError:
        raise ValueError(key) from None
    return value


def _our_settings(extensions: Any) -> tuple[dict[str, Any], list[str]]:
    """Our extension's settings the model accepts, and a warning for each one it would not."""
    ours = extensions.get(OUR_EXTENSION) if isinstance(extensions, dict) else None
    if not isinstance(ours, dict):
        return {}, []
    settings: dict[str, Any] = {}
    warnings: list[str] = []
    for key in OUR_SETTINGS:
        if key not in ours:
            continue
        try:
            settings[key] = _our_value(key, ours[key])
        except ValueError:
            shown = repr(ours[key])
            shown = shown if len(shown) <= 40 else f"{shown[:39]}…"
            warnings.append(
                f"extensions.{OUR_EXTENSION}.{key} ({shown}) is not a value this app accepts; "
                "the default is used."
            )
    return settings, warnings


def parse_card(payload: Any) -> ParsedCard:
    """Map a decoded card to Character columns, samples and a lorebook, keeping the rest."""
    spec, data, top, warnings = _unwrap(payload)
    values, meta = f.split({k: v for k, v in data.items() if k not in _SPECIAL}, DATA_CODECS)
    extras: dict[str, Any] = {"source_spec": spec, "data": meta}
    extras["top"] = {k: v for k, v in top.items() if k not in V1_KEYS}
    extras["top_v1"] = [k for k in V1_KEYS if k in (data if spec == SPEC_V1 else top)]
    if "extensions" in data:
        extras["extensions"] = data["extensions"]
    names = (values["name"], values["nickname"])
    raw_examples = data.get("mes_example", "")
    samples = parse_mes_example(f.to_text(raw_examples), names=names)
    extras["mes_example"] = {"raw": raw_examples, "pairs": samples}
    book = None
    raw_book = data.get("character_book")
    if isinstance(raw_book, dict | list):
        book = parse_book(raw_book)
    elif "character_book" in data:
        extras["character_book"] = raw_book
        if raw_book is not None:
            warnings.append("The card's lorebook was not an object; it was kept but not used.")
    columns = {COLUMNS[key]: value for key, value in values.items()}
    settings, setting_warnings = _our_settings(data.get("extensions"))
    columns.update(settings, card_extras=extras)
    warnings.extend(setting_warnings)
    assets = data["assets"] if isinstance(data.get("assets"), list) else []
    return ParsedCard(spec, columns, samples, book, assets, warnings)


def _extensions(character: dict[str, Any], extras: dict[str, Any]) -> Any:
    stored = extras.get("extensions", {})
    ours = {
        "tagline": character["tagline"],
        "default_temperature": character["default_temperature"],
        "default_top_p": character["default_top_p"],
        "default_max_tokens": character["default_max_tokens"],
    }
    defaults = {"tagline": "", "default_temperature": 1.0, "default_top_p": 0.95}
    defaults["default_max_tokens"] = 400
    has_ours = isinstance(stored, dict) and OUR_EXTENSION in stored
    if not has_ours and ours == defaults:
        return stored
    out = dict(stored) if isinstance(stored, dict) else {}
    previous = out.get(OUR_EXTENSION)
    out[OUR_EXTENSION] = {**(previous if isinstance(previous, dict) else {}), **ours}
    return out


def build_card(
    character: dict[str, Any],
    samples: list[tuple[str, str]],
    book: tuple[dict[str, Any], list[dict[str, Any]]] | None,
    *,
    version: int,
    now: int,
    created: int,
) -> dict[str, Any]:
    """The card object (V3, or the V2 backfill) from a character's column values."""
    extras: dict[str, Any] = character.get("card_extras") or {}
    source = extras.get("source_spec", NATIVE)
    values = {key: character[column] for key, column in COLUMNS.items()}
    required = REQUIRED_V3 if version >= 3 else REQUIRED_V2
    data = f.join(values, extras.get("data") or {}, DATA_CODECS, required)
    stored_examples = extras.get("mes_example") or {}
    if f.same([list(p) for p in samples], stored_examples.get("pairs", [])):
        data["mes_example"] = stored_examples.get("raw", "")
    else:
        data["mes_example"] = build_mes_example(samples)
    data["extensions"] = _extensions(character, extras)
    if book is not None:
        data["character_book"] = build_book(book[0], book[1], version=version)
    elif "character_book" in extras:
        data["character_book"] = extras["character_book"]
    if version >= 3:
        data["modification_date"] = now
        if source == NATIVE:
            data.setdefault("creation_date", created)
    elif source in (SPEC_V3, NATIVE):
        data = {k: v for k, v in data.items() if k not in V3_ONLY}
    spec = (SPEC_V3, "3.0") if version >= 3 else (SPEC_V2, "2.0")
    card: dict[str, Any] = {"spec": spec[0], "spec_version": spec[1], "data": data}
    card.update({k: data[k] for k in extras.get("top_v1", ())})
    for key, value in (extras.get("top") or {}).items():
        card.setdefault(key, value)
    return card

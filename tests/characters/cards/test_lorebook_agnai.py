"""agnai memory books: the entry settings the contract keeps but does not apply."""

from __future__ import annotations

import json

import pytest
from django.http import Http404

from characters.cards.exporting import card_export
from characters.cards.services import character_import_card
from characters.models import Character
from characters.selectors import character_get_visible
from conversations.prompt_inputs import prompt_preview_for_new_conversation
from tests.characters.cards import corpus

LAKE = {
    "name": "Lake",
    "entry": "The lake is warm in winter.",
    "keywords": ["lake"],
    "priority": 4,
    "weight": 12,
    "enabled": True,
    # Each of these would change what fires or where, were it applied.
    "constant": True,
    "position": "before_char",
    "selective": True,
    "secondaryKeys": ["ice"],
    "probability": 50,
}
KEPT = ("constant", "position", "selective", "secondaryKeys", "probability")


def _import(owner, *, greeting: str) -> Character:
    card = corpus.v2_card(st_top_level=False)
    card["data"]["first_mes"] = greeting
    card["data"]["character_book"] = {"kind": "memory", "name": "Agnai", "entries": [dict(LAKE)]}
    data = json.dumps(card).encode()
    return character_import_card(owner=owner, data=data, filename="a.json").character


def test_agnai_entry_settings_are_kept_in_the_extras_not_the_live_columns(alice):
    character = _import(alice, greeting="Hello.")

    lake = character.lorebook.entries.get()
    assert (lake.constant, lake.position, lake.selective) == (False, "", False)
    assert lake.secondary_keys == []
    assert {key: lake.card_extras["unknown"][key] for key in KEPT} == {
        key: LAKE[key] for key in KEPT
    }


def test_agnai_constant_position_and_selective_do_not_change_what_fires(alice):
    unmentioned = _import(alice, greeting="Hello.")
    mentioned = _import(alice, greeting="Down by the lake.")

    quiet, _ = prompt_preview_for_new_conversation(character=unmentioned)
    spec, lore = prompt_preview_for_new_conversation(character=mentioned)

    assert (quiet.lore_before, quiet.lore) == ((), ())  # not constant
    # Fires without its secondary key "ice" (not selective), after the card (no position).
    assert (spec.lore_before, spec.lore) == ((), ("The lake is warm in winter.",))
    assert [f.reason for f in lore.fired] == ["key “lake”"]


def test_agnai_kept_settings_export_unchanged(alice):
    character = _import(alice, greeting="Hello.")

    exported = json.loads(card_export(character=character, fmt="json").content)

    entry = exported["data"]["character_book"]["entries"][0]
    assert {key: entry[key] for key in KEPT} == {key: LAKE[key] for key in KEPT}
    assert (entry["content"], entry["keys"]) == (LAKE["entry"], LAKE["keywords"])
    assert (entry["priority"], entry["insertion_order"]) == (4, 12)


def test_an_edited_agnai_entry_exports_its_edited_value(alice):
    character = _import(alice, greeting="Hello.")
    lake = character.lorebook.entries.get()
    lake.position = "after_char"
    lake.save()

    exported = json.loads(card_export(character=character, fmt="json").content)

    entry = exported["data"]["character_book"]["entries"][0]
    assert entry["position"] == "after_char"
    assert entry["constant"] is True


def test_an_imported_agnai_book_stays_with_its_importer(alice, bob):
    character = _import(alice, greeting="Down by the lake.")

    assert character_get_visible(slug=character.slug, user=alice) == character
    with pytest.raises(Http404):
        character_get_visible(slug=character.slug, user=bob)

"""The round-trip corpus: V1, V2, V3 in every container, exported back unchanged."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from characters.cards.exporting import card_export
from characters.cards.services import character_import_card
from characters.models import Character, Visibility
from tests.characters.cards import corpus


def _import(owner, data: bytes, filename: str) -> Character:
    return character_import_card(owner=owner, data=data, filename=filename).character


def _export_json(character: Character) -> dict[str, Any]:
    exported: dict[str, Any] = json.loads(card_export(character=character, fmt="json").content)
    return exported


def _export_png(character: Character) -> tuple[dict[str, Any], dict[str, Any]]:
    chunks = corpus.png_text_chunks(card_export(character=character, fmt="png").content)
    return corpus.decode_chunk(chunks["ccv3"]), corpus.decode_chunk(chunks["chara"])


def test_v3_png_card_exports_the_same_card_in_every_format(alice):
    original = corpus.v3_card()
    data = corpus.png_card({"chara": corpus.b64(corpus.v2_card()), "ccv3": corpus.b64(original)})
    character = _import(alice, data, "elodie.png")

    expected = corpus.without_modification_date(original)
    ccv3, chara = _export_png(character)
    assert corpus.without_modification_date(ccv3) == expected
    assert corpus.without_modification_date(_export_json(character)) == expected
    card, _ = corpus.charx_contents(card_export(character=character, fmt="charx").content)
    card["data"]["assets"] = original["data"]["assets"]  # CHARX points the icon at its file
    assert corpus.without_modification_date(card) == expected
    assert chara["spec"] == "chara_card_v2"
    assert chara["data"]["name"] == original["data"]["name"]
    assert "group_only_greetings" not in chara["data"]


def test_v3_export_sets_modification_date_to_now(alice):
    character = _import(alice, json.dumps(corpus.v3_card()).encode(), "elodie.json")

    exported = _export_json(character)

    assert exported["data"]["modification_date"] > 1714570000
    assert exported["data"]["creation_date"] == 1714560000


@pytest.mark.parametrize("st_top_level", [True, False])
def test_v2_png_card_comes_back_identical_in_the_chara_backfill(alice, st_top_level):
    original = corpus.v2_card(st_top_level=st_top_level)
    character = _import(alice, corpus.png_card({"chara": corpus.b64(original)}), "e.png")

    ccv3, chara = _export_png(character)

    assert chara == original
    assert ccv3["spec"] == "chara_card_v3"
    assert ccv3["spec_version"] == "3.0"
    # V3 requires `use_regex` on entries: V2 books get SillyTavern's value, true.
    expected = copy.deepcopy(original["data"])
    for entry in expected["character_book"]["entries"]:
        entry.setdefault("use_regex", True)
    assert {k: ccv3["data"][k] for k in original["data"]} == expected
    assert ccv3["data"]["group_only_greetings"] == []


def test_v1_json_card_keeps_its_top_level_fields(alice):
    original = copy.deepcopy(corpus.V1)
    character = _import(alice, json.dumps(original, ensure_ascii=False).encode(), "e.json")

    exported = _export_json(character)

    top = {k: v for k, v in exported.items() if k not in ("spec", "spec_version", "data")}
    assert top == original
    for key in ("name", "description", "personality", "scenario", "first_mes", "mes_example"):
        assert exported["data"][key] == original[key]
    assert exported["data"]["extensions"] == {}


def test_v3_charx_keeps_every_file_and_takes_the_avatar_from_the_main_icon(alice):
    original = corpus.v3_charx_card()
    icon = corpus.image_bytes((10, 200, 30))
    files = {
        "assets/icon/images/main.png": icon,
        "assets/emotion/images/happy.png": corpus.image_bytes((250, 250, 0)),
        "module.risum": b"\x00\x01risu module bytes",
    }
    character = _import(alice, corpus.charx(original, files), "elodie.charx")

    with character.avatar.open("rb") as avatar:
        assert avatar.read() == icon
    card, exported_files = corpus.charx_contents(
        card_export(character=character, fmt="charx").content
    )
    assert corpus.without_modification_date(card) == corpus.without_modification_date(original)
    assert exported_files == files


@pytest.mark.parametrize("compressed", ["chara", "i:chara"])
def test_compressed_and_international_text_chunks_are_read(alice, compressed):
    original = corpus.v2_card()
    data = corpus.png_card({"chara": corpus.b64(original)}, compressed=compressed)

    character = _import(alice, data, "e.png")

    assert _export_png(character)[1] == original


def test_a_bare_json_chunk_without_base64_is_accepted(alice):
    data = corpus.png_card({"chara": json.dumps(corpus.v2_card(), ensure_ascii=True)})

    assert _import(alice, data, "e.png").name == corpus.V1["name"]


def test_import_maps_every_field_the_app_uses(alice):
    character = _import(alice, json.dumps(corpus.v3_card()).encode(), "e.json")

    assert character.owner == alice
    assert character.visibility == Visibility.PRIVATE
    assert character.name == "Élodie 🌙"
    assert character.nickname == "Elle"
    assert character.greeting == corpus.V1["first_mes"]
    assert character.alternate_greetings == ["*looks up* Oh. It's you.", "Lost again, {{user}}?"]
    assert character.group_only_greetings == ["*nods to everyone*"]
    assert character.system_prompt == "{{original}}\nWrite in present tense."
    assert character.post_history_instructions == "Stay in character."
    assert character.creator_notes == "Best with a slow pace."
    assert character.tags == ["fantasy", "日本"]
    assert (character.creator, character.character_version) == ("tester", "1.2")
    samples = list(character.sample_dialogues.values_list("user_line", "character_line"))
    assert samples == [
        ("What are you drawing?", "*taps the paper* You.\nIt's not finished."),
        ("…", "Hold still."),
    ]
    book = character.lorebook
    assert (book.name, book.scan_depth, book.token_budget) == ("Neon atlas", 3, 500)
    assert book.recursive_scanning is True
    entries = list(book.entries.order_by("pk"))
    assert entries[0].keys == ["market", "Night Market"]
    assert (entries[0].priority, entries[0].position) == (5, "before_char")
    assert entries[1].use_regex
    assert entries[1].case_sensitive
    assert entries[2].secondary_keys == ["ink", "paper"]
    assert entries[2].selective
    assert entries[2].insertion_order == 30
    assert entries[3].constant
    assert not entries[4].enabled
    assert entries[4].card_extras["unknown"] == {"a_future_field": {"nested": ["kept"]}}


def test_slugs_are_unique_and_never_reserved(alice, bob):
    card = json.dumps({"name": "Import"}).encode()

    first = _import(alice, card, "a.json")
    second = _import(bob, card, "b.json")

    assert first.slug != "import"
    assert first.slug != second.slug


def test_edited_fields_are_exported_and_unedited_unknowns_stay(alice):
    character = _import(alice, json.dumps(corpus.v2_card()).encode(), "e.json")
    character.description = "Rewritten."
    character.save()
    character.sample_dialogues.all().delete()
    character.sample_dialogues.create(position=0, user_line="Hi", character_line="Hello")

    exported = _export_json(character)

    assert exported["data"]["description"] == "Rewritten."
    assert exported["description"] == "Rewritten."  # SillyTavern's V1 copy follows the edit
    assert exported["data"]["mes_example"] == "<START>\n{{user}}: Hi\n{{char}}: Hello"
    assert exported["data"]["a_writer_specific_field"] == {"x": 1}
    assert exported["data"]["extensions"]["chub"] == {"id": 123, "full_path": "tester/elodie"}


def test_our_own_settings_travel_under_a_namespaced_extension(alice):
    character = _import(alice, json.dumps(corpus.v2_card()).encode(), "e.json")
    character.tagline = "Maps of dreams"
    character.default_temperature = 0.7
    character.save()

    exported = card_export(character=character, fmt="json").content
    again = _import(alice, exported, "again.json")

    assert json.loads(exported)["data"]["extensions"]["companion"]["tagline"] == "Maps of dreams"
    assert (again.tagline, again.default_temperature) == ("Maps of dreams", 0.7)
    assert (
        json.loads(card_export(character=again, fmt="json").content)["data"]["extensions"]
        == (json.loads(exported)["data"]["extensions"])
    )


def test_a_character_made_in_the_app_exports_a_valid_v3_card(alice):
    from tests.factories import make_character

    character = make_character(alice, name="Aria", samples=2)

    ccv3, chara = _export_png(character)

    assert ccv3["spec"] == "chara_card_v3"
    assert ccv3["data"]["name"] == "Aria"
    assert ccv3["data"]["mes_example"].count("<START>") == 2
    assert ccv3["data"]["extensions"]["companion"]["tagline"] == "Aria the test character"
    assert "creation_date" in ccv3["data"]
    assert chara["spec"] == "chara_card_v2"
    assert "nickname" not in chara["data"]
    again = _import(alice, card_export(character=character, fmt="png").content, "a.png")
    assert list(again.sample_dialogues.values_list("user_line", flat=True)) == list(
        character.sample_dialogues.values_list("user_line", flat=True)
    )

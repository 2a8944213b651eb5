"""Other writers' lorebook shapes, and the avatar a card brings (or lacks)."""

from __future__ import annotations

import base64
import io
import json

import pytest
from django.http import Http404
from PIL import Image, PngImagePlugin

from characters.cards.exporting import card_export
from characters.cards.services import character_import_card
from characters.models import Visibility
from characters.selectors import character_get_visible, character_list_visible_to
from tests.characters.cards import corpus


def _v2_with_book(book) -> bytes:
    card = corpus.v2_card(st_top_level=False)
    card["data"]["character_book"] = book
    return json.dumps(card).encode()


def test_risu_lorebook_entries_are_accepted(alice):
    book = {
        "scanDepth": 5,
        "tokenBudget": 300,
        "recursiveScanning": True,
        "entries": [
            {
                "key": "castle, tower",
                "secondkey": "night",
                "insertorder": 7,
                "comment": "Castle",
                "content": "The castle has no doors.",
                "mode": "normal",
                "alwaysActive": False,
                "selective": True,
                "useRegex": False,
                "activationPercent": 50,
                "folder": "places",
            },
            {"key": "", "content": "Always.", "mode": "constant", "insertorder": 1},
        ],
    }

    character = character_import_card(
        owner=alice, data=_v2_with_book(book), filename="r.json"
    ).character

    lorebook = character.lorebook
    assert (lorebook.scan_depth, lorebook.token_budget, lorebook.recursive_scanning) == (
        5,
        300,
        True,
    )
    castle, always = lorebook.entries.order_by("pk")
    assert castle.keys == ["castle", "tower"]
    assert castle.secondary_keys == ["night"]
    assert (castle.insertion_order, castle.selective, castle.comment) == (7, True, "Castle")
    assert castle.card_extras["unknown"]["folder"] == "places"
    assert always.constant


def test_risu_lorebook_as_a_bare_list_is_accepted(alice):
    book = [{"key": "moon", "content": "The moon is a door.", "insertorder": 3}]

    character = character_import_card(
        owner=alice, data=_v2_with_book(book), filename="r.json"
    ).character

    assert character.lorebook.entries.get().keys == ["moon"]


def test_agnai_memory_book_is_accepted_and_its_settings_kept(alice):
    book = {
        "kind": "memory",
        "name": "Agnai book",
        "description": "",
        "scanDepth": 9,
        "entries": [
            {
                "name": "Lake",
                "entry": "The lake is warm in winter.",
                "keywords": ["lake"],
                "priority": 4,
                "weight": 12,
                "enabled": True,
                "secondaryKeys": ["ice"],
            }
        ],
    }

    character = character_import_card(
        owner=alice, data=_v2_with_book(book), filename="a.json"
    ).character

    lorebook = character.lorebook
    assert lorebook.name == "Agnai book"
    assert lorebook.scan_depth is None  # agnai's settings are kept, not applied
    assert lorebook.card_extras["unknown"]["scanDepth"] == 9
    lake = lorebook.entries.get()
    assert (lake.name, lake.content, lake.keys) == ("Lake", "The lake is warm in winter.", ["lake"])
    assert (lake.priority, lake.insertion_order) == (4, 12)
    assert lake.card_extras["unknown"]["secondaryKeys"] == ["ice"]
    exported = json.loads(card_export(character=character, fmt="json").content)
    assert exported["data"]["character_book"]["scanDepth"] == 9


def test_a_json_card_takes_its_avatar_from_a_data_uri_icon(alice):
    card = corpus.v3_card()
    icon = corpus.image_bytes((1, 2, 3))
    uri = "data:image/png;base64," + base64.b64encode(icon).decode()
    card["data"]["assets"] = [{"type": "icon", "uri": uri, "name": "main", "ext": "png"}]

    character = character_import_card(
        owner=alice, data=json.dumps(card).encode(), filename="c.json"
    ).character

    with character.avatar.open("rb") as avatar:
        assert avatar.read() == icon


def test_a_charx_without_its_icon_file_imports_with_a_warning(alice):
    result = character_import_card(
        owner=alice, data=corpus.charx(corpus.v3_charx_card(), {}), filename="c.charx"
    )

    assert not result.character.avatar
    assert any("missing from the archive" in warning for warning in result.warnings)


def test_an_avatar_over_the_size_limit_is_shrunk(alice, settings):
    settings.AVATAR_MAX_BYTES = 150_000
    info = PngImagePlugin.PngInfo()
    info.add_text("chara", corpus.b64(corpus.v2_card()))
    card = io.BytesIO()
    Image.effect_noise((900, 900), 100).convert("RGB").save(card, format="PNG", pnginfo=info)
    assert len(card.getvalue()) > 150_000

    result = character_import_card(owner=alice, data=card.getvalue(), filename="big.png")

    assert result.character.avatar.size <= 150_000
    assert result.character.avatar.name.endswith(".webp")
    assert any("smaller copy" in warning for warning in result.warnings)


def _json_card_with_icon(image: bytes, mime: str) -> bytes:
    card = corpus.v3_card()
    uri = f"data:{mime};base64," + base64.b64encode(image).decode()
    card["data"]["assets"] = [{"type": "icon", "uri": uri, "name": "main", "ext": "png"}]
    return json.dumps(card).encode()


def test_an_icon_the_card_writer_cannot_read_is_kept_as_a_re_encoded_copy(alice):
    data = _json_card_with_icon(corpus.png_with_odd_chunk(), "image/png")

    result = character_import_card(owner=alice, data=data, filename="c.json")

    assert result.character.avatar.name.endswith(".webp")
    assert any("re-encoded copy" in warning for warning in result.warnings)
    assert not any("too large" in warning for warning in result.warnings)
    exported = card_export(character=result.character, fmt="png")
    assert exported.warnings == ()
    with Image.open(io.BytesIO(exported.content)) as image:
        assert image.size == (32, 48)


def test_an_icon_that_does_not_decode_is_left_out(alice):
    data = _json_card_with_icon(corpus.truncated_jpeg(), "image/jpeg")

    result = character_import_card(owner=alice, data=data, filename="c.json")

    assert not result.character.avatar
    assert any("it was left out" in warning for warning in result.warnings)


def test_an_imported_character_and_its_avatar_stay_with_the_importer(alice, bob):
    data = _json_card_with_icon(corpus.image_bytes(), "image/png")

    character = character_import_card(owner=alice, data=data, filename="c.json").character

    assert (character.owner, character.visibility) == (alice, Visibility.PRIVATE)
    assert character_get_visible(slug=character.slug, user=alice) == character
    with pytest.raises(Http404):
        character_get_visible(slug=character.slug, user=bob)
    assert character not in character_list_visible_to(user=bob)


def test_a_jpeg_avatar_is_exported_inside_a_png_card(alice):
    card = corpus.v3_card()
    jpeg = corpus.image_bytes(fmt="JPEG")
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    card["data"]["assets"] = [{"type": "icon", "uri": uri, "name": "main", "ext": "jpeg"}]
    character = character_import_card(
        owner=alice, data=json.dumps(card).encode(), filename="c.json"
    ).character

    exported = card_export(character=character, fmt="png").content

    with Image.open(io.BytesIO(exported)) as image:
        assert image.format == "PNG"
        assert image.size == (32, 48)
    assert "ccv3" in corpus.png_text_chunks(exported)


def test_a_character_without_avatar_gets_a_placeholder_image(alice):
    character = character_import_card(
        owner=alice, data=json.dumps(corpus.V1).encode(), filename="c.json"
    ).character

    exported = card_export(character=character, fmt="png").content

    with Image.open(io.BytesIO(exported)) as image:
        assert image.size == (400, 600)

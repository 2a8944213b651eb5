"""Valid cards are not refused over the app's own limits or its own extension's values."""

from __future__ import annotations

import pytest

from characters.cards.errors import CardError
from characters.cards.exporting import card_object
from characters.cards.services import character_import_card
from characters.models import LONG_TEXT, Character
from tests.characters.adminpost import card_json
from tests.factories import make_user


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _import(owner, **data):
    return character_import_card(owner=owner, data=card_json(data), filename="c.json")


@pytest.mark.parametrize("key", ["creator_notes", "post_history_instructions", "system_prompt"])
def test_long_card_texts_import_and_export_unchanged(db, key):
    text = "Long notes. " * 1_000  # 12,000 characters

    character = _import(make_user(), **{key: text}).character

    assert card_object(character)["data"][key] == text


def test_a_long_reply_in_the_example_dialogue_imports(db):
    reply = ("*She paces the room, thinking.* " * 140).strip()  # over 4,000 characters
    examples = "<START>\n{{user}}: Tell me about the war.\n{{char}}: " + reply

    character = _import(make_user(), mes_example=examples).character

    sample = character.sample_dialogues.get()
    assert sample.character_line == reply
    assert card_object(character)["data"]["mes_example"] == examples


def test_long_lorebook_notes_import(db):
    book = {
        "description": "d" * 5_000,
        "entries": [{"keys": ["war"], "content": "c", "comment": "n" * 5_000}],
    }

    character = _import(make_user(), character_book=book).character

    assert len(character.lorebook.description) == 5_000
    assert len(character.lorebook.entries.get().comment) == 5_000


@pytest.mark.parametrize("key", ["creator_notes", "post_history_instructions"])
def test_card_texts_keep_a_limit(db, key):
    with pytest.raises(CardError, match=f"{key}: Ensure this value has at most {LONG_TEXT}"):
        _import(make_user(), **{key: "x" * (LONG_TEXT + 1)})
    assert not Character.objects.exists()


@pytest.mark.parametrize(
    ("settings_", "kept"),
    [
        ({"default_temperature": 1e-320}, {}),
        ({"default_temperature": 0.005, "default_top_p": 0.5}, {"default_top_p": 0.5}),
        ({"default_max_tokens": 4096, "tagline": "Hi"}, {"tagline": "Hi"}),
        ({"default_max_tokens": 2048.0}, {"default_max_tokens": 2048}),
        ({"tagline": "t" * 201, "default_top_p": True}, {}),
        ({"default_top_p": 10**400, "default_max_tokens": 1.5}, {}),
        ({"default_top_p": "0.5", "default_temperature": 0.7}, {"default_temperature": 0.7}),
    ],
)
def test_a_bad_value_of_our_extension_is_dropped_with_a_warning(db, settings_, kept):
    extensions = {"companion": settings_, "other_app": {"kept": True}}

    result = _import(make_user(), extensions=extensions)

    character = result.character
    defaults = {"tagline": "", "default_temperature": 1.0, "default_top_p": 0.95}
    defaults["default_max_tokens"] = 400
    for column, default in defaults.items():
        assert getattr(character, column) == kept.get(column, default)
    dropped = set(settings_) - set(kept)
    for key in dropped:
        assert any(f"extensions.companion.{key}" in warning for warning in result.warnings)
    assert len(result.warnings) == len(dropped)
    assert card_object(character)["data"]["extensions"]["other_app"] == {"kept": True}

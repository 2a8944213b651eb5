"""The character admin saves an imported card's lists and text exactly as they came in.

Pages are posted back the way a browser does (every textarea line break as CRLF).
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from characters.admin import GreetingListField, TagListField
from characters.cards.exporting import card_object
from characters.models import Character
from tests.characters.adminpost import browser_post_data, change_url, creator_client, import_card

SCENE_BREAK_GREETING = '*The tavern is loud.*\n\n---\n\nShe turns to you. "Well?"'
# A greeting holding a line that is already the escaped form of a scene break.
ESCAPED_LOOKING_GREETING = "First part\n\\---\nsecond part"
PADDED_GREETING = "  *waves from the door*\n"
CARD = {
    "description": "  She keeps the lighthouse.\n\n",
    "personality": "\tQuiet.  ",
    "creator_notes": "Notes with a trailing line break\n",
    "alternate_greetings": [
        "Hello there",
        SCENE_BREAK_GREETING,
        ESCAPED_LOOKING_GREETING,
        PADDED_GREETING,
    ],
    "tags": ["Sci-fi, Space opera", "Female", "C:\\path", "全角，逗号"],
    "mes_example": "<START>\n{{user}}: Hi\n{{char}}: Hello.",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _save(client, character, **changes):
    url = change_url(character)
    data = browser_post_data(client.get(url))
    data.update(changes)
    return client.post(url, data)


def test_saving_an_imported_character_changes_only_the_edited_field(alice):
    client = creator_client(alice)
    character = import_card(alice, CARD)
    before = card_object(character)["data"]

    response = _save(client, character, description="  She keeps the light.\r\n")

    assert response.status_code == 302, response.context["adminform"].form.errors
    character.refresh_from_db()
    after = card_object(character)["data"]
    assert after["tags"] == CARD["tags"]
    assert after["alternate_greetings"] == CARD["alternate_greetings"]
    assert after["personality"] == "\tQuiet.  "
    assert after["creator_notes"] == "Notes with a trailing line break\n"
    # The edited text is kept as typed (not stripped), with the browser's CRLF undone.
    assert after["description"] == "  She keeps the light.\n"
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= {"description", "modification_date"}


def test_editing_the_lists_keeps_items_holding_separators_whole(alice):
    client = creator_client(alice)
    character = import_card(alice, CARD)
    page = browser_post_data(client.get(change_url(character)))

    response = _save(
        client,
        character,
        tags=page["tags"] + ", Cozy",
        alternate_greetings=page["alternate_greetings"] + "\r\n---\r\nA new one.",
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    character.refresh_from_db()
    assert character.tags == [*CARD["tags"], "Cozy"]
    # Untouched greetings keep their exact text, edge whitespace included.
    assert character.alternate_greetings == [*CARD["alternate_greetings"], "A new one."]


def test_new_lists_are_split_on_the_documented_separators(alice):
    client = creator_client(alice)
    character = import_card(alice, {})

    response = _save(
        client,
        character,
        tags="space, calm，quiet\r\nnoir, calm, a\\, b",
        alternate_greetings="  One.\r\n---\r\nTwo\r\n\\---\r\nstill two\r\n---\r\n\r\n",
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    character.refresh_from_db()
    assert character.tags == ["space", "calm", "quiet", "noir", "a, b"]
    assert character.alternate_greetings == ["One.", "Two\n---\nstill two"]


def test_a_card_past_the_old_admin_limits_saves_unchanged_and_edited(alice):
    client = creator_client(alice)
    tags = [f"tag{i}" for i in range(35)] + ["a label much longer than forty characters, really"]
    greetings = [f"Hello number {i}" for i in range(24)] + ["x" * 5_000]
    character = import_card(alice, {"tags": tags, "alternate_greetings": greetings})

    unchanged = _save(client, character, description="typo fixed")
    page = browser_post_data(client.get(change_url(character)))
    edited = _save(client, character, tags=page["tags"] + ", one more")

    assert unchanged.status_code == 302, unchanged.context["adminform"].form.errors
    assert edited.status_code == 302, edited.context["adminform"].form.errors
    character.refresh_from_db()
    assert character.tags == [*tags, "one more"]
    assert character.alternate_greetings == greetings


def test_the_admin_refuses_what_the_model_refuses_with_a_field_error(alice):
    client = creator_client(alice)
    character = import_card(alice, {"tags": ["kept"]})

    response = _save(client, character, tags=", ".join(f"t{i}" for i in range(101)))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["tags"] == ["At most 100 items."]
    character.refresh_from_db()
    assert character.tags == ["kept"]


def test_a_name_of_only_spaces_is_still_refused(alice):
    client = creator_client(alice)
    character = import_card(alice, {})

    response = _save(client, character, name="   ")

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["name"]


def test_another_creator_cannot_open_or_save_the_change_page(alice, bob):
    alice_client = creator_client(alice)
    bob_client = creator_client(bob)
    character = import_card(alice, CARD)
    data = browser_post_data(alice_client.get(change_url(character)))

    opened = bob_client.get(change_url(character))
    posted = bob_client.post(change_url(character), {**data, "tags": "stolen"})

    assert opened.status_code == 302  # Django's "doesn't exist" redirect
    assert posted.status_code == 302
    character.refresh_from_db()
    assert character.tags == CARD["tags"]
    assert Character.objects.filter(owner=bob).count() == 0


# The UTF-8 codec leaves out lone surrogates, which no posted form can carry.
_ITEM = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30).map(str.strip)


def _browser(text):
    return re.sub(r"\r\n?|\n", "\r\n", text)


def _lf(text):
    return re.sub(r"\r\n?", "\n", text).strip()


@settings(deadline=None, max_examples=200)
@given(st.lists(_ITEM.filter(bool), max_size=6))
def test_tags_shown_and_posted_back_by_a_browser_read_back_the_same(tags):
    field = TagListField()

    read_back = field.clean(_browser(field.prepare_value(tags)))

    assert read_back == list(dict.fromkeys(_lf(t) for t in tags if _lf(t)))


@settings(deadline=None, max_examples=200)
@given(st.lists(_ITEM.filter(bool), max_size=6))
def test_greetings_shown_and_posted_back_by_a_browser_read_back_the_same(greetings):
    field = GreetingListField()

    read_back = field.clean(_browser(field.prepare_value(greetings)))

    assert read_back == [_lf(g) for g in greetings if _lf(g)]


ROWS_CARD = {
    "mes_example": "<START>\n{{user}}: Hi\n{{char}}: *waves*\n\nHello there.",
    "character_book": {
        "entries": [
            {
                "keys": ["war"],
                "content": "Line one.\n\nLine two.\n",
                "comment": " note ",
                "extensions": {},
                "enabled": True,
                "insertion_order": 1,
                "use_regex": False,
            }
        ],
        "extensions": {},
    },
}


def test_unedited_rows_survive_a_save_of_the_character_and_of_its_lorebook(alice, bob):
    client = creator_client(alice)
    character = import_card(alice, ROWS_CARD)
    before = card_object(character)["data"]
    book_url = reverse("admin:characters_lorebook_change", args=[character.lorebook.pk])

    saved = client.post(change_url(character), browser_post_data(client.get(change_url(character))))
    book_saved = client.post(book_url, browser_post_data(client.get(book_url)))

    assert (saved.status_code, book_saved.status_code) == (302, 302)
    character.refresh_from_db()
    after = card_object(character)["data"]
    assert after["mes_example"] == before["mes_example"]
    entry = character.lorebook.entries.get()
    assert (entry.content, entry.comment) == ("Line one.\n\nLine two.\n", " note ")
    assert after["character_book"] == before["character_book"]
    assert creator_client(bob).get(book_url).status_code in (302, 403, 404)

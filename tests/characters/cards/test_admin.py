"""Card import, export actions and lorebooks in the admin, scoped to the creator's own."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from characters.cards import lorebooks
from characters.models import Character, Lorebook, LorebookEntry, Visibility
from tests.characters.cards import corpus
from tests.factories import make_character, make_user

IMPORT_URL = "/admin/characters/character/import-card/"
CHANGELIST_URL = "/admin/characters/character/"


def _creator(username: str):
    user = make_user(username, is_staff=True)
    models = ("character", "sampledialogue", "scene", "lorebook", "lorebookentry")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="characters", content_type__model__in=models
        )
    )
    return user


@pytest.fixture
def creator_alice(db):
    return _creator("alice")


@pytest.fixture
def creator_bob(db):
    return _creator("bob")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_admin_import_url_is_wired():
    assert reverse("admin:characters_character_import_card") == IMPORT_URL


def test_changelist_offers_the_import_page(creator_alice):
    response = _client(creator_alice).get(CHANGELIST_URL)

    assert response.status_code == 200
    assert IMPORT_URL in response.content.decode()


def test_creator_imports_a_card_in_the_admin(creator_alice):
    card = corpus.png_card({"ccv3": corpus.b64(corpus.v3_card())})

    response = _client(creator_alice).post(IMPORT_URL, {"file": _upload("elodie.png", card)})

    character = Character.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:characters_character_change", args=[character.pk])
    assert (character.owner, character.visibility) == (creator_alice, Visibility.PRIVATE)
    assert character.lorebook.entries.count() == 5


def test_admin_import_of_a_bad_file_explains_and_writes_nothing(creator_alice):
    response = _client(creator_alice).post(IMPORT_URL, {"file": _upload("c.json", b"{bad")})

    assert response.status_code == 400
    assert "not valid JSON" in response.content.decode()
    assert Character.objects.count() == 0


def test_non_staff_users_cannot_reach_the_admin_import(alice_client):
    response = alice_client.get(IMPORT_URL)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _run_action(client: Client, action: str, characters: list[Character]):
    return client.post(
        CHANGELIST_URL, {"action": action, "_selected_action": [c.pk for c in characters]}
    )


def test_export_action_downloads_one_png_card(creator_alice):
    character = make_character(creator_alice, name="Aria")

    response = _run_action(_client(creator_alice), "export_cards_png", [character])

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    chunks = corpus.png_text_chunks(response.content)
    assert corpus.decode_chunk(chunks["ccv3"])["data"]["name"] == "Aria"


def test_export_action_zips_several_cards(creator_alice):
    characters = [make_character(creator_alice, name=n) for n in ("Aria", "Bram")]

    response = _run_action(_client(creator_alice), "export_cards_json", characters)

    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert sorted(names) == sorted(f"{c.slug}.json" for c in characters)


def test_export_action_uses_the_placeholder_for_an_unreadable_avatar_and_says_so(creator_alice):
    characters = [make_character(creator_alice, name=n) for n in ("Aria", "Bram")]
    characters[0].avatar.save("face.jpg", ContentFile(corpus.truncated_jpeg()))
    characters[1].avatar.save("face.png", ContentFile(corpus.image_bytes()))
    client = _client(creator_alice)

    one = _run_action(client, "export_cards_png", characters[:1])
    both = _run_action(client, "export_cards_png", characters)

    assert one.status_code == 200
    assert one["Content-Type"] == "image/png"
    assert (
        corpus.decode_chunk(corpus.png_text_chunks(one.content)["ccv3"])["data"]["name"] == "Aria"
    )
    cards = zipfile.ZipFile(io.BytesIO(both.content))
    assert sorted(cards.namelist()) == sorted(f"{c.slug}.png" for c in characters)
    shown = client.get(CHANGELIST_URL).content.decode()
    assert shown.count("The avatar of Aria could not be read") == 2
    assert "The avatar of Bram" not in shown


def test_export_action_never_exports_another_creators_character(creator_alice, creator_bob):
    private = make_character(creator_alice, visibility=Visibility.PRIVATE)

    response = _run_action(_client(creator_bob), "export_cards_png", [private])

    assert response.status_code == 302  # nothing selected that bob may see
    assert response.get("Content-Type", "").startswith("text/html")


def _book_for(owner) -> Lorebook:
    character = make_character(owner, visibility=Visibility.PRIVATE)
    book = Lorebook.objects.create(character=character, name="Atlas")
    LorebookEntry.objects.create(lorebook=book, keys=["market"], content="Open at night.")
    return book


def test_creator_edits_lorebook_entries_inline(creator_alice):
    book = _book_for(creator_alice)
    entry = book.entries.get()
    url = reverse("admin:characters_lorebook_change", args=[book.pk])
    client = _client(creator_alice)
    page = client.get(url)
    assert page.status_code == 200
    data = {
        "character": book.character_id,
        "name": "Atlas",
        "description": "",
        "scan_depth": "4",
        "token_budget": "",
        "recursive_scanning": "on",
        "entries-TOTAL_FORMS": "1",
        "entries-INITIAL_FORMS": "1",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        "entries-0-id": entry.pk,
        "entries-0-lorebook": book.pk,
        "entries-0-name": "Market",
        "entries-0-keys": "market\n/night ?market/i",
        "entries-0-secondary_keys": "",
        "entries-0-content": "Opens when the last train leaves.",
        "entries-0-enabled": "on",
        "entries-0-use_regex": "on",
        "entries-0-insertion_order": "10",
        "entries-0-priority": "3",
        "entries-0-position": "before_char",
        "entries-0-comment": "",
    }

    response = client.post(url, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    entry.refresh_from_db()
    assert entry.keys == ["market", "/night ?market/i"]
    assert (entry.priority, entry.position, entry.use_regex) == (3, "before_char", True)
    book.refresh_from_db()
    assert (book.scan_depth, book.recursive_scanning) == (4, True)


def test_a_lorebook_cannot_be_given_more_keys_than_a_card_may_carry(creator_alice):
    book = _book_for(creator_alice)
    entry = book.entries.get()
    url = reverse("admin:characters_lorebook_change", args=[book.pk])
    keys_each = 100
    added = lorebooks.MAX_KEYS // keys_each
    data = {
        "character": book.character_id,
        "name": "Atlas",
        "description": "",
        "scan_depth": "",
        "token_budget": "",
        "entries-TOTAL_FORMS": str(added + 1),
        "entries-INITIAL_FORMS": "1",
        "entries-MIN_NUM_FORMS": "0",
        "entries-MAX_NUM_FORMS": "1000",
        "entries-0-id": entry.pk,
        "entries-0-lorebook": book.pk,
        "entries-0-keys": "market",
        "entries-0-content": "Open at night.",
        "entries-0-enabled": "on",
        "entries-0-insertion_order": "100",
        "entries-0-priority": "0",
    }
    for n in range(1, added + 1):
        keys = "\n".join(f"place {n}-{k}" for k in range(keys_each))
        data |= {
            f"entries-{n}-lorebook": book.pk,
            f"entries-{n}-keys": keys,
            f"entries-{n}-content": f"Place {n}.",
            f"entries-{n}-enabled": "on",
            f"entries-{n}-insertion_order": str(n),
            f"entries-{n}-priority": "0",
        }

    response = _client(creator_alice).post(url, data)

    assert response.status_code == 200
    total = added * keys_each + 1
    told = f"The lorebook has too many keys: {total:,} across its entries"
    assert told in response.content.decode()
    assert book.entries.count() == 1


def test_another_creator_cannot_see_or_change_a_lorebook(creator_alice, creator_bob):
    book = _book_for(creator_alice)
    client = _client(creator_bob)

    listing = client.get(reverse("admin:characters_lorebook_changelist"))
    change = client.get(reverse("admin:characters_lorebook_change", args=[book.pk]))

    assert "Atlas" not in listing.content.decode()
    assert change.status_code == 302  # the admin's "doesn't exist" redirect
    assert Lorebook.objects.get().name == "Atlas"


def test_lorebook_settings_show_on_the_character_page(creator_alice):
    book = _book_for(creator_alice)

    response = _client(creator_alice).get(
        reverse("admin:characters_character_change", args=[book.character_id])
    )

    assert response.status_code == 200
    assert 'name="lorebook-0-scan_depth"' in response.content.decode()


def test_exported_admin_json_imports_back_in_the_admin(creator_alice):
    character = make_character(creator_alice, name="Aria")
    exported = _run_action(_client(creator_alice), "export_cards_json", [character]).content

    _client(creator_alice).post(IMPORT_URL, {"file": _upload("aria.json", exported)})

    again = Character.objects.exclude(pk=character.pk).get()
    assert json.loads(exported)["data"]["name"] == again.name == "Aria"

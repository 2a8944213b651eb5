"""The user's import page and the card downloads, through real requests and uploads."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from characters.models import Character, Visibility
from tests.characters.cards import corpus
from tests.factories import make_character

IMPORT_URL = "/characters/import/"


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _export_url(character: Character, fmt: str) -> str:
    return reverse("cards:export", kwargs={"slug": character.slug, "fmt": fmt})


def test_import_page_is_at_characters_import():
    assert reverse("cards:import") == IMPORT_URL


def test_import_page_asks_anonymous_visitors_to_log_in(client):
    response = client.get(IMPORT_URL)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_import_page_shows_the_upload_form(alice_client):
    response = alice_client.get(IMPORT_URL)

    assert response.status_code == 200
    assert b'enctype="multipart/form-data"' in response.content


def test_uploading_a_png_card_creates_a_private_character_and_opens_it(alice_client, alice):
    card = corpus.png_card({"chara": corpus.b64(corpus.v2_card())})

    response = alice_client.post(IMPORT_URL, {"file": _upload("elodie.png", card)})

    character = Character.objects.get()
    assert response.status_code == 302
    assert response["Location"] == character.get_absolute_url()
    assert (character.owner, character.visibility) == (alice, Visibility.PRIVATE)
    assert re.fullmatch(r"avatars/\d{4}/\d{2}/[0-9a-f]{32}\.png", character.avatar.name)
    assert character.lorebook.entries.count() == 5


def test_a_bad_upload_shows_the_reason_and_creates_nothing(alice_client):
    response = alice_client.post(IMPORT_URL, {"file": _upload("card.png", b"not a png")})

    assert response.status_code == 400
    assert "The file is not a PNG image." in response.content.decode()
    assert Character.objects.count() == 0


def test_posting_without_a_file_asks_for_one(alice_client):
    response = alice_client.post(IMPORT_URL, {})

    assert response.status_code == 400
    assert "Choose a card file" in response.content.decode()


def test_an_upload_over_the_cap_is_refused_without_being_kept(alice_client):
    data = b'{"name": "x", "description": "' + b"a" * (10 * 1024 * 1024 + 10) + b'"}'

    response = alice_client.post(IMPORT_URL, {"file": _upload("big.json", data)})

    assert response.status_code == 400
    assert "too large" in response.content.decode()
    assert Character.objects.count() == 0


def test_import_checks_csrf(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    card = json.dumps(corpus.V1).encode()

    response = client.post(IMPORT_URL, {"file": _upload("c.json", card)})

    assert response.status_code == 403
    assert Character.objects.count() == 0


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("png", "image/png"), ("json", "application/json"), ("charx", "application/zip")],
)
def test_public_character_card_downloads_for_anyone(client, alice, fmt, content_type):
    character = make_character(alice, name="Aria")

    response = client.get(_export_url(character, fmt))

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{character.slug}.{fmt}"'


def test_downloaded_png_holds_the_v3_card_and_the_v2_backfill(client, alice):
    character = make_character(alice, name="Aria", visibility=Visibility.UNLISTED)

    response = client.get(_export_url(character, "png"))

    chunks = corpus.png_text_chunks(response.content)
    assert corpus.decode_chunk(chunks["ccv3"])["data"]["name"] == "Aria"
    assert corpus.decode_chunk(chunks["chara"])["spec"] == "chara_card_v2"


def test_unknown_export_format_is_a_404(alice_client, alice):
    character = make_character(alice)

    assert alice_client.get(_export_url(character, "webp")).status_code == 404


def test_owner_downloads_an_imported_private_character(alice_client):
    card = json.dumps(corpus.v3_card()).encode()
    alice_client.post(IMPORT_URL, {"file": _upload("e.json", card)})
    character = Character.objects.get()

    response = alice_client.get(_export_url(character, "json"))

    assert response.status_code == 200
    assert json.loads(response.content)["data"]["nickname"] == "Elle"


def test_another_user_gets_404_for_an_imported_private_character(alice_client, bob, client):
    card = json.dumps(corpus.v3_card()).encode()
    alice_client.post(IMPORT_URL, {"file": _upload("e.json", card)})
    character = Character.objects.get()
    client.force_login(bob)

    assert client.get(character.get_absolute_url()).status_code == 404
    for fmt in ("png", "json", "charx"):
        assert client.get(_export_url(character, fmt)).status_code == 404


def test_anonymous_visitors_get_404_for_a_private_character_card(client, alice):
    character = make_character(alice, visibility=Visibility.PRIVATE)

    assert client.get(_export_url(character, "png")).status_code == 404


# Avatars stored before uploads were decoded: Pillow read their headers, but the card writer
# cannot use them.
UNREADABLE_AVATARS = [("face.jpg", corpus.truncated_jpeg), ("face.png", corpus.png_with_odd_chunk)]


@pytest.mark.parametrize(("name", "make"), UNREADABLE_AVATARS)
def test_an_unreadable_stored_avatar_gives_a_png_card_with_the_placeholder(
    client, alice, name, make
):
    character = make_character(alice, name="Aria")
    character.avatar.save(name, ContentFile(make()))

    response = client.get(_export_url(character, "png"))

    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (400, 600)  # the placeholder portrait
    chunks = corpus.png_text_chunks(response.content)
    assert corpus.decode_chunk(chunks["ccv3"])["data"]["name"] == "Aria"


def test_an_avatar_missing_from_storage_leaves_every_format_downloadable(client, alice):
    character = make_character(alice, name="Aria")
    character.avatar.save("face.png", ContentFile(corpus.image_bytes()))
    character.avatar.storage.delete(character.avatar.name)

    responses = {fmt: client.get(_export_url(character, fmt)) for fmt in ("png", "json", "charx")}

    assert {fmt: r.status_code for fmt, r in responses.items()} == dict.fromkeys(responses, 200)
    archive = zipfile.ZipFile(io.BytesIO(responses["charx"].content))
    assert archive.namelist() == ["card.json"]


def test_an_archive_file_missing_from_storage_is_left_out_and_the_owner_told(alice_client, client):
    files = {"assets/other/other/kept.bin": b"kept", "assets/other/other/lost.bin": b"lost"}
    alice_client.post(
        IMPORT_URL, {"file": _upload("c.charx", corpus.charx(corpus.v3_card(), files))}
    )
    character = Character.objects.get()
    Character.objects.filter(pk=character.pk).update(visibility=Visibility.PUBLIC)
    lost = character.card_assets.get(path="assets/other/other/lost.bin")
    lost.file.storage.delete(lost.file.name)

    visitor = client.get(_export_url(character, "charx"))
    owner = alice_client.get(_export_url(character, "charx"))

    for response in (visitor, owner):
        assert response.status_code == 200
        card, exported = corpus.charx_contents(response.content)
        assert card["data"]["name"] == character.name
        assert exported == {"assets/other/other/kept.bin": b"kept"}
    told = f"The file assets/other/other/lost.bin of {character.name} could not be read"
    assert told in alice_client.get(character.get_absolute_url()).content.decode()


def test_only_the_owner_is_told_why_the_card_lacks_the_avatar(alice_client, alice, bob):
    character = make_character(alice, name="Aria")
    character.avatar.save("face.jpg", ContentFile(corpus.truncated_jpeg()))
    bob_client = Client()
    bob_client.force_login(bob)

    for who in (alice_client, bob_client):
        assert who.get(_export_url(character, "png")).status_code == 200

    told = "The avatar of Aria could not be read"
    assert told in alice_client.get(character.get_absolute_url()).content.decode()
    assert told not in bob_client.get(character.get_absolute_url()).content.decode()

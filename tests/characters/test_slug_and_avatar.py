"""Reserved slugs are refused by the model (so by the admin too); phone JPEGs (MPO) are avatars."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from characters.cards import png
from characters.cards.exporting import card_export
from characters.models import Character, Visibility
from characters.validators import RESERVED_SLUGS, validate_avatar
from tests.characters.adminpost import browser_post_data, change_url, creator_client
from tests.factories import make_character


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def phone_jpeg() -> bytes:
    """A JPEG carrying a second image, as phones write them (Pillow reads it as MPO)."""
    first = Image.new("RGB", (64, 48), "red")
    second = Image.new("RGB", (32, 24), "blue")
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[second])
    return out.getvalue()


def test_every_reserved_slug_is_refused_by_the_model(alice):
    for slug in sorted(RESERVED_SLUGS):
        character = Character(owner=alice, name="Importer", slug=slug)
        with pytest.raises(ValidationError) as error:
            character.full_clean()
        assert list(error.value.message_dict) == ["slug"]


def test_the_admin_refuses_the_import_slug_and_the_page_stays_reachable(alice, bob):
    client = creator_client(alice)
    character = make_character(alice, name="Importer", visibility=Visibility.PUBLIC)
    data = browser_post_data(client.get(change_url(character)))

    response = client.post(change_url(character), {**data, "slug": "import"})

    assert response.status_code == 200
    assert "address of a page" in response.context["adminform"].form.errors["slug"][0]
    character.refresh_from_db()
    assert character.slug != "import"
    assert client.get(character.get_absolute_url()).templates[0].name == "characters/detail.html"
    # Bob cannot move Alice's character onto the reserved slug (or anywhere) either.
    bob_client = creator_client(bob)
    assert bob_client.post(change_url(character), {**data, "slug": "x"}).status_code == 302
    character.refresh_from_db()
    assert character.slug == data["slug"]


def test_a_phone_jpeg_is_a_valid_avatar():
    file = ContentFile(phone_jpeg(), name="photo.jpg")

    validate_avatar(file)

    assert file.tell() == 0


def test_a_phone_jpeg_uploaded_in_the_admin_exports_as_a_png_card(alice, bob):
    client = creator_client(alice)
    character = make_character(alice, name="Nova", visibility=Visibility.PRIVATE)
    data = browser_post_data(client.get(change_url(character)))
    upload = SimpleUploadedFile("photo.jpg", phone_jpeg(), content_type="image/jpeg")

    response = client.post(change_url(character), {**data, "avatar": upload})

    assert response.status_code == 302, response.context["adminform"].form.errors
    character.refresh_from_db()
    assert character.avatar.name.endswith(".jpg")
    card = card_export(character=character, fmt="png")
    assert card.warnings == ()
    with Image.open(io.BytesIO(card.content)) as image:
        assert (image.format, image.size) == ("PNG", (64, 48))
    assert set(png.card_texts(card.content)) >= {"chara", "ccv3"}
    # Bob, another creator, cannot replace Alice's avatar.
    bob_client = creator_client(bob)
    other = SimpleUploadedFile("bob.jpg", phone_jpeg(), content_type="image/jpeg")
    assert bob_client.post(change_url(character), {**data, "avatar": other}).status_code == 302
    assert Character.objects.get(pk=character.pk).avatar.name == character.avatar.name

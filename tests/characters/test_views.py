import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from PIL import Image

from characters.models import Persona, Visibility
from characters.services import PERSONAS_PER_USER, persona_create
from conversations.models import Conversation, Turn
from tests.factories import make_character, make_conversation, make_persona

GALLERY = reverse("characters:gallery")
ACCOUNT = reverse("characters:account")


def assert_csp_clean(html):
    """No inline styles or scripts: the CSP (style-src/script-src 'self') would block them."""
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)


def png_file(name="a.png"):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "purple").save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


# --- gallery ------------------------------------------------------------------------------


def test_gallery_shows_public_characters_to_visitors(client, alice):
    make_character(alice, name="Aria", tagline="A librarian", tags=["cozy"])
    make_character(alice, name="Secret", visibility=Visibility.PRIVATE)
    make_character(alice, name="Linked", visibility=Visibility.UNLISTED)

    response = client.get(GALLERY)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Aria" in html
    assert "A librarian" in html
    assert "cozy" in html
    assert "Secret" not in html
    assert "Linked" not in html
    assert 'class="avatar" aria-hidden="true">A<' in html
    assert_csp_clean(html)


def test_gallery_includes_my_private_characters_but_not_bobs(alice_client, alice, bob):
    make_character(alice, name="MyPrivate", visibility=Visibility.PRIVATE)
    make_character(bob, name="BobPrivate", visibility=Visibility.PRIVATE)

    html = alice_client.get(GALLERY).content.decode()

    assert "MyPrivate" in html
    assert "BobPrivate" not in html


def test_gallery_search_by_name_and_tag(client, alice):
    make_character(alice, name="Aria", tags=["Fantasy"])
    make_character(alice, name="Marcus", tags=["noir"])

    by_tag = client.get(GALLERY, {"q": "FANTASY"}).content.decode()
    by_name = client.get(GALLERY, {"q": "marc"}).content.decode()
    nothing = client.get(GALLERY, {"q": "zzz"}).content.decode()

    assert "Aria" in by_tag
    assert "Marcus" not in by_tag
    assert "Marcus" in by_name
    assert "Aria" not in by_name
    assert "No character matches" in nothing


def test_gallery_survives_huge_queries_and_bad_pages(client, alice):
    make_character(alice, name="Aria")

    assert client.get(GALLERY, {"q": "x" * 100_000}).status_code == 200
    assert client.get(GALLERY, {"page": "abc"}).status_code == 200
    assert "Aria" in client.get(GALLERY, {"page": "999"}).content.decode()


def test_gallery_search_holding_a_nul_character_finds_nothing(alice_client, alice, bob):
    make_character(alice, name="Aria", tags=["fun"])
    make_character(bob, name="Bram", tags=["fun"])

    for q in ("\x00", "a\x00b", "fun\x00"):
        response = alice_client.get(GALLERY, {"q": q})

        assert response.status_code == 200
        assert "No character matches" in response.content.decode()


def test_gallery_is_paginated(client, alice):
    for i in range(30):
        make_character(alice, name=f"Char {i:02d}", samples=0, scenes=0)

    first = client.get(GALLERY).content.decode()
    second = client.get(GALLERY, {"page": 2}).content.decode()

    assert first.count('class="card character-card"') == 24
    assert second.count('class="card character-card"') == 6
    assert "Page 1 of 2" in first


def test_gallery_queries_do_not_grow_with_the_number_of_characters(alice_client, alice):
    def queries_for_gallery():
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get(GALLERY).status_code == 200
        return len(captured)

    make_character(alice, tags=["a"])
    few = queries_for_gallery()
    for i in range(8):
        make_character(alice, tags=[f"t{i}"], visibility=Visibility.PRIVATE)

    assert queries_for_gallery() == few


def test_gallery_shows_the_uploaded_avatar(client, alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    character = make_character(alice, name="Aria", avatar=png_file())

    html = client.get(GALLERY).content.decode()

    assert f'src="{character.avatar.url}"' in html


# --- character page -----------------------------------------------------------------------


def test_character_page_shows_description_creator_notes_and_scenes(client, alice):
    character = make_character(
        alice,
        name="Aria",
        creator_notes="Best with *slow* stories. <script>alert(1)</script>",
        scenes=2,
    )

    response = client.get(character.get_absolute_url())

    html = response.content.decode()
    assert response.status_code == 200
    assert "Creator’s notes" in html
    assert "Best with <em>slow</em> stories." in html
    assert "<script>alert(1)" not in html
    assert "Aria is a friendly guide who helps you." in html
    assert "Library 0" in html
    assert "Library 1" in html
    assert "Log in to chat" in html
    assert_csp_clean(html)


def test_unlisted_character_page_is_reachable_by_link(client, bob):
    character = make_character(bob, name="Linked", visibility=Visibility.UNLISTED)

    assert client.get(character.get_absolute_url()).status_code == 200


def test_private_character_page_is_a_404_for_another_user(alice_client, alice, bob):
    secret = make_character(bob, visibility=Visibility.PRIVATE)
    mine = make_character(alice, visibility=Visibility.PRIVATE)

    assert alice_client.get(secret.get_absolute_url()).status_code == 404
    assert alice_client.post(secret.get_absolute_url(), {}).status_code == 404
    assert alice_client.get(mine.get_absolute_url()).status_code == 200
    assert alice_client.get("/characters/no-such-one/").status_code == 404


def test_start_form_preselects_my_default_persona(alice_client, alice, bob):
    make_persona(alice, name="Kit")
    default = make_persona(alice, name="Sam", is_default=True)
    make_persona(bob, name="Bobby")
    character = make_character(bob)

    html = alice_client.get(character.get_absolute_url()).content.decode()

    assert f'<option value="{default.pk}" selected>Sam</option>' in html
    assert "Bobby" not in html


def test_starting_a_conversation_redirects_to_it(alice_client, alice, bob):
    persona = make_persona(alice, name="Sam", is_default=True)
    character = make_character(bob, name="Aria", greeting="Hi {{user}}, I am {{char}}.")
    scene = character.scenes.get()

    response = alice_client.post(
        character.get_absolute_url(), {"persona": persona.pk, "scene": scene.pk}
    )

    conversation = Conversation.objects.get(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "conversations:detail", kwargs={"conversation_id": conversation.pk}
    )
    assert (conversation.persona, conversation.scene) == (persona, scene)
    assert Turn.objects.get(conversation=conversation).content == "Hi Sam, I am Aria."


def test_start_form_refuses_another_users_persona_and_a_foreign_scene(alice_client, alice, bob):
    bobs_persona = make_persona(bob)
    character = make_character(bob)
    other_scene = make_character(bob).scenes.get()

    response = alice_client.post(
        character.get_absolute_url(), {"persona": bobs_persona.pk, "scene": other_scene.pk}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "No such persona." in html
    assert "This scene belongs to another character." in html
    assert not Conversation.objects.exists()


def test_visitor_starting_a_conversation_is_sent_to_log_in(client, alice):
    character = make_character(alice)

    response = client.post(character.get_absolute_url(), {})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Conversation.objects.exists()


# --- account and personas -----------------------------------------------------------------


def test_account_page_requires_login(client):
    response = client.get(ACCOUNT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_account_page_lists_only_my_personas(alice_client, alice, bob):
    make_persona(alice, name="Sam", is_default=True, description="A pilot.")
    make_persona(alice, name="Kit")
    make_persona(bob, name="Bobby")

    html = alice_client.get(ACCOUNT).content.decode()

    assert "Sam" in html
    assert "A pilot." in html
    assert "Kit" in html
    assert "Bobby" not in html
    assert html.count("Make default") == 1
    assert_csp_clean(html)


def test_account_page_shows_usage_in_total_and_per_month(alice_client, alice, bob):
    conversation = make_conversation(alice)
    turn = Turn.objects.get(conversation=conversation)
    Turn.objects.filter(pk=turn.pk).update(
        prompt_tokens=1200, completion_tokens=300, cost_usd="0.00072"
    )
    bobs = make_conversation(bob)
    Turn.objects.filter(conversation=bobs).update(prompt_tokens=99999, completion_tokens=99999)
    month = turn.created_at.strftime("%Y-%m")

    total = alice_client.get(ACCOUNT).content.decode()
    monthly = alice_client.get(ACCOUNT, {"month": month}).content.decode()
    other_month = alice_client.get(ACCOUNT, {"month": "1999-01"}).content.decode()

    for html in (total, monthly):
        assert "<dd>1200</dd>" in html
        assert "<dd>300</dd>" in html
        assert "$0.0007" in html
    assert f'<option value="{month}" selected>' in monthly
    assert "<dd>1200</dd>" in other_month  # an unknown month falls back to all time
    assert "99999" not in total


def test_account_page_counts_replies_reported_only_as_a_total_without_pricing_them(
    alice_client, alice, bob
):
    conversation = make_conversation(alice)
    turn = Turn.objects.get(conversation=conversation)
    Turn.objects.filter(pk=turn.pk).update(total_tokens=4321)
    bobs = make_conversation(bob)
    Turn.objects.filter(conversation=bobs).update(total_tokens=98765)

    html = alice_client.get(ACCOUNT).content.decode()

    assert "<dd>4321</dd>" in html
    assert "1 reply reported only a total of tokens" in html
    assert "$0.0000" in html
    assert "98765" not in html


def test_creating_a_persona(alice_client, alice):
    response = alice_client.post(
        reverse("characters:persona_create"), {"name": "Sam", "description": "A pilot."}
    )

    assert response.status_code == 302
    persona = Persona.objects.get(owner=alice)
    assert (persona.name, persona.description, persona.is_default) == ("Sam", "A pilot.", True)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "Sam", "description": "x" * 4001}, "description"),
    ],
)
def test_persona_form_shows_field_errors(alice_client, data, field):
    response = alice_client.post(reverse("characters:persona_create"), data)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert 'class="errorlist"' in response.content.decode()
    assert not Persona.objects.exists()


def test_persona_limit_is_shown_as_a_form_error(alice_client, alice):
    Persona.objects.bulk_create(
        Persona(owner=alice, name=f"P{i}") for i in range(PERSONAS_PER_USER)
    )

    response = alice_client.post(reverse("characters:persona_create"), {"name": "More"})

    assert response.status_code == 200
    assert "at most" in response.content.decode()


def test_editing_my_persona(alice_client, alice):
    persona = persona_create(owner=alice, name="Sam")
    url = reverse("characters:persona_edit", args=[persona.pk])

    assert 'value="Sam"' in alice_client.get(url).content.decode()
    response = alice_client.post(url, {"name": "Samantha", "description": "New"})

    persona.refresh_from_db()
    assert response.status_code == 302
    assert (persona.name, persona.description, persona.is_default) == ("Samantha", "New", True)


def test_switching_the_default_persona(alice_client, alice):
    persona_create(owner=alice, name="Sam")
    kit = persona_create(owner=alice, name="Kit")

    response = alice_client.post(reverse("characters:persona_default", args=[kit.pk]))

    assert response.status_code == 302
    assert list(
        Persona.objects.filter(owner=alice, is_default=True).values_list("name", flat=True)
    ) == ["Kit"]
    assert alice_client.get(reverse("characters:persona_default", args=[kit.pk])).status_code == 405


def test_deleting_my_persona_after_confirming(alice_client, alice):
    persona = persona_create(owner=alice, name="Sam")
    url = reverse("characters:persona_delete", args=[persona.pk])

    assert "Delete “Sam”?" in alice_client.get(url).content.decode()
    assert alice_client.post(url).status_code == 302
    assert not Persona.objects.exists()


def test_another_users_persona_is_a_404_everywhere(alice_client, bob):
    bobs = persona_create(owner=bob, name="Bobby")

    for name in ("persona_edit", "persona_delete", "persona_default"):
        url = reverse(f"characters:{name}", args=[bobs.pk])
        assert alice_client.post(url, {"name": "Hacked"}).status_code == 404
    assert alice_client.get(reverse("characters:persona_edit", args=[bobs.pk])).status_code == 404

    bobs.refresh_from_db()
    assert (bobs.name, bobs.is_default) == ("Bobby", True)

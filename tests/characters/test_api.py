from django.test import Client
from django.urls import reverse

from characters.models import Visibility
from tests.factories import make_character

URL = reverse("api:characters")


def test_anonymous_request_gets_401_json(client, alice):
    make_character(alice)

    response = client.get(URL)

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication required."}


def test_lists_the_gallery_set_with_card_fields(alice_client, alice, bob):
    make_character(bob, name="Aria", tagline="A librarian", tags=["cozy", "Fantasy"])
    make_character(alice, name="Mine", visibility=Visibility.PRIVATE)
    make_character(bob, name="Bob private", visibility=Visibility.PRIVATE)
    make_character(bob, name="Bob unlisted", visibility=Visibility.UNLISTED)

    body = alice_client.get(URL).json()

    assert [c["name"] for c in body["characters"]] == ["Aria", "Mine"]
    aria = body["characters"][0]
    assert aria == {
        "slug": aria["slug"],
        "name": "Aria",
        "tagline": "A librarian",
        "avatar_url": None,
        "tags": ["cozy", "Fantasy"],
    }
    assert aria["slug"].startswith("aria-")


def test_search_by_name_or_tag(alice_client, alice):
    make_character(alice, name="Aria", tags=["Fantasy"])
    make_character(alice, name="Marcus", tags=["noir"])

    def names(q):
        return [c["name"] for c in alice_client.get(URL, {"q": q}).json()["characters"]]

    assert names("fantasy") == ["Aria"]
    assert names("MARC") == ["Marcus"]
    assert names("x" * 10_000) == []


def test_search_holding_a_nul_character_is_an_empty_list_not_an_error(alice_client, alice):
    make_character(alice, name="Aria", tags=["fun"])

    for q in ("\x00", "Ar\x00ia", "fun\x00"):
        response = alice_client.get(URL, {"q": q})

        assert response.status_code == 200
        assert response.json() == {"characters": []}


def test_search_reads_only_the_first_100_letters_like_the_gallery(alice_client, alice):
    make_character(alice, name="Aria")
    make_character(alice, name="Marcus")

    def names(q):
        return [c["name"] for c in alice_client.get(URL, {"q": q}).json()["characters"]]

    # What lies past the cap is not searched, so a NUL there cannot reach the database.
    assert names("Aria" + " " * 96 + "\x00") == ["Aria"]


def test_bobs_private_characters_stay_hidden_from_alice_and_visible_to_bob(alice_client, bob):
    make_character(bob, name="Secret", visibility=Visibility.PRIVATE)
    bob_client = Client()
    bob_client.force_login(bob)

    assert alice_client.get(URL, {"q": "Secret"}).json() == {"characters": []}
    assert [c["name"] for c in bob_client.get(URL).json()["characters"]] == ["Secret"]


def test_only_get_is_allowed(alice_client):
    assert alice_client.post(URL, {}).status_code == 405

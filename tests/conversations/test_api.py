import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from characters.models import Visibility
from companion.jsonapi import UNPAIRED_SURROGATE
from conversations.models import Conversation, Turn
from tests.factories import make_character, make_conversation, make_persona, make_turns

START = reverse("api:conversations")


def turns_url(conversation_id):
    return reverse("api:turns", kwargs={"conversation_id": conversation_id})


def post_json(client, data, **extra):
    body = data if isinstance(data, (str, bytes)) else json.dumps(data)
    return client.post(START, body, content_type="application/json", **extra)


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


# --- authentication and CSRF --------------------------------------------------------------


def test_anonymous_requests_get_401_json_not_a_redirect(client, alice):
    conversation = make_conversation(alice)

    for response in (
        post_json(client, {"character": conversation.character.slug}),
        client.get(turns_url(conversation.pk)),
    ):
        assert response.status_code == 401
        assert response.json() == {"detail": "Authentication required."}
    assert Conversation.objects.count() == 1


def test_post_without_csrf_token_is_refused(alice, bob):
    character = make_character(bob)
    client = client_for(alice, enforce_csrf_checks=True)

    refused = post_json(client, {"character": character.slug})
    client.get(reverse("characters:gallery"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = post_json(client, {"character": character.slug}, HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert accepted.status_code == 201
    assert Conversation.objects.count() == 1


def test_a_multipart_body_is_refused_as_not_json_when_csrf_is_checked(alice, bob):
    character = make_character(bob)
    client = client_for(alice, enforce_csrf_checks=True)
    client.get(reverse("characters:gallery"))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    # What fetch() sends for a FormData, or curl -F: the CSRF check reads it as a form first.
    response = client.post(START, {"character": character.slug}, HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 415
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "errors": {
            "__all__": [
                "The body must be JSON (Content-Type: application/json), not a multipart form."
            ]
        }
    }
    assert not Conversation.objects.exists()


def test_a_multipart_body_gets_the_same_answer_without_a_csrf_check(alice_client, bob):
    character = make_character(bob)

    response = alice_client.post(START, {"character": character.slug})

    assert response.status_code == 415
    assert not Conversation.objects.exists()


def test_a_form_encoded_body_is_not_valid_json(alice, bob):
    character = make_character(bob)
    client = client_for(alice, enforce_csrf_checks=True)
    client.get(reverse("characters:gallery"))
    token = client.cookies["csrftoken"].value

    response = client.post(
        START,
        f"character={character.slug}",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": ["The body is not valid JSON."]}}
    assert not Conversation.objects.exists()


def test_wrong_method_is_405(alice_client, alice):
    conversation = make_conversation(alice)

    assert alice_client.get(START).status_code == 405
    assert alice_client.post(turns_url(conversation.pk)).status_code == 405


# --- POST /api/conversations/ -------------------------------------------------------------


def test_starting_a_conversation_returns_201_with_its_data(alice_client, alice, bob):
    persona = make_persona(alice, name="Sam")
    character = make_character(bob, name="Aria", greeting="Hi {{user}}.")
    scene = character.scenes.get()

    response = post_json(
        alice_client, {"character": character.slug, "persona": persona.pk, "scene": scene.pk}
    )

    body = response.json()
    conversation = Conversation.objects.get(owner=alice)
    assert response.status_code == 201
    assert body == {
        "id": str(conversation.pk),
        "url": reverse("conversations:detail", kwargs={"conversation_id": conversation.pk}),
        "title": "Aria — Library 0",
        "character": character.slug,
        "persona": persona.pk,
        "scene": scene.pk,
        "created_at": body["created_at"],
    }
    assert body["created_at"].startswith(str(conversation.created_at.year))
    assert Turn.objects.get(conversation=conversation).content == "Hi Sam."


def test_absent_persona_means_my_default_and_null_means_none(alice_client, alice):
    default = make_persona(alice, name="Sam", is_default=True)
    character = make_character(alice)

    with_default = post_json(alice_client, {"character": character.slug}).json()
    without = post_json(alice_client, {"character": character.slug, "persona": None}).json()

    assert with_default["persona"] == default.pk
    assert without["persona"] is None
    assert without["scene"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "__all__"),
        (b"\xff\xfe", "__all__"),
        ("[1, 2]", "__all__"),
        ('"character"', "__all__"),
        ("[" * 60_000, "__all__"),
        ({}, "character"),
        ({"character": 5}, "character"),
        ({"character": ["aria"]}, "character"),
        ({"character": ""}, "character"),
        ({"character": "x" * 81}, "character"),
        ({"character": "no-such-character"}, "character"),
        ({"character": "a\x00b"}, "character"),
        ({"character": "CHARACTER", "persona": "1"}, "persona"),
        ({"character": "CHARACTER", "persona": True}, "persona"),
        ({"character": "CHARACTER", "persona": 1.5}, "persona"),
        ({"character": "CHARACTER", "persona": -1}, "persona"),
        ({"character": "CHARACTER", "persona": 2**70}, "persona"),
        ({"character": "CHARACTER", "persona": 999_999}, "persona"),
        ({"character": "CHARACTER", "scene": {"id": 1}}, "scene"),
        ({"character": "CHARACTER", "scene": 999_999}, "scene"),
    ],
)
def test_bad_start_requests_get_400_with_field_errors(alice_client, alice, body, field):
    character = make_character(alice)
    if isinstance(body, dict):
        body = {k: character.slug if v == "CHARACTER" else v for k, v in body.items()}

    response = post_json(alice_client, body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert all(isinstance(message, str) and message for message in errors[field])
    assert not Conversation.objects.exists()


def test_a_slug_holding_a_nul_character_names_no_character(alice_client, alice, bob):
    mine = make_character(alice, visibility=Visibility.PRIVATE)
    theirs = make_character(bob)

    for slug in (f"{mine.slug}\x00", f"\x00{theirs.slug}", "\x00"):
        response = post_json(alice_client, {"character": slug})

        assert response.status_code == 400
        assert response.json() == {"errors": {"character": ["No such character."]}}
    assert not Conversation.objects.exists()


def test_an_unpaired_surrogate_escape_is_refused_as_invalid_text(alice_client, alice, bob):
    theirs = make_character(bob)
    body = json.dumps({"character": theirs.slug}).replace('"}', '\\ud800"}')

    response = post_json(alice_client, body)

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": [UNPAIRED_SURROGATE]}}
    assert not Conversation.objects.exists()


def test_an_escaped_emoji_is_valid_text(alice_client, alice, bob):
    theirs = make_character(bob)
    body = json.dumps({"character": theirs.slug, "note": "\U0001f600"})  # "\\ud83d\\ude00"

    assert "\\ud83d\\ude00" in body
    assert post_json(alice_client, body).status_code == 201


def test_someone_elses_persona_scene_or_private_character_is_refused(alice_client, bob):
    public = make_character(bob)
    secret = make_character(bob, visibility=Visibility.PRIVATE)
    bobs_persona = make_persona(bob)
    other_scene = make_character(bob).scenes.get()

    hidden = post_json(alice_client, {"character": secret.slug})
    mixed = post_json(
        alice_client,
        {"character": public.slug, "persona": bobs_persona.pk, "scene": other_scene.pk},
    )

    assert hidden.status_code == 400
    assert hidden.json() == {"errors": {"character": ["No such character."]}}
    assert mixed.status_code == 400
    assert mixed.json() == {
        "errors": {
            "persona": ["No such persona."],
            "scene": ["This scene belongs to another character."],
        }
    }
    assert not Conversation.objects.exists()


def test_oversized_body_is_refused(alice_client, alice):
    character = make_character(alice)

    response = post_json(alice_client, {"character": character.slug, "pad": "x" * 70_000})

    assert response.status_code == 400
    assert "too large" in response.json()["errors"]["__all__"][0]


# --- GET /api/conversations/<id>/turns/ ---------------------------------------------------


def test_turns_page_back_through_the_conversation(alice_client, alice):
    conversation = make_conversation(alice, make_character(alice, greeting=""))
    make_turns(conversation, 7)

    first = alice_client.get(turns_url(conversation.pk), {"limit": 3}).json()
    second = alice_client.get(
        turns_url(conversation.pk), {"limit": 3, "before_seq": first["turns"][0]["seq"]}
    ).json()
    third = alice_client.get(turns_url(conversation.pk), {"limit": 3, "before_seq": 2}).json()

    assert [t["seq"] for t in first["turns"]] == [5, 6, 7]
    assert first["has_more"]
    assert [t["seq"] for t in second["turns"]] == [2, 3, 4]
    assert second["has_more"]
    assert [t["seq"] for t in third["turns"]] == [1]
    assert not third["has_more"]
    turn = first["turns"][1]
    assert turn["role"] == "assistant"
    assert turn["content"] == "line 6"
    assert (turn["candidate_index"], turn["candidate_count"]) == (1, 1)
    assert {"id", "name", "status", "finish_reason", "created_at"} <= set(turn)


def test_default_limit_is_50_and_large_limits_are_capped(alice_client, alice):
    conversation = make_conversation(alice)
    make_turns(conversation, 250)

    default = alice_client.get(turns_url(conversation.pk)).json()
    capped = alice_client.get(turns_url(conversation.pk), {"limit": 5000}).json()

    assert len(default["turns"]) == 50
    assert len(capped["turns"]) == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-3"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before_seq": "0"}, "before_seq"),
        ({"before_seq": "1e3"}, "before_seq"),
        ({"before_seq": "9" * 30}, "before_seq"),
        ({"before_seq": "9" * 5000}, "before_seq"),
    ],
)
def test_bad_paging_parameters_get_400(alice_client, alice, params, field):
    conversation = make_conversation(alice)

    response = alice_client.get(turns_url(conversation.pk), params)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_another_users_conversation_is_a_json_404(alice, bob):
    conversation = make_conversation(alice)
    bob_client = client_for(bob)

    response = bob_client.get(turns_url(conversation.pk))
    missing = bob_client.get(turns_url(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert missing.status_code == 404


def test_a_page_of_a_5000_turn_conversation_takes_few_queries(
    alice_client, alice, django_assert_max_num_queries
):
    conversation = make_conversation(alice)
    make_turns(conversation, 5000)

    # session + user + conversation + page + sibling counts
    with django_assert_max_num_queries(5):
        response = alice_client.get(turns_url(conversation.pk), {"limit": 200})
    with django_assert_max_num_queries(5):
        middle = alice_client.get(turns_url(conversation.pk), {"before_seq": 2500})

    assert response.status_code == 200
    assert len(response.json()["turns"]) == 200
    assert [t["seq"] for t in middle.json()["turns"]] == list(range(2450, 2500))

import re

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations.models import Conversation, Turn
from conversations.views import LIST_PAGE_SIZE
from tests.factories import make_character, make_conversation, make_turns

LIST = reverse("conversations:list")


def test_list_requires_login(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_list_shows_my_conversations_most_recent_first(alice_client, alice, bob):
    older = make_conversation(alice, make_character(alice, name="Aria"))
    make_conversation(alice, make_character(alice, name="Marcus", greeting="Evening."))
    make_conversation(bob, make_character(bob, name="Bobbin"))
    make_turns(older, 2, text="*smiles* latest words")

    response = alice_client.get(LIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Aria") < html.index("Marcus")
    assert "*smiles* latest words" in html
    assert "Evening." in html
    assert "Bobbin" not in html
    assert older.get_absolute_url() in html
    assert not re.search(r"\sstyle=|<script(?![^>]*\bsrc=)", html)


def test_list_is_paginated_and_survives_bad_page_numbers(alice_client, alice):
    character = make_character(alice, greeting="")
    for _ in range(LIST_PAGE_SIZE + 3):
        make_conversation(alice, character)

    first = alice_client.get(LIST).content.decode()
    second = alice_client.get(LIST, {"page": 2}).content.decode()

    assert first.count('class="card chat-item"') == LIST_PAGE_SIZE
    assert second.count('class="card chat-item"') == 3
    assert alice_client.get(LIST, {"page": "x"}).status_code == 200
    assert alice_client.get(LIST, {"page": "99999999999999999999"}).status_code == 200


def test_deleting_my_conversation(alice_client, alice):
    conversation = make_conversation(alice)

    response = alice_client.post(LIST, {"delete": str(conversation.pk)})

    assert response.status_code == 302
    assert not Conversation.objects.exists()
    assert not Turn.objects.exists()
    assert "Deleted" in alice_client.get(LIST).content.decode()


def test_another_users_conversation_cannot_be_deleted(alice, bob):
    conversation = make_conversation(alice)
    bob_client = Client()
    bob_client.force_login(bob)

    assert bob_client.post(LIST, {"delete": str(conversation.pk)}).status_code == 404
    assert bob_client.post(LIST, {"delete": "garbage"}).status_code == 404
    assert bob_client.post(LIST, {}).status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_empty_list_invites_to_pick_a_character(alice_client):
    html = alice_client.get(LIST).content.decode()

    assert "No conversations yet." in html


def test_list_queries_do_not_grow_with_the_number_of_conversations(alice_client, alice):
    def queries_for_list():
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get(LIST).status_code == 200
        return len(captured)

    make_conversation(alice)
    few = queries_for_list()
    for _ in range(8):
        make_conversation(alice)

    assert queries_for_list() == few

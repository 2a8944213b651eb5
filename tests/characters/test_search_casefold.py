"""Gallery search ignores case in every script, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from characters.models import Visibility
from characters.selectors import character_list_visible_to
from tests.factories import make_character


def names(queryset):
    return [c.name for c in queryset]


@pytest.mark.parametrize(
    "query", ["Фэнтези", "фэнтези", "ФЭНТЕЗИ", "ärger", "ÄRGER", "café", "CAFÉ", "ΜΎΘΟΣ", "ΜΎΘ"]
)
def test_tags_match_whatever_the_case_in_any_script(alice, query):
    make_character(alice, name="Ivan", tags=["Фэнтези", "Ärger", "Café", "Μύθος"])
    make_character(alice, name="Plain", tags=["Fantasy"])

    assert names(character_list_visible_to(user=alice, query=query)) == ["Ivan"]


@pytest.mark.parametrize("query", ["ЁЛКА", "ёлка", "élodie", "ÉLODIE", "ΣΟΦΊΑ", "σοφία"])
def test_names_match_whatever_the_case_in_any_script(alice, query):
    make_character(alice, name="Ёлка", slug="yolka")
    make_character(alice, name="Élodie", slug="elodie")
    make_character(alice, name="Σοφία", slug="sofia")
    make_character(alice, name="Aria")

    assert len(names(character_list_visible_to(user=alice, query=query))) == 1


def test_folded_search_still_treats_like_wildcards_as_text(alice):
    make_character(alice, name="Ärger", slug="aerger", tags=["100%_Ärger"])
    make_character(alice, name="Other", tags=["ärgerlich"])

    assert names(character_list_visible_to(user=alice, query="%_ä")) == ["Ärger"]


def test_gallery_search_folds_case_but_never_shows_bobs_private_characters(
    alice_client, alice, bob
):
    make_character(alice, name="Mine", tags=["Фэнтези"], visibility=Visibility.PRIVATE)
    make_character(bob, name="Bobs open", tags=["ФЭНТЕЗИ"])
    make_character(bob, name="Bobs secret", tags=["фэнтези"], visibility=Visibility.PRIVATE)

    response = alice_client.get("/", {"q": "фэнтези"})

    assert [c.name for c in response.context["page"].object_list] == ["Bobs open", "Mine"]
    assert "Bobs secret" not in response.text


def test_a_search_costs_no_more_queries_than_the_plain_gallery(alice_client, alice):
    for i in range(3):
        make_character(alice, name=f"Ёлка {i}", slug=f"yolka-{i}", tags=["Фэнтези"])

    with CaptureQueriesContext(connection) as plain:
        alice_client.get("/")
    with CaptureQueriesContext(connection) as searched:
        response = alice_client.get("/", {"q": "фэнтези"})

    assert len(response.context["page"].object_list) == 3
    assert len(searched.captured_queries) == len(plain.captured_queries)

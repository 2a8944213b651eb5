import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from characters.models import Visibility
from characters.selectors import (
    character_get_visible,
    character_list_visible_to,
    persona_default_for_user,
    persona_get_for_user,
    persona_list_for_user,
)
from tests.factories import make_character, make_persona


def names(queryset):
    return [c.name for c in queryset]


def test_anonymous_gallery_lists_only_public_characters(alice):
    make_character(alice, name="Open")
    make_character(alice, name="Hidden", visibility=Visibility.PRIVATE)
    make_character(alice, name="Link", visibility=Visibility.UNLISTED)

    assert names(character_list_visible_to(user=AnonymousUser())) == ["Open"]


def test_gallery_adds_my_own_characters_of_any_visibility_but_not_others_hidden_ones(alice, bob):
    make_character(alice, name="Mine private", visibility=Visibility.PRIVATE)
    make_character(alice, name="Mine unlisted", visibility=Visibility.UNLISTED)
    make_character(bob, name="Bob private", visibility=Visibility.PRIVATE)
    make_character(bob, name="Bob unlisted", visibility=Visibility.UNLISTED)
    make_character(bob, name="Bob public")

    assert names(character_list_visible_to(user=alice)) == [
        "Bob public",
        "Mine private",
        "Mine unlisted",
    ]
    assert names(character_list_visible_to(user=bob)) == [
        "Bob private",
        "Bob public",
        "Bob unlisted",
    ]


def test_search_matches_name_case_insensitively(alice):
    make_character(alice, name="Aria")
    make_character(alice, name="Marcus")

    assert names(character_list_visible_to(user=alice, query="ARI")) == ["Aria"]
    assert names(character_list_visible_to(user=alice, query="  cus ")) == ["Marcus"]


def test_search_matches_a_tag_case_insensitively_including_chinese_tags(alice):
    make_character(alice, name="Knight", tags=["Fantasy", "Adventure"])
    make_character(alice, name="Poet", tags=["浪漫", "诗歌"])
    make_character(alice, name="Plain", tags=[])

    assert names(character_list_visible_to(user=alice, query="fantasy")) == ["Knight"]
    assert names(character_list_visible_to(user=alice, query="VENT")) == ["Knight"]
    assert names(character_list_visible_to(user=alice, query="浪漫")) == ["Poet"]


def test_search_matches_single_tags_not_the_serialised_list(alice):
    make_character(alice, name="Knight", tags=["ab", "cd"])

    assert names(character_list_visible_to(user=alice, query='b", "c')) == []
    assert names(character_list_visible_to(user=alice, query="[")) == []


def test_search_treats_like_wildcards_as_plain_text(alice):
    make_character(alice, name="Knight", tags=["sword"])
    make_character(alice, name="Percent", tags=["100%_real"])

    assert names(character_list_visible_to(user=alice, query="%")) == ["Percent"]
    assert names(character_list_visible_to(user=alice, query="_")) == ["Percent"]


@pytest.mark.parametrize("query", ["\x00", "Ar\x00ia", "fun\x00"])
def test_search_holding_a_nul_character_matches_nothing_on_any_database(alice, query):
    make_character(alice, name="Aria", tags=["fun"])

    assert names(character_list_visible_to(user=alice, query=query)) == []
    assert names(character_list_visible_to(user=AnonymousUser(), query=query)) == []


def test_search_never_reveals_other_users_private_characters(alice, bob):
    make_character(bob, name="Secret", visibility=Visibility.PRIVATE, tags=["hidden"])

    assert names(character_list_visible_to(user=alice, query="hidden")) == []
    assert names(character_list_visible_to(user=alice, query="Secret")) == []


def test_character_page_is_visible_when_public_or_unlisted(alice, bob):
    public = make_character(bob)
    unlisted = make_character(bob, visibility=Visibility.UNLISTED)

    assert character_get_visible(slug=public.slug, user=alice) == public
    assert character_get_visible(slug=unlisted.slug, user=AnonymousUser()) == unlisted


def test_private_character_is_a_404_for_everyone_but_its_owner(alice, bob):
    secret = make_character(bob, visibility=Visibility.PRIVATE)

    assert character_get_visible(slug=secret.slug, user=bob) == secret
    with pytest.raises(Http404):
        character_get_visible(slug=secret.slug, user=alice)
    with pytest.raises(Http404):
        character_get_visible(slug=secret.slug, user=AnonymousUser())
    with pytest.raises(Http404):
        character_get_visible(slug="no-such-slug", user=bob)


@pytest.mark.parametrize("slug", ["\x00", "aria\x00", "ar\x00ia"])
def test_a_slug_holding_a_nul_character_is_a_404_even_for_the_owner(alice, bob, slug):
    make_character(alice, slug="aria", visibility=Visibility.PRIVATE)
    make_character(bob, slug="bobs", visibility=Visibility.PUBLIC)

    for user in (alice, bob, AnonymousUser()):
        with pytest.raises(Http404):
            character_get_visible(slug=slug, user=user)


def test_persona_of_another_user_looks_missing(alice, bob):
    mine = make_persona(alice)
    theirs = make_persona(bob)

    assert persona_get_for_user(persona_id=mine.pk, user=alice) == mine
    for persona_id in (theirs.pk, 999_999, "abc", ""):
        with pytest.raises(Http404):
            persona_get_for_user(persona_id=persona_id, user=alice)
    with pytest.raises(Http404):
        persona_get_for_user(persona_id=mine.pk, user=AnonymousUser())


def test_personas_are_listed_default_first_and_only_mine(alice, bob):
    make_persona(alice, name="Aaron")
    make_persona(alice, name="Zed", is_default=True)
    make_persona(bob, name="Bobby")

    assert [p.name for p in persona_list_for_user(user=alice)] == ["Zed", "Aaron"]
    default = persona_default_for_user(user=alice)
    assert default is not None
    assert default.name == "Zed"
    assert persona_default_for_user(user=AnonymousUser()) is None

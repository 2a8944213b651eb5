import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from PIL import Image

from characters.demo_data import DEMO_CHARACTERS, DEMO_OWNER_USERNAME
from characters.management.roles import CREATOR_MODELS, CREATORS_GROUP
from characters.models import Character, SampleDialogue, Scene, Visibility
from conversations.prompt_inputs import prompt_input_for_new_conversation
from conversations.prompts import build_prompt
from tests.factories import make_character

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def seed():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def snapshot():
    return (
        list(Character.objects.order_by("pk").values()),
        list(SampleDialogue.objects.order_by("pk").values()),
        list(Scene.objects.order_by("pk").values()),
        list(get_user_model().objects.order_by("pk").values()),
        sorted(Group.objects.get(name=CREATORS_GROUP).permissions.values_list("pk", flat=True)),
    )


def test_seeding_twice_changes_nothing(db):
    first_output = seed()
    before = snapshot()

    second_output = seed()

    assert snapshot() == before
    assert f"{len(DEMO_CHARACTERS)} created" in first_output
    assert f"{len(DEMO_CHARACTERS)} unchanged" in second_output
    assert len(second_output.strip().splitlines()) == 1


def test_demo_characters_are_public_and_complete(db, media_root):
    seed()

    characters = list(Character.objects.all())
    assert len(characters) >= 4
    for character in characters:
        assert character.visibility == Visibility.PUBLIC
        assert character.owner.username == DEMO_OWNER_USERNAME
        assert character.description
        assert character.personality
        assert character.scenario
        assert character.greeting
        assert 1 <= len(character.alternate_greetings) <= 2
        assert character.tags
        assert 2 <= character.sample_dialogues.count() <= 3
        scenes = list(character.scenes.all())
        assert 1 <= len(scenes) <= 2
        assert all(scene.opening_line for scene in scenes)
        with Image.open(media_root / character.avatar.name) as avatar:
            assert avatar.format == "PNG"
            assert avatar.size == (256, 256)


def test_demo_owner_cannot_log_in_and_is_not_staff(db):
    seed()

    owner = get_user_model().objects.get(username=DEMO_OWNER_USERNAME)
    assert not owner.has_usable_password()
    assert not owner.is_staff
    assert not owner.is_superuser


def test_demo_includes_a_chinese_and_a_bilingual_character(db):
    seed()

    def chinese_share(text):
        letters = [ch for ch in text if ch.isalpha()]
        return len(CJK.findall(text)) / len(letters)

    characters = list(Character.objects.all())
    chinese = [c for c in characters if chinese_share(c.description + c.greeting) > 0.9]
    bilingual = [
        c
        for c in characters
        if CJK.search(c.greeting) and len(LATIN_WORD.findall(c.greeting)) >= 10
    ]
    assert chinese
    assert all(CJK.search(s.character_line) for s in chinese[0].sample_dialogues.all())
    assert bilingual


def test_every_demo_prompt_fits_the_default_budget_with_all_samples(db, settings):
    settings.M2HER_CONTEXT_TOKENS = 2048
    seed()

    for character in Character.objects.prefetch_related("scenes"):
        for scene in [None, *character.scenes.all()]:
            result = build_prompt(
                prompt_input_for_new_conversation(character=character, scene=scene)
            )
            assert not result.over_budget, (character.slug, scene)
            assert result.samples_trimmed == 0, (character.slug, scene)
            assert [m["role"] for m in result.messages].count("system") == 1


def test_seeding_restores_edited_demo_content(db):
    seed()
    juniper = Character.objects.get(slug="juniper-hale")
    juniper.sample_dialogues.update(user_line="edited")
    juniper.scenes.all()[0].delete()
    Character.objects.filter(pk=juniper.pk).update(visibility=Visibility.PRIVATE)

    output = seed()

    juniper.refresh_from_db()
    demo = next(d for d in DEMO_CHARACTERS if d.slug == "juniper-hale")
    assert juniper.visibility == Visibility.PUBLIC
    assert [s.user_line for s in juniper.sample_dialogues.all()] == [u for u, _ in demo.samples]
    assert [s.name for s in juniper.scenes.all()] == [s.name for s in demo.scenes]
    assert "1 updated" in output


def test_seeding_leaves_another_users_character_with_a_demo_slug_alone(alice):
    taken = make_character(alice, name="Mine", slug="juniper-hale", visibility=Visibility.PRIVATE)

    output = seed()

    taken.refresh_from_db()
    assert taken.owner == alice
    assert taken.name == "Mine"
    assert taken.visibility == Visibility.PRIVATE
    assert "1 skipped" in output


def test_seeding_sets_up_the_creators_group(db):
    seed()

    assert Group.objects.get(name=CREATORS_GROUP).permissions.count() == len(CREATOR_MODELS) * 4

import pytest

from characters.models import Scene, Visibility
from conversations.exceptions import ConversationNotOwned, ConversationStartInvalid
from conversations.models import Conversation, Role, Turn
from conversations.prompt_inputs import prompt_preview_for_new_conversation
from conversations.services.conversations import conversation_create, conversation_delete
from tests.factories import make_character, make_persona


def turns_of(conversation):
    return list(
        Turn.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("seq", "active", "role", "name", "content")
    )


def test_new_conversation_opens_with_the_greeting_and_alternates_as_swipes(alice, bob):
    persona = make_persona(alice, name="Sam")
    character = make_character(
        bob,
        name="Aria",
        greeting="*waves* Hi {{user}}!",
        alternate_greetings=["{{char}} nods at <USER>.", "   ", "Welcome back, {{User}}."],
    )

    conversation = conversation_create(owner=alice, character=character, persona=persona)

    assert conversation.title == "Aria"
    assert conversation.owner == alice
    assert conversation.last_seq == 3
    assert turns_of(conversation) == [
        (1, True, Role.ASSISTANT, "Aria", "*waves* Hi Sam!"),
        (2, False, Role.ASSISTANT, "Aria", "Aria nods at Sam."),
        (3, False, Role.ASSISTANT, "Aria", "Welcome back, Sam."),
    ]


def test_scene_opening_line_replaces_the_greeting_and_names_the_title(alice):
    character = make_character(alice, name="Aria", alternate_greetings=["Other hello"])
    scene = Scene.objects.create(
        character=character, name="Harbour", opening_line="{{char}} waits at the pier for {{user}}."
    )

    conversation = conversation_create(owner=alice, character=character, scene=scene)

    assert conversation.title == "Aria — Harbour"
    assert conversation.scene == scene
    assert turns_of(conversation) == [
        (1, True, Role.ASSISTANT, "Aria", "Aria waits at the pier for User.")
    ]


def test_scene_without_opening_line_keeps_the_character_greeting(alice):
    character = make_character(alice, name="Aria", greeting="Hello.")
    scene = character.scenes.get()

    conversation = conversation_create(owner=alice, character=character, scene=scene)

    assert [t[4] for t in turns_of(conversation)] == ["Hello."]


def test_nickname_stands_in_for_char_in_greetings(alice):
    character = make_character(alice, name="Arianna", nickname="Ari", greeting="I'm {{char}}.")

    conversation = conversation_create(owner=alice, character=character)

    assert turns_of(conversation)[0][3:] == ("Arianna", "I'm Ari.")


def test_names_holding_macros_are_shown_as_written(alice, bob):
    # Each pass used to expand the macros a name brought in: four copies grew to 65,536.
    persona = make_persona(alice, name="{{user}}" * 4)
    character = make_character(
        bob, name="Aria", nickname="{{char}}" * 4, greeting="{{char}} greets {{user}}."
    )

    conversation = conversation_create(owner=alice, character=character, persona=persona)

    greeting = Turn.objects.get(conversation=conversation).content
    assert greeting == "{{char}}" * 4 + " greets " + "{{user}}" * 4 + "."


def test_character_without_greeting_starts_empty(alice):
    character = make_character(alice, greeting="")

    conversation = conversation_create(owner=alice, character=character)

    assert turns_of(conversation) == []


def test_unlisted_character_of_another_user_can_be_started(alice, bob):
    character = make_character(bob, visibility=Visibility.UNLISTED)

    assert conversation_create(owner=alice, character=character).character == character


def test_start_is_refused_for_wrong_combinations_without_writing(alice, bob):
    secret = make_character(bob, visibility=Visibility.PRIVATE)
    character = make_character(bob)
    foreign_scene = make_character(bob).scenes.get()
    bobs_persona = make_persona(bob)

    with pytest.raises(ConversationStartInvalid) as excinfo:
        conversation_create(owner=alice, character=secret)
    assert list(excinfo.value.errors) == ["character"]

    with pytest.raises(ConversationStartInvalid) as excinfo:
        conversation_create(
            owner=alice, character=character, persona=bobs_persona, scene=foreign_scene
        )
    assert set(excinfo.value.errors) == {"persona", "scene"}

    assert not Conversation.objects.exists()
    assert not Turn.objects.exists()


def test_deleting_a_conversation_removes_its_turns(alice):
    conversation = conversation_create(owner=alice, character=make_character(alice))

    conversation_delete(owner=alice, conversation=conversation)

    assert not Conversation.objects.exists()
    assert not Turn.objects.exists()


def test_another_user_cannot_delete_my_conversation(alice, bob):
    conversation = conversation_create(owner=alice, character=make_character(alice))

    with pytest.raises(ConversationNotOwned):
        conversation_delete(owner=bob, conversation=conversation)

    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_the_prompt_preview_opens_with_what_a_new_conversation_stores(alice, bob):
    persona = make_persona(alice, name="Sam")
    character = make_character(
        bob, name="Aria", nickname="Ari", greeting="Hi {{user}}, I'm {{char}}."
    )
    stored = conversation_create(owner=alice, character=character, persona=persona)

    spec, _ = prompt_preview_for_new_conversation(character=character, persona=persona)

    greeting = Turn.objects.get(conversation=stored, role=Role.ASSISTANT, active=True).content
    assert greeting == "Hi Sam, I'm Ari."
    assert spec.history[0].content == greeting


def test_a_blank_scene_opening_previews_as_the_greeting_it_stores(alice, bob):
    character = make_character(bob, name="Aria", greeting="Hello {{user}}.")
    scene = character.scenes.get()
    scene.opening_line = "   "
    scene.save()
    stored = conversation_create(owner=alice, character=character, scene=scene)

    spec, _ = prompt_preview_for_new_conversation(character=character, scene=scene)

    greeting = Turn.objects.get(conversation=stored, role=Role.ASSISTANT, active=True).content
    assert spec.history[0].content == greeting == "Hello User."

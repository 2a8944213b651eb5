"""Starting and deleting conversations."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from characters.models import Character, Persona, Scene
from conversations.exceptions import ConversationNotOwned, ConversationStartInvalid
from conversations.models import Conversation
from conversations.prompt_inputs import opening_texts
from conversations.services.greetings import turns_create_greetings

TITLE_MAX_CHARS = 200


def _start_errors(
    *, owner: Any, character: Character, persona: Persona | None, scene: Scene | None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not character.is_visible_to(owner):
        errors["character"] = ["No such character."]
    if persona is not None and persona.owner_id != owner.pk:
        errors["persona"] = ["No such persona."]
    if scene is not None and scene.character_id != character.pk:
        errors["scene"] = ["This scene belongs to another character."]
    return errors


def conversation_title(character: Character, scene: Scene | None) -> str:
    title = f"{character.name} — {scene.name}" if scene is not None else character.name
    return title[:TITLE_MAX_CHARS]


def conversation_create(
    *,
    owner: Any,
    character: Character,
    persona: Persona | None = None,
    scene: Scene | None = None,
) -> Conversation:
    """Start a conversation with its opening reply (and alternate greetings as swipes).

    Raises `ConversationStartInvalid` when the character is not visible to the owner, the
    persona is not the owner's, or the scene belongs to another character.
    """
    errors = _start_errors(owner=owner, character=character, persona=persona, scene=scene)
    if errors:
        raise ConversationStartInvalid(errors)
    texts = opening_texts(character=character, scene=scene, persona=persona)
    with transaction.atomic():
        conversation = Conversation(
            owner=owner,
            character=character,
            persona=persona,
            scene=scene,
            title=conversation_title(character, scene),
        )
        conversation.full_clean()
        conversation.save()
        turns_create_greetings(conversation=conversation, texts=texts, name=character.name)
    conversation.refresh_from_db(fields=["last_seq", "updated_at"])
    return conversation


def conversation_delete(*, owner: Any, conversation: Conversation) -> None:
    """Delete one of the owner's conversations with all its turns; its running reply stops and
    its open sockets are closed (`conversations.signout`, for every way a conversation goes)."""
    if conversation.owner_id != owner.pk:
        raise ConversationNotOwned("No such conversation.")
    conversation.delete()

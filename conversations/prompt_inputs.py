"""Selectors that turn stored characters, personas, scenes and turns into `PromptInput`s."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from django.conf import settings
from django.db.models import Prefetch

from characters.models import Character, Persona, SampleDialogue, Scene
from conversations.models import Conversation, Role, Turn, TurnStatus
from conversations.prompts import CharacterSpec, HistoryTurn, PersonaSpec, PromptInput, SceneSpec

# The budget trims far below this; the cap only bounds what one query loads.
HISTORY_FETCH_LIMIT = 400
PREVIEW_USER_TEXT = "Hello!"


def character_spec(character: Character) -> CharacterSpec:
    return CharacterSpec(
        name=character.name,
        nickname=character.nickname,
        description=character.description,
        personality=character.personality,
        scenario=character.scenario,
        system_prompt=character.system_prompt,
        post_history_instructions=character.post_history_instructions,
        samples=tuple((s.user_line, s.character_line) for s in character.sample_dialogues.all()),
    )


def persona_spec(persona: Persona | None) -> PersonaSpec:
    if persona is None:
        return PersonaSpec()
    return PersonaSpec(name=persona.name, description=persona.description)


def scene_spec(scene: Scene | None) -> SceneSpec | None:
    if scene is None:
        return None
    return SceneSpec(name=scene.name, description=scene.description)


def prompt_input_for_new_conversation(
    *,
    character: Character,
    persona: Persona | None = None,
    scene: Scene | None = None,
    user_text: str = PREVIEW_USER_TEXT,
) -> PromptInput:
    """What a new conversation's first reply would be built from (the admin preview)."""
    opening = (scene.opening_line if scene and scene.opening_line else "") or character.greeting
    history: list[HistoryTurn] = []
    if opening:
        history.append(HistoryTurn(role="assistant", content=opening, name=character.name))
    history.append(HistoryTurn(role="user", content=user_text, name=persona_spec(persona).name))
    return PromptInput(
        character=character_spec(character),
        persona=persona_spec(persona),
        scene=scene_spec(scene),
        history=tuple(history),
        context_tokens=settings.M2HER_CONTEXT_TOKENS,
        reply_tokens=character.default_max_tokens,
    )


def prompt_input_for_conversation(
    *, conversation_id: UUID, continue_last: bool = False
) -> PromptInput:
    """The prompt input for the next reply: the visible history, newest turn last.

    Failed replies and empty placeholders are left out; a stopped reply counts as said.
    """
    conversation = (
        Conversation.objects.select_related("character", "persona", "scene")
        .prefetch_related(
            Prefetch(
                "character__sample_dialogues",
                queryset=SampleDialogue.objects.order_by("position", "id"),
            )
        )
        .get(pk=conversation_id)
    )
    rows = list(
        Turn.objects.filter(conversation_id=conversation_id, active=True)
        .exclude(status=TurnStatus.FAILED)
        .exclude(content="")
        .order_by("-seq")
        .values_list("role", "name", "content")[:HISTORY_FETCH_LIMIT]
    )
    rows.reverse()
    history = tuple(
        HistoryTurn(role=_role(role), content=content, name=name) for role, name, content in rows
    )
    return PromptInput(
        character=character_spec(conversation.character),
        persona=persona_spec(conversation.persona),
        scene=scene_spec(conversation.scene),
        history=history,
        continue_last=continue_last,
        context_tokens=settings.M2HER_CONTEXT_TOKENS,
        reply_tokens=conversation.character.default_max_tokens,
    )


def _role(value: str) -> Literal["user", "assistant"]:
    return "user" if value == Role.USER else "assistant"

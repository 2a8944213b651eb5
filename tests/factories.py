"""Typed factories for tests. They call services where a service exists."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction

from characters.models import Character, Persona, SampleDialogue, Scene, Visibility
from conversations.lore import LoreEntry
from conversations.models import Conversation, Role, Turn
from conversations.services.conversations import conversation_create
from conversations.services.sequence import conversation_allocate_seq

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


def make_user(username: str | None = None, **extra: Any) -> AbstractUser:
    username = username or f"user{next(_counter)}"
    user: AbstractUser = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD, **extra
    )
    return user


def make_character(
    owner: AbstractUser | None = None,
    *,
    name: str = "Aria",
    visibility: str = Visibility.PUBLIC,
    samples: int = 1,
    scenes: int = 1,
    **fields: Any,
) -> Character:
    owner = owner or make_user()
    n = next(_counter)
    character = Character(
        owner_id=owner.pk,
        slug=fields.pop("slug", f"{name.lower().replace(' ', '-')}-{n}"),
        name=name,
        tagline=fields.pop("tagline", f"{name} the test character"),
        description=fields.pop("description", "{{char}} is a friendly guide who helps {{user}}."),
        personality=fields.pop("personality", "Warm, curious, a little teasing."),
        scenario=fields.pop("scenario", "A quiet library after closing time."),
        greeting=fields.pop("greeting", "*looks up from a book* Oh, hello {{user}}!"),
        visibility=visibility,
        **fields,
    )
    character.full_clean()
    character.save()
    for i in range(samples):
        SampleDialogue.objects.create(
            character=character,
            position=i,
            user_line=f"What do you like, {{{{char}}}}? ({i})",
            character_line=f"*smiles* Stories, {{{{user}}}}. ({i})",
        )
    for i in range(scenes):
        Scene.objects.create(
            character=character,
            position=i,
            name=f"Library {i}",
            description="Tall shelves, a single lamp, rain on the windows.",
        )
    return character


def make_persona(owner: AbstractUser, *, name: str = "Sam", **fields: Any) -> Persona:
    persona = Persona(
        owner_id=owner.pk,
        name=name,
        description=fields.pop("description", "A traveller."),
        **fields,
    )
    persona.full_clean()
    persona.save()
    return persona


def make_conversation(
    owner: AbstractUser,
    character: Character | None = None,
    *,
    persona: Persona | None = None,
    scene: Scene | None = None,
) -> Conversation:
    """A conversation started through the service, with its greeting turns."""
    character = character or make_character(owner)
    return conversation_create(owner=owner, character=character, persona=persona, scene=scene)


def make_turns(conversation: Conversation, count: int, *, text: str = "line") -> list[Turn]:
    """Append `count` active turns, alternating user and assistant; a reply's parent is the
    user turn before it. Bulk-inserted, so thousands are cheap."""
    with transaction.atomic():
        first = conversation_allocate_seq(conversation_id=conversation.pk, count=count)
        seqs = range(first, first + count)
        users = Turn.objects.bulk_create(
            Turn(
                conversation=conversation,
                seq=seq,
                updated_seq=seq,
                role=Role.USER,
                name="Sam",
                content=f"{text} {seq}",
            )
            for i, seq in enumerate(seqs)
            if i % 2 == 0
        )
        by_seq = {turn.seq: turn for turn in users}
        replies = Turn.objects.bulk_create(
            Turn(
                conversation=conversation,
                seq=seq,
                updated_seq=seq,
                parent=by_seq[seq - 1],
                role=Role.ASSISTANT,
                name=conversation.character.name,
                content=f"{text} {seq}",
            )
            for i, seq in enumerate(seqs)
            if i % 2 == 1
        )
    conversation.refresh_from_db(fields=["last_seq"])
    return sorted([*users, *replies], key=lambda turn: turn.seq)


def make_session(
    user: AbstractUser, backend: str = "django.contrib.auth.backends.ModelBackend"
) -> SessionBase:
    """A stored session that signs `user` in through `backend`, as `login` leaves it."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    session: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = backend
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session


def make_session_cookie(user: AbstractUser) -> str:
    """A logged-in session for `user`, as the Cookie header value a browser would send."""
    from django.conf import settings

    return f"{settings.SESSION_COOKIE_NAME}={make_session(user).session_key}"


def session_key_of(user: AbstractUser) -> str:
    """The key of a new logged-in session for `user`."""
    return make_session_cookie(user).split("=", 1)[1]


_lore_ids = itertools.count(1)


def lore_entry(*keys: str, content: str = "", **fields: Any) -> LoreEntry:
    """A lorebook entry as activation sees it (no database row)."""
    n = next(_lore_ids)
    return LoreEntry(id=n, keys=keys, content=content or f"lore {n}", **fields)

"""Typed factories for tests. They call services where a service exists."""

from __future__ import annotations

import itertools
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from characters.models import Character, Persona, SampleDialogue, Scene, Visibility

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
        owner=owner,
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
        owner=owner, name=name, description=fields.pop("description", "A traveller."), **fields
    )
    persona.full_clean()
    persona.save()
    return persona

"""Writes of personas. A user with personas always has exactly one default."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from characters.exceptions import PersonaLimitReached, PersonaNotOwned
from characters.models import Persona

PERSONAS_PER_USER = 50


def _lock_personas(owner: Any) -> list[Persona]:
    # Locking every persona row of the owner serialises concurrent default switches, so the
    # partial unique index (one default per user) is never raced into an IntegrityError.
    return list(Persona.objects.select_for_update().filter(owner_id=owner.pk).order_by("pk"))


def _check_owner(*, owner: Any, persona: Persona) -> None:
    if persona.owner_id != owner.pk:
        raise PersonaNotOwned("No such persona.")


def persona_create(
    *, owner: Any, name: str, description: str = "", is_default: bool = False
) -> Persona:
    """Create a persona; the first one, or one asked to be, becomes the default."""
    with transaction.atomic():
        existing = _lock_personas(owner)
        if len(existing) >= PERSONAS_PER_USER:
            raise PersonaLimitReached(f"You can keep at most {PERSONAS_PER_USER} personas.")
        make_default = is_default or not any(p.is_default for p in existing)
        persona = Persona(owner=owner, name=name, description=description, is_default=False)
        persona.full_clean()
        if make_default:
            Persona.objects.filter(owner_id=owner.pk, is_default=True).update(is_default=False)
            persona.is_default = True
        persona.save()
    return persona


def persona_update(*, owner: Any, persona: Persona, name: str, description: str) -> Persona:
    """Rename or redescribe one of the owner's personas."""
    _check_owner(owner=owner, persona=persona)
    persona.name = name
    persona.description = description
    persona.full_clean()
    persona.save(update_fields=["name", "description"])
    return persona


def persona_set_default(*, owner: Any, persona: Persona) -> Persona:
    """Make this persona the owner's default, switching the flag in one transaction."""
    _check_owner(owner=owner, persona=persona)
    with transaction.atomic():
        _lock_personas(owner)
        Persona.objects.filter(owner_id=owner.pk, is_default=True).exclude(pk=persona.pk).update(
            is_default=False
        )
        Persona.objects.filter(pk=persona.pk).update(is_default=True)
    persona.is_default = True
    return persona


def persona_delete(*, owner: Any, persona: Persona) -> None:
    """Delete a persona; if it was the default, the oldest remaining one takes over."""
    _check_owner(owner=owner, persona=persona)
    with transaction.atomic():
        _lock_personas(owner)
        was_default = Persona.objects.filter(pk=persona.pk, is_default=True).exists()
        persona.delete()
        if was_default:
            successor = (
                Persona.objects.filter(owner_id=owner.pk).order_by("created_at", "pk").first()
            )
            if successor is not None:
                Persona.objects.filter(pk=successor.pk).update(is_default=True)

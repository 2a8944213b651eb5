"""Reads of characters and personas, scoped to the asking user."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import Http404

from characters.models import Character, Persona, Visibility

SEARCH_MAX_CHARS = 100
# PostgreSQL refuses NUL in any text parameter (a DataError, so a 500). No name, slug or tag
# can hold one there, so text holding NUL matches nothing on every database.
NUL = "\x00"

# Tags are a JSON list; matching one element (not the serialised list) needs the database's
# own JSON table function. SQLite stores non-ASCII as \u escapes, so LIKE on the text fails.
_TAG_MATCH_SQL = {
    "sqlite": (
        'EXISTS (SELECT 1 FROM json_each("characters_character"."tags") AS t '
        "WHERE t.type = 'text' AND lower(t.value) LIKE %s ESCAPE '\\')"
    ),
    "postgresql": (
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text("
        'CASE WHEN jsonb_typeof("characters_character"."tags") = \'array\' '
        'THEN "characters_character"."tags" ELSE \'[]\'::jsonb END) AS t(value) '
        "WHERE lower(t.value) LIKE %s ESCAPE '\\')"
    ),
}


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _tag_contains(text: str) -> Q:
    sql = _TAG_MATCH_SQL.get(connection.vendor)
    if sql is None:
        return Q(tags__icontains=text)
    # The SQL is a constant; the user's text only ever travels as a bound parameter.
    return Q(RawSQL(sql, [_like_pattern(text)], output_field=BooleanField()))  # noqa: S611


def character_list_visible_to(*, user: Any, query: str = "") -> QuerySet[Character]:
    """The gallery: public characters plus the user's own; `query` matches name or a tag."""
    visible = Q(visibility=Visibility.PUBLIC)
    if getattr(user, "is_authenticated", False):
        visible |= Q(owner_id=user.pk)
    characters = Character.objects.filter(visible)
    query = query.strip()[:SEARCH_MAX_CHARS]
    if NUL in query:
        return Character.objects.none()
    if query:
        characters = characters.filter(Q(name__icontains=query) | _tag_contains(query))
    return characters.order_by("name", "pk")


def character_get_visible(*, slug: str, user: Any) -> Character:
    """Return a public or unlisted character, or the user's own private one; else a 404."""
    if NUL in slug:
        raise Http404("No such character.")
    character = (
        Character.objects.select_related("owner")
        .prefetch_related("scenes")
        .filter(slug=slug)
        .first()
    )
    if character is None or not character.is_visible_to(user):
        raise Http404("No such character.")
    return character


def persona_list_for_user(*, user: Any) -> QuerySet[Persona]:
    """The user's personas, the default first."""
    return Persona.objects.filter(owner_id=user.pk).order_by("-is_default", "name", "pk")


def persona_get_for_user(*, persona_id: int | str, user: Any) -> Persona:
    """Return the user's persona; a missing one and another user's one are both a 404."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such persona.")
    try:
        return Persona.objects.get(pk=persona_id, owner_id=user.pk)
    except (Persona.DoesNotExist, ValidationError, ValueError, TypeError):
        raise Http404("No such persona.") from None


def persona_default_for_user(*, user: Any) -> Persona | None:
    """The user's default persona, if any."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Persona.objects.filter(owner_id=user.pk, is_default=True).first()

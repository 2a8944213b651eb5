"""Reads of characters and personas, scoped to the asking user."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, F, Func, Q, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.lookups import Contains
from django.http import Http404

from characters.models import Character, Persona, Visibility

SEARCH_MAX_CHARS = 100
# PostgreSQL refuses NUL in any text parameter (a DataError, so a 500). No name, slug or tag
# can hold one there, so text holding NUL matches nothing on every database.
NUL = "\x00"

# Search folds case in the database, on both sides of the match. SQLite's lower() and LIKE
# fold only ASCII ("Фэнтези" never met "фэнтези"), so SQLite connections get Python's
# str.casefold as a SQL function. PostgreSQL's lower() and upper() map every script (by the
# database's UTF-8 ctype) but it has no casefold() before version 18; lower(upper()) folds
# both ways, so a final sigma "ς" meets "Σ" and "σ" as it does under casefold.
SQLITE_CASEFOLD = "companion_casefold"


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def register_casefold(sender: object, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """Give a new SQLite connection the casefold function (connected in the app's `ready`,
    before any connection is made)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_CASEFOLD, 1, _casefold, deterministic=True)


class Casefold(Func):
    """Text with its case folded, for a case-insensitive match in every script."""

    template = "lower(upper(%(expressions)s))"
    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = f"{SQLITE_CASEFOLD}(%(expressions)s)"
        return self.as_sql(compiler, connection, template=template, **extra)


# Tags are a JSON list; matching one element (not the serialised list) needs the database's
# own JSON table function. SQLite stores non-ASCII as \u escapes, so LIKE on the text fails.
_TAG_MATCH_SQL = {
    "sqlite": (
        'EXISTS (SELECT 1 FROM json_each("characters_character"."tags") AS t '
        "WHERE t.type = 'text' AND companion_casefold(t.value) LIKE companion_casefold(%s) "
        "ESCAPE '\\')"
    ),
    "postgresql": (
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text("
        'CASE WHEN jsonb_typeof("characters_character"."tags") = \'array\' '
        'THEN "characters_character"."tags" ELSE \'[]\'::jsonb END) AS t(value) '
        "WHERE lower(upper(t.value)) LIKE lower(upper(%s)) ESCAPE '\\')"
    ),
}


def _like_pattern(text: str) -> str:
    # Case is folded by the SQL, which leaves the escapes and wildcards as they are.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _name_contains(text: str) -> Q:
    return Q(Contains(Casefold(F("name")), Casefold(Value(text))))


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
        characters = characters.filter(_name_contains(query) | _tag_contains(query))
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

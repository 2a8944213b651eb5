"""JSON API of characters: the gallery set as data."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from characters.models import Character
from characters.selectors import SEARCH_MAX_CHARS, character_list_visible_to
from companion.jsonapi import api_view

API_LIST_MAX = 200


def character_json(character: Character) -> dict[str, Any]:
    return {
        "slug": character.slug,
        "name": character.name,
        "tagline": character.tagline,
        "avatar_url": character.avatar.url if character.avatar else None,
        "tags": character.tags if isinstance(character.tags, list) else [],
    }


@api_view(["GET"])
def character_list(request: HttpRequest) -> HttpResponse:
    """GET /api/characters/?q= : the characters I can browse (public and my own), by name.

    `q` matches a name or a tag, case-insensitively; as on the gallery page only its first 100
    letters count. At most 200 characters are returned.
    """
    query = request.GET.get("q", "")[:SEARCH_MAX_CHARS]
    characters = character_list_visible_to(user=request.user, query=query)
    fields = ("slug", "name", "tagline", "avatar", "tags")
    rows = characters.only(*fields)[:API_LIST_MAX]
    return JsonResponse({"characters": [character_json(c) for c in rows]})

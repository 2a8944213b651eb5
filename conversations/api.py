"""JSON API of conversations: start one, page through its turns.

Session-authenticated; POSTs need Django's CSRF token in the `X-CSRFToken` header.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from characters.forms import ConversationStartForm
from characters.models import Character
from characters.selectors import character_get_visible, persona_default_for_user
from companion.jsonapi import ApiError, api_view, form_errors, json_object_body
from conversations.exceptions import ConversationStartInvalid
from conversations.models import Conversation
from conversations.selectors import (
    TURN_PAGE_DEFAULT,
    conversation_get_for_user,
    turn_page_for_conversation,
)
from conversations.services.conversations import conversation_create

MAX_DB_INT = 2**63 - 1
SLUG_MAX_CHARS = 80


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DB_INT


def _start_form(payload: dict[str, Any], user: Any) -> ConversationStartForm:
    """Check the types of the body, then resolve it through the page's own start form."""
    errors: dict[str, list[str]] = {}
    slug = payload.get("character")
    if not isinstance(slug, str) or not slug or len(slug) > SLUG_MAX_CHARS:
        errors["character"] = ["Give the character's slug (a string)."]
    for field in ("persona", "scene"):
        if payload.get(field) is not None and not _is_id(payload[field]):
            errors[field] = [f"Give a {field} id (a positive integer) or null."]
    if errors:
        raise ApiError(errors)
    try:
        character: Character = character_get_visible(slug=str(slug), user=user)
    except Http404:
        raise ApiError({"character": ["No such character."]}) from None
    persona = payload.get("persona")
    if "persona" not in payload:
        default = persona_default_for_user(user=user)
        persona = default.pk if default is not None else None
    data = {"persona": persona or "", "scene": payload.get("scene") or ""}
    form = ConversationStartForm(data, character=character, user=user)
    if not form.is_valid():
        raise ApiError(form_errors(form.errors))
    return form


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "url": conversation.get_absolute_url(),
        "title": conversation.title,
        "character": conversation.character.slug,
        "persona": conversation.persona_id,
        "scene": conversation.scene_id,
        "created_at": conversation.created_at,
    }


@api_view(["POST"])
def conversation_start(request: HttpRequest) -> HttpResponse:
    """POST /api/conversations/ {character: slug, persona?: id|null, scene?: id|null} -> 201.

    An absent `persona` means my default persona; `null` means none. Bad input is a 400 with
    `{"errors": {field: [messages]}}`.
    """
    form = _start_form(json_object_body(request), request.user)
    try:
        conversation = conversation_create(
            owner=request.user, character=form.character, **form.cleaned_data
        )
    except ConversationStartInvalid as exc:
        raise ApiError(exc.errors) from None
    return JsonResponse(conversation_json(conversation), status=201)


class TurnPageParams(forms.Form):
    before_seq = forms.IntegerField(required=False, min_value=1, max_value=MAX_DB_INT)
    limit = forms.IntegerField(required=False, min_value=1, max_value=MAX_DB_INT)


@api_view(["GET"])
def turn_list(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """GET /api/conversations/<id>/turns/?before_seq=N&limit=M : a page of the transcript.

    The page holds the newest `limit` (default 50, at most 200) active turns with `seq` below
    `before_seq`, in ascending `seq` order; `has_more` says whether older ones exist. Assistant
    turns add `candidate_index` (1-based) and `candidate_count` among their swipes.
    """
    conversation = conversation_get_for_user(conversation_id=conversation_id, user=request.user)
    params = TurnPageParams(request.GET)
    if not params.is_valid():
        raise ApiError(form_errors(params.errors))
    page = turn_page_for_conversation(
        conversation=conversation,
        before_seq=params.cleaned_data["before_seq"],
        limit=params.cleaned_data["limit"] or TURN_PAGE_DEFAULT,
    )
    return JsonResponse({"turns": page.turns, "has_more": page.has_more})

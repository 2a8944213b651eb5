"""The conversation page: the newest turns rendered on the server, then kept live by chat.js."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from conversations.models import Conversation
from conversations.prompts import DEFAULT_PERSONA_NAME
from conversations.selectors import conversation_get_for_user, turn_page_for_conversation
from conversations.services.sequence import conversation_current_seq

# Enough to fill a tall screen; older turns load through the JSON API as the user scrolls up.
CHAT_PAGE_TURNS = 50


def _client_config(conversation: Conversation, *, last_seq: int, has_more: bool) -> dict[str, Any]:
    return {
        "conversation_id": str(conversation.pk),
        "ws_path": f"/ws/conversations/{conversation.pk}/",
        "turns_url": reverse("api:turns", kwargs={"conversation_id": conversation.pk}),
        "last_seq": last_seq,
        "has_more": has_more,
        "page_size": CHAT_PAGE_TURNS,
        "max_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "user_name": conversation.persona.name if conversation.persona else DEFAULT_PERSONA_NAME,
        "character_name": conversation.character.name,
    }


@require_GET
@never_cache
@login_required
def conversation_detail(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    """GET /chats/<uuid>/ : one of my conversations; someone else's is a 404."""
    conversation = conversation_get_for_user(conversation_id=conversation_id, user=request.user)
    # Read before the turns: the client syncs from here, so a change in between is sent again
    # rather than missed.
    try:
        last_seq = conversation_current_seq(conversation_id=conversation.pk)
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None  # deleted a moment ago
    page = turn_page_for_conversation(conversation=conversation, limit=CHAT_PAGE_TURNS)
    context = {
        "conversation": conversation,
        "character": conversation.character,
        "persona": conversation.persona,
        "scene": conversation.scene,
        "turns": page.turns,
        "has_more": page.has_more,
        "chat_config": _client_config(conversation, last_seq=last_seq, has_more=page.has_more),
    }
    return render(request, "conversations/detail.html", context)

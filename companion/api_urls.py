"""The JSON API (session-authenticated, CSRF-protected)."""

from django.urls import path

from characters import api as characters_api
from conversations import api as conversations_api

app_name = "api"

urlpatterns = [
    path("characters/", characters_api.character_list, name="characters"),
    path("conversations/", conversations_api.conversation_start, name="conversations"),
    path(
        "conversations/<uuid:conversation_id>/turns/",
        conversations_api.turn_list,
        name="turns",
    ),
]

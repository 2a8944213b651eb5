"""Read-mostly admin for operators: conversations with their usage, and their turns.

Superusers see every conversation; any other staff user sees only their own (and needs the
model permissions to see even those). Turns are written by the chat services only, and leave
the database only with their conversation: deleting a conversation (or its owner, or its
character) here takes its turns with it, but no turn is deleted on its own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from conversations.models import Conversation, Turn

# Django's classes are generic only in the type stubs, so parametrise them for the checker alone.
if TYPE_CHECKING:
    _ConversationModelAdmin = admin.ModelAdmin[Conversation]
    _TurnModelAdmin = admin.ModelAdmin[Turn]
else:
    _ConversationModelAdmin = _TurnModelAdmin = admin.ModelAdmin


def _owns(request: HttpRequest, owner_id: int) -> bool:
    return request.user.is_superuser or owner_id == request.user.pk


@admin.register(Conversation)
class ConversationAdmin(_ConversationModelAdmin):
    list_display = (
        "__str__",
        "owner",
        "character",
        "turn_count",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost",
        "updated_at",
    )
    list_select_related = ("owner", "character")
    list_filter = ("created_at", "updated_at")
    search_fields = ("title", "character__name", "owner__username")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "title",
        "owner",
        "character",
        "persona",
        "scene",
        "last_seq",
        "created_at",
        "updated_at",
        "turns_link",
    )
    readonly_fields = tuple(f for f in fields if f != "title")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset = (
            super()
            .get_queryset(request)
            .annotate(
                turns_total=Count("turns"),
                prompt_tokens_total=Sum("turns__prompt_tokens"),
                completion_tokens_total=Sum("turns__completion_tokens"),
                total_tokens_total=Sum("turns__total_tokens"),
                cost_total=Sum("turns__cost_usd"),
            )
        )
        if request.user.is_superuser:
            return queryset
        return queryset.filter(owner_id=request.user.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations start from a character page, which writes the greeting

    def has_view_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or _owns(request, obj.owner_id))

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or _owns(request, obj.owner_id))

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or _owns(request, obj.owner_id))

    @admin.display(description="Turns", ordering="turns_total")
    def turn_count(self, obj: Any) -> int:
        return int(obj.turns_total)

    @admin.display(description="Prompt tokens", ordering="prompt_tokens_total")
    def prompt_tokens(self, obj: Any) -> int:
        return int(obj.prompt_tokens_total or 0)

    @admin.display(description="Completion tokens", ordering="completion_tokens_total")
    def completion_tokens(self, obj: Any) -> int:
        return int(obj.completion_tokens_total or 0)

    @admin.display(description="Total tokens", ordering="total_tokens_total")
    def total_tokens(self, obj: Any) -> int:
        return int(obj.total_tokens_total or 0)

    @admin.display(description="Cost (USD)", ordering="cost_total")
    def cost(self, obj: Any) -> str:
        total: Decimal | None = obj.cost_total
        return "—" if total is None else f"${total:.4f}"

    @admin.display(description="Turns")
    def turns_link(self, obj: Conversation) -> str:
        url = reverse("admin:conversations_turn_changelist")
        return format_html(
            '<a href="{}?conversation__id__exact={}">{} turns</a>',
            url,
            obj.pk,
            obj.turns.count(),
        )


@admin.register(Turn)
class TurnAdmin(_TurnModelAdmin):
    """Turns are read-only here: editing one would bypass the event sequence clients sync by."""

    list_display = (
        "conversation",
        "seq",
        "role",
        "name",
        "short_content",
        "status",
        "active",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "error_code",
        "created_at",
    )
    list_select_related = ("conversation",)
    list_filter = ("status", "role", "active", "error_code")
    search_fields = ("content", "name")
    ordering = ("conversation", "seq")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Turn]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(conversation__owner_id=request.user.pk)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Turn | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Turn | None = None) -> bool:
        """Asked about no turn: no (no delete action, no delete right on the admin index).

        Asked about one turn, this is Django's delete collector checking a turn that deleting a
        conversation, its owner or its character would take along: yes, because a turn is only
        ever collected through its conversation (`parent` is SET_NULL), and the collector asks
        the conversation's admin about that conversation in the same pass. Answering no here
        made every such delete a 403. A turn's own delete page would ask the same question, so
        `delete_view` refuses by itself: the chat hides a turn (`turn_delete`) rather than
        delete it, and an admin delete would leave a gap in the event sequence clients sync by.
        """
        return obj is not None

    def has_view_permission(self, request: HttpRequest, obj: Turn | None = None) -> bool:
        allowed = super().has_view_permission(request, obj)
        return allowed and (obj is None or _owns(request, obj.conversation.owner_id))

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        raise PermissionDenied("Turns are deleted only with their conversation.")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # No "Delete" link to the refused page above.
        context = {**(extra_context or {}), "show_delete": False}
        return super().change_view(request, object_id, form_url, context)

    @admin.display(description="Content")
    def short_content(self, obj: Turn) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

"""My conversations: the list, and deleting one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from conversations.selectors import conversation_get_for_user, conversation_list_for_user
from conversations.services.conversations import conversation_delete

LIST_PAGE_SIZE = 20


@login_required
@require_http_methods(["GET", "POST"])
def conversation_list(request: HttpRequest) -> HttpResponse:
    """GET lists my conversations; POST with `delete=<id>` deletes one of them."""
    if request.method == "POST":
        conversation = conversation_get_for_user(
            conversation_id=request.POST.get("delete", ""), user=request.user
        )
        conversation_delete(owner=request.user, conversation=conversation)
        messages.success(request, f"Deleted “{conversation.title or conversation.character}”.")
        return redirect("conversations:list")
    conversations = conversation_list_for_user(user=request.user)
    page = Paginator(conversations, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "conversations/list.html", {"page": page})

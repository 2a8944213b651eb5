"""Character card pages: import a card as a private character, download a character's card."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from characters.card_forms import card_import_from_request
from characters.cards.exporting import FORMATS, card_export
from characters.cards.uploads import capped_upload
from characters.selectors import character_get_visible


@login_required
@require_http_methods(["GET", "POST"])
@capped_upload
def card_import(request: HttpRequest) -> HttpResponse:
    """Upload a card; it becomes a private character of the user's own."""
    form, result = card_import_from_request(request)
    if result is not None:
        messages.success(request, f"Imported {result.character.name} as a private character.")
        for warning in result.warnings:
            messages.warning(request, warning)
        return redirect(result.character)
    return render(request, "cards/import.html", {"form": form}, status=400 if form.errors else 200)


@require_GET
def card_download(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    """The character as a V3 card file, for anyone who may see the character."""
    if fmt not in FORMATS:
        raise Http404("No such card format.")
    character = character_get_visible(slug=slug, user=request.user)
    card = card_export(character=character, fmt=fmt)
    # Only the owner can upload the avatar again; a visitor just gets the card.
    if character.user_can_edit(request.user):
        for warning in card.warnings:
            messages.warning(request, warning)
    response = HttpResponse(card.content, content_type=card.content_type)
    # Slugs are ASCII letters, digits, hyphens and underscores: safe in a quoted filename.
    response["Content-Disposition"] = f'attachment; filename="{card.filename}"'
    return response

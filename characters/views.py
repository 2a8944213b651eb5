"""Pages: the gallery, a character's page (start a conversation), the account and personas."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from characters import selectors, services
from characters.exceptions import PersonaLimitReached
from characters.forms import ConversationStartForm, PersonaForm, UsagePeriodForm
from conversations.exceptions import ConversationStartInvalid
from conversations.selectors import usage_for_user, usage_months_for_user
from conversations.services.conversations import conversation_create

GALLERY_PAGE_SIZE = 24


def gallery(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "")[: selectors.SEARCH_MAX_CHARS]
    characters = selectors.character_list_visible_to(user=request.user, query=query)
    page = Paginator(characters, GALLERY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "characters/gallery.html", {"page": page, "query": query})


@require_http_methods(["GET", "POST"])
def character_detail(request: HttpRequest, slug: str) -> HttpResponse:
    character = selectors.character_get_visible(slug=slug, user=request.user)
    if request.method == "POST" and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    data = request.POST if request.method == "POST" else None
    form = ConversationStartForm(data, character=character, user=request.user)
    if form.is_valid():
        try:
            conversation = conversation_create(
                owner=request.user, character=character, **form.cleaned_data
            )
        except ConversationStartInvalid as exc:
            for field, errors in exc.errors.items():
                for error in errors:
                    form.add_error(None if field == "character" else field, error)
        else:
            return redirect(conversation.get_absolute_url())
    return render(request, "characters/detail.html", {"character": character, "form": form})


@login_required
def account(request: HttpRequest) -> HttpResponse:
    period = UsagePeriodForm(request.GET or None, months=usage_months_for_user(user=request.user))
    context = {
        "personas": selectors.persona_list_for_user(user=request.user),
        "period": period,
        "usage": usage_for_user(user=request.user, month=period.selected_month()),
    }
    return render(request, "account/overview.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def persona_create(request: HttpRequest) -> HttpResponse:
    form = PersonaForm(request.POST or None)
    if form.is_valid():
        try:
            services.persona_create(owner=request.user, **form.cleaned_data)
        except PersonaLimitReached as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Persona created.")
            return redirect("characters:account")
    return render(request, "account/persona_form.html", {"form": form, "persona": None})


@login_required
@require_http_methods(["GET", "POST"])
def persona_edit(request: HttpRequest, persona_id: int) -> HttpResponse:
    persona = selectors.persona_get_for_user(persona_id=persona_id, user=request.user)
    initial = {"name": persona.name, "description": persona.description}
    form = PersonaForm(request.POST or None, initial=initial, editing=True)
    if form.is_valid():
        services.persona_update(owner=request.user, persona=persona, **form.cleaned_data)
        messages.success(request, "Persona saved.")
        return redirect("characters:account")
    return render(request, "account/persona_form.html", {"form": form, "persona": persona})


@login_required
@require_http_methods(["GET", "POST"])
def persona_delete(request: HttpRequest, persona_id: int) -> HttpResponse:
    persona = selectors.persona_get_for_user(persona_id=persona_id, user=request.user)
    if request.method == "POST":
        services.persona_delete(owner=request.user, persona=persona)
        messages.success(request, f"Persona “{persona.name}” deleted.")
        return redirect("characters:account")
    return render(request, "account/persona_confirm_delete.html", {"persona": persona})


@login_required
@require_POST
def persona_make_default(request: HttpRequest, persona_id: int) -> HttpResponse:
    persona = selectors.persona_get_for_user(persona_id=persona_id, user=request.user)
    services.persona_set_default(owner=request.user, persona=persona)
    messages.success(request, f"“{persona.name}” is now your default persona.")
    return redirect("characters:account")

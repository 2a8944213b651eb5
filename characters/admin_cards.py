"""Admin for card import/export and lorebooks, owner-scoped like the character admin.

`CardAdminMixin` adds to the character admin an "Import card" page and "Export as card"
actions; `LorebookInline` shows a character's book settings; `LorebookAdmin` edits the
entries. Creators reach only the books of characters they may edit.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from characters.admin_fields import CardTextField, card_text_form
from characters.card_forms import card_import_from_request
from characters.cards.exporting import CONTENT_TYPES, CardFile, card_export
from characters.cards.lorebooks import too_many_keys
from characters.cards.uploads import capped_upload
from characters.models import Character, Lorebook, LorebookEntry

if TYPE_CHECKING:
    _BookAdmin = admin.ModelAdmin[Lorebook]
    _EntryInline = admin.StackedInline[LorebookEntry, Lorebook]
    _BookInline = admin.StackedInline[Lorebook, Character]
    _CharacterAdminBase = admin.ModelAdmin[Character]
    _EntryForm = forms.ModelForm[LorebookEntry]
    _EntryFormSet = BaseInlineFormSet[LorebookEntry, Lorebook, _EntryForm]
else:
    _BookAdmin = _CharacterAdminBase = admin.ModelAdmin
    _EntryInline = _BookInline = admin.StackedInline
    _EntryForm = forms.ModelForm
    _EntryFormSet = BaseInlineFormSet

IMPORT_TEMPLATE = "cards/admin/import.html"
MAX_KEYS = 100


class KeyListField(forms.CharField):
    """Keys edited one per line (a regex key may itself contain commas)."""

    widget = forms.Textarea(attrs={"rows": 2})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        keys = [line.strip() for line in (super().to_python(value) or "").splitlines()]
        keys = [key for key in keys if key]
        if len(keys) > MAX_KEYS:
            raise forms.ValidationError(f"At most {MAX_KEYS} keys.")
        return keys


class LorebookEntryForm(_EntryForm):
    keys = KeyListField(help_text="One per line. /pattern/flags is a regex if 'use regex' is on.")
    secondary_keys = KeyListField(help_text="One per line; used when 'selective' is on.")

    class Meta:
        model = LorebookEntry
        fields = (
            "name",
            "keys",
            "secondary_keys",
            "content",
            "enabled",
            "constant",
            "selective",
            "case_sensitive",
            "use_regex",
            "insertion_order",
            "priority",
            "position",
            "comment",
        )
        field_classes = dict.fromkeys(("name", "content", "comment"), CardTextField)


class LorebookEntryFormSet(_EntryFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        keys = sum(len(data.get("keys", [])) + len(data.get("secondary_keys", [])) for data in kept)
        if problem := too_many_keys(keys):
            raise forms.ValidationError(problem)


def _may_edit_character(request: HttpRequest, character: Character | None) -> bool:
    return character is None or character.user_can_edit(request.user)


class LorebookEntryInline(_EntryInline):
    model = LorebookEntry
    form = LorebookEntryForm
    formset = LorebookEntryFormSet
    extra = 0
    ordering = ("insertion_order", "id")
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 3})}}


@admin.register(Lorebook)
class LorebookAdmin(_BookAdmin):
    form = card_text_form(Lorebook, ("name", "description"))
    inlines = [LorebookEntryInline]
    list_display = ("__str__", "character", "recursive_scanning", "token_budget")
    list_select_related = ("character",)
    search_fields = ("name", "character__name")
    fields = [
        "character",
        "name",
        "description",
        "scan_depth",
        "token_budget",
        "recursive_scanning",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lorebook]:
        books = super().get_queryset(request)
        if request.user.is_superuser:
            return books
        return books.filter(character__owner_id=request.user.pk)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "character" and not request.user.is_superuser:
            kwargs["queryset"] = Character.objects.filter(owner_id=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _may_edit(self, request: HttpRequest, obj: Lorebook | None) -> bool:
        return obj is None or obj.character.user_can_edit(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Lorebook | None = None) -> bool:
        return super().has_view_permission(request, obj) and self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Lorebook | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Lorebook | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._may_edit(request, obj)


class LorebookInline(_BookInline):
    """The book's settings on the character page; its entries are edited on the book's page."""

    model = Lorebook
    form = card_text_form(Lorebook, ("name",))
    fields = ("name", "scan_depth", "token_budget", "recursive_scanning")
    extra = 0
    max_num = 1
    show_change_link = True
    verbose_name = "lorebook (save, then follow “Change” to edit its entries)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_add_permission(request, obj) and _may_edit_character(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and _may_edit_character(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_edit_character(request, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and _may_edit_character(request, obj)


def _export(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Character], fmt: str
) -> HttpResponse | None:
    characters = list(queryset)
    if not characters:
        modeladmin.message_user(
            request, "None of these characters can be exported.", messages.WARNING
        )
        return None
    cards = [card_export(character=character, fmt=fmt) for character in characters]
    # The download replaces no page, so these show on the creator's next admin page.
    for card in cards:
        for warning in card.warnings:
            modeladmin.message_user(request, warning, messages.WARNING)
    return _export_response(cards, fmt)


def _export_response(cards: list[CardFile], fmt: str) -> HttpResponse:
    if len(cards) == 1:
        card = cards[0]
        response = HttpResponse(card.content, content_type=card.content_type)
        filename = card.filename
    else:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for card in cards:
                archive.writestr(card.filename, card.content)
        response = HttpResponse(out.getvalue(), content_type=CONTENT_TYPES["charx"])
        filename = f"character-cards-{fmt}.zip"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@admin.action(description="Export as V3 PNG card", permissions=["view"])
def export_cards_png(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Character]) -> Any:
    return _export(modeladmin, request, queryset, "png")


@admin.action(description="Export as V3 JSON card", permissions=["view"])
def export_cards_json(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Character]) -> Any:
    return _export(modeladmin, request, queryset, "json")


@admin.action(description="Export as CHARX archive", permissions=["view"])
def export_cards_charx(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Character]) -> Any:
    return _export(modeladmin, request, queryset, "charx")


CARD_ACTIONS = (export_cards_png, export_cards_json, export_cards_charx)


class CardAdminMixin(_CharacterAdminBase):
    """Mix into the character admin: an import page and export actions."""

    change_list_template = "cards/admin/change_list.html"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if actions is not None and self.has_view_permission(request):
            for action in CARD_ACTIONS:
                found = self.get_action(action)
                if found is not None:
                    actions[found[1]] = found
        return actions

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(capped_upload(self.import_card_view))
        import_card = path("import-card/", view, name="characters_character_import_card")
        return [import_card, *super().get_urls()]

    def import_card_view(self, request: HttpRequest) -> HttpResponse:
        """Import a card as a new private character of the signed-in creator."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form, result = card_import_from_request(request)
        if result is not None:
            self.message_user(request, f"Imported {result.character.name}.", messages.SUCCESS)
            for warning in result.warnings:
                self.message_user(request, warning, messages.WARNING)
            url = reverse("admin:characters_character_change", args=[result.character.pk])
            return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import a character card",
            "opts": self.opts,
            "form": form,
        }
        status = 400 if form.errors else 200
        return TemplateResponse(request, IMPORT_TEMPLATE, context, status=status)

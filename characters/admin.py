"""Owner-scoped admin for creators: characters with sample dialogues and scenes, and a read-only
preview of the prompt a new conversation would send.

A creator (staff, in the "Creators" group) lists, sees and edits only their own characters;
objects outside `get_queryset` get Django's "doesn't exist" redirect. Superusers see everything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from characters.admin_cards import CardAdminMixin, LorebookInline
from characters.models import MEDIUM_TEXT, Character, Persona, SampleDialogue, Scene
from characters.selectors import persona_default_for_user
from conversations.models import Conversation, Turn
from conversations.prompt_inputs import PREVIEW_USER_TEXT, prompt_preview_for_new_conversation
from conversations.prompts import build_prompt
from conversations.tokens import CALL_OVERHEAD_TOKENS, default_estimator

AnyUser = AbstractBaseUser | AnonymousUser
# Django's classes are generic only in the type stubs, so parametrise them for the checker alone.
if TYPE_CHECKING:
    _CharacterForm = forms.ModelForm[Character]
    _CharacterInline = admin.options.InlineModelAdmin[Any, Character]
    _SampleTabular = admin.TabularInline[SampleDialogue, Character]
    _SceneStacked = admin.StackedInline[Scene, Character]
    _CharacterModelAdmin = admin.ModelAdmin[Character]
    _PersonaModelAdmin = admin.ModelAdmin[Persona]
else:
    _CharacterForm = forms.ModelForm
    _CharacterInline = admin.options.InlineModelAdmin
    _SampleTabular = admin.TabularInline
    _SceneStacked = admin.StackedInline
    _CharacterModelAdmin = _PersonaModelAdmin = admin.ModelAdmin

PREVIEW_TEMPLATE = "admin/characters/character/prompt_preview.html"
NO_SCENE = "none"


class StringListField(forms.CharField):
    """A list of strings edited as text: split on `separator`, blanks dropped, bounded."""

    def __init__(
        self, *, separator: str, joiner: str, max_items: int, max_item_chars: int, **kwargs: Any
    ) -> None:
        self.separator = re.compile(separator)
        self.joiner = joiner
        self.max_items = max_items
        self.max_item_chars = max_item_chars
        super().__init__(required=False, strip=True, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return self.joiner.join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        items = [item.strip() for item in self.separator.split(text)]
        items = list(dict.fromkeys(item for item in items if item))
        if len(items) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} items.")
        if any(len(item) > self.max_item_chars for item in items):
            raise forms.ValidationError(f"Each item is at most {self.max_item_chars} characters.")
        return items


class CharacterAdminForm(_CharacterForm):
    tags = StringListField(
        separator=r"[,，]",
        joiner=", ",
        max_items=30,
        max_item_chars=40,
        help_text="Short labels, separated by commas.",
    )
    alternate_greetings = StringListField(
        separator=r"(?m)^[ \t]*---[ \t\r]*$",
        joiner="\n---\n",
        max_items=20,
        max_item_chars=MEDIUM_TEXT,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Other first messages. Separate them with a line holding only ---.",
    )

    class Meta:
        model = Character
        fields = ("owner", "name", "slug", "tags", "alternate_greetings")


def _may_edit(user: AnyUser, obj: Character | None) -> bool:
    return obj is None or obj.user_can_edit(user)


class OwnerScopedInline(_CharacterInline):
    """Rows of a character are reachable only through a character the user may edit."""

    def has_add_permission(self, request: HttpRequest, obj: Character | None) -> bool:  # type: ignore[override]
        return super().has_add_permission(request, obj) and _may_edit(request.user, obj)

    def has_change_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_change_permission(request, obj) and _may_edit(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_edit(request.user, obj)

    def has_view_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_view_permission(request, obj) and _may_edit(request.user, obj)


class SampleDialogueInline(OwnerScopedInline, _SampleTabular):
    model = SampleDialogue
    fields = ("position", "user_line", "character_line")
    ordering = ("position", "id")
    extra = 1
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 3})}}


class SceneInline(OwnerScopedInline, _SceneStacked):
    model = Scene
    fields = ("name", "position", "description", "opening_line")
    ordering = ("position", "id")
    extra = 0
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 4})}}


@admin.register(Character)
class CharacterAdmin(CardAdminMixin, _CharacterModelAdmin):
    form = CharacterAdminForm
    inlines = [SampleDialogueInline, SceneInline, LorebookInline]
    list_display = ("name", "owner", "visibility", "tagline", "updated_at", "preview_link")
    list_select_related = ("owner",)
    list_filter = ("visibility", "created_at")
    search_fields = ("name", "tagline", "tags")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("owner",)
    fieldsets = (
        (None, {"fields": ("name", "slug", "nickname", "avatar", "tagline", "tags", "visibility")}),
        ("Character", {"fields": ("description", "personality", "scenario")}),
        ("Opening", {"fields": ("greeting", "alternate_greetings")}),
        (
            "Model instructions",
            {"classes": ("collapse",), "fields": ("system_prompt", "post_history_instructions")},
        ),
        (
            "Generation defaults",
            {
                "classes": ("collapse",),
                "fields": ("default_temperature", "default_top_p", "default_max_tokens"),
            },
        ),
        (
            "Credits and notes",
            {"classes": ("collapse",), "fields": ("creator", "character_version", "creator_notes")},
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Character | None = None) -> Any:
        if not request.user.is_superuser:
            return self.fieldsets
        return ((None, {"fields": ("owner",)}), *(self.fieldsets or ()))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Character]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(owner_id=request.user.pk)

    def save_model(self, request: HttpRequest, obj: Character, form: Any, change: bool) -> None:
        if not change and not request.user.is_superuser:
            obj.owner = cast("AuthUser", request.user)
        super().save_model(request, obj, form, change)

    def has_change_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_change_permission(request, obj) and _may_edit(request.user, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_edit(request.user, obj)

    def has_view_permission(self, request: HttpRequest, obj: Character | None = None) -> bool:
        return super().has_view_permission(request, obj) and _may_edit(request.user, obj)

    def get_deleted_objects(
        self, objs: Sequence[Character] | QuerySet[Character], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """What deleting `objs` takes along, for the delete page and the delete action.

        Deleting a character cascades to every conversation with it (the foreign key is
        CASCADE), other users' included. A creator has no right over those: their chats are
        their stories, and another user's conversation is invisible to the creator everywhere
        else. So a creator's delete is refused, with the reason, while anyone else has a
        conversation with the character: the count (no titles) is shown where Django shows
        protected objects, which also makes a posted delete do nothing. Only a superuser (the
        operator, who sees every conversation on this page) may delete such a character.
        The creator's own conversations go with it, as the chat lets them delete their own.
        """
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if request.user.is_superuser:
            return to_delete, counts, perms_needed, protected
        others = (
            Conversation.objects.filter(character__in=objs)
            .exclude(owner_id=request.user.pk)
            .count()
        )
        if others:
            chats = f"{others} conversation{'s' if others != 1 else ''}"
            reason = (
                f"{chats} of other users, which would be lost with it. Set the visibility to "
                "Private to take it out of the gallery (their chats keep working), or ask an "
                "operator to delete it."
            )
            # Nothing of the cascade is listed: it would name other users' conversations.
            return [], {}, set(), [reason]
        perms_needed.discard(str(Conversation._meta.verbose_name))
        perms_needed.discard(str(Turn._meta.verbose_name))
        return to_delete, counts, perms_needed, protected

    @admin.display(description="Prompt")
    def preview_link(self, obj: Character) -> str:
        url = reverse("admin:characters_character_prompt_preview", args=[obj.pk])
        return format_html('<a href="{}">Preview</a>', url)

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "<path:object_id>/prompt-preview/",
            self.admin_site.admin_view(self.prompt_preview_view),
            name="characters_character_prompt_preview",
        )
        return [preview, *super().get_urls()]

    def prompt_preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The exact message list a new conversation with this character would send."""
        character = self.get_object(request, unquote(object_id))
        if character is None or not self.has_view_permission(request, character):
            raise Http404("No such character.")
        scenes = list(character.scenes.all())
        scene = _chosen_scene(scenes, request.GET.get("scene"))
        persona = persona_default_for_user(user=request.user)
        spec, lore = prompt_preview_for_new_conversation(
            character=character, persona=persona, scene=scene
        )
        result = build_prompt(spec)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Prompt preview: {character.name}",
            "opts": self.opts,
            "original": character,
            "persona": persona,
            "scene": scene,
            "scenes": scenes,
            "no_scene": NO_SCENE,
            "spec": spec,
            "result": result,
            "lore": lore,
            "messages_with_tokens": [
                {**m, "tokens": default_estimator.message(m["content"])} for m in result.messages
            ],
            "call_overhead": CALL_OVERHEAD_TOKENS,
            "user_text": PREVIEW_USER_TEXT,
        }
        return TemplateResponse(request, PREVIEW_TEMPLATE, context)


def _chosen_scene(scenes: list[Scene], raw: str | None) -> Scene | None:
    """The first scene by default; `none` for no scene; an unknown id is a 404."""
    if raw is None or raw == "":
        return scenes[0] if scenes else None
    if raw == NO_SCENE:
        return None
    for scene in scenes:
        if str(scene.pk) == raw:
            return scene
    raise Http404("No such scene for this character.")


@admin.register(Persona)
class PersonaAdmin(_PersonaModelAdmin):
    """Personas are private to their owners: only superusers see them here."""

    list_display = ("name", "owner", "is_default", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    raw_id_fields = ("owner",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Persona | None = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Persona | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Persona | None = None) -> bool:
        return request.user.is_superuser

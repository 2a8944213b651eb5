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
from django.utils.text import normalize_newlines

from characters.admin_cards import CardAdminMixin, LorebookInline
from characters.admin_fields import CardTextField, card_text_form
from characters.models import Character, Persona, SampleDialogue, Scene
from characters.selectors import persona_default_for_user
from conversations.models import Conversation
from conversations.prompt_inputs import PREVIEW_USER_TEXT, prompt_preview_for_new_conversation
from conversations.prompts import build_prompt, reply_limit
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


class StringListField(CardTextField):
    """A list of strings edited as text: `join` shows it, `split` reads it back.

    A separator inside an item is shown escaped, so `split(join(items))` gives the items back
    (edge whitespace aside): saving never splits one item into two. Blank items are dropped.
    The limits are the model's, checked when the form validates the instance.
    """

    unique = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)

    def join(self, items: list[str]) -> str:
        raise NotImplementedError

    def split(self, text: str) -> list[str]:
        raise NotImplementedError

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return self.join(value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        items = [item.strip() for item in self.split(super().to_python(value) or "")]
        items = [item for item in items if item]
        return list(dict.fromkeys(items)) if self.unique else items


_TAG_SPECIAL = re.compile(r"([\\,，\n])")
_TAG_TOKEN = re.compile(r"\\([\\,，\n])|[,，\n]")


class TagListField(StringListField):
    r"""Tags separated by commas or line breaks; `\,` is a comma inside a tag."""

    unique = True

    def join(self, items: list[str]) -> str:
        return ", ".join(_TAG_SPECIAL.sub(r"\\\1", normalize_newlines(item)) for item in items)

    def split(self, text: str) -> list[str]:
        items: list[str] = []
        current: list[str] = []
        position = 0
        for token in _TAG_TOKEN.finditer(text):
            current.append(text[position : token.start()])
            if token.group(1) is not None:
                current.append(token.group(1))
            else:
                items.append("".join(current))
                current = []
            position = token.end()
        items.append("".join([*current, text[position:]]))
        return items


_GREETING_SEPARATOR = re.compile(r"^[ \t]*---[ \t]*$", re.MULTILINE)
_RULE_LINE = re.compile(r"^([ \t]*)(\\*---[ \t]*)$", re.MULTILINE)
_ESCAPED_RULE_LINE = re.compile(r"^([ \t]*)\\(\\*---[ \t]*)$", re.MULTILINE)


class GreetingListField(StringListField):
    r"""Messages separated by a line holding only `---`; `\---` is such a line inside one."""

    def join(self, items: list[str]) -> str:
        # A `---` line is a common scene break inside a greeting: shown as `\---`, so that
        # saving the page does not cut the greeting in two.
        return "\n---\n".join(_RULE_LINE.sub(r"\1\\\2", normalize_newlines(item)) for item in items)

    def split(self, text: str) -> list[str]:
        return [_ESCAPED_RULE_LINE.sub(r"\1\2", part) for part in _GREETING_SEPARATOR.split(text)]


def _keep_untouched_items(items: list[str], stored: list[str]) -> list[str]:
    """Items the creator did not edit keep their stored text (edge whitespace, line breaks)."""
    spare: dict[str, list[str]] = {}
    for original in stored:
        spare.setdefault(normalize_newlines(original).strip(), []).append(original)
    return [spare[item].pop(0) if spare.get(item) else item for item in items]


# Columns that hold card text (the extension's tagline too): kept exactly unless edited.
CARD_TEXT_FIELDS = (
    "name",
    "nickname",
    "tagline",
    "description",
    "personality",
    "scenario",
    "greeting",
    "system_prompt",
    "post_history_instructions",
    "creator",
    "character_version",
    "creator_notes",
)


class CharacterAdminForm(_CharacterForm):
    tags = TagListField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=(
            "Short labels, separated by commas or line breaks. "
            "Write \\, for a comma inside a label."
        ),
    )
    alternate_greetings = GreetingListField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=(
            "Other first messages. Separate them with a line holding only ---; "
            "write \\--- for such a line inside a message."
        ),
    )

    class Meta:
        model = Character
        fields = ("owner", "name", "slug", "tags", "alternate_greetings")
        field_classes = dict.fromkeys(CARD_TEXT_FIELDS, CardTextField)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.instance._state.adding:
            return cleaned
        # A save must not rewrite what the creator did not touch: an imported card's text and
        # lists stay exactly as imported (the card must export as it came in).
        for name, field in self.fields.items():
            if not isinstance(field, CardTextField) or name not in cleaned:
                continue
            stored = self[name].initial
            if name not in self.changed_data:
                cleaned[name] = stored
            elif isinstance(field, StringListField) and isinstance(stored, list):
                cleaned[name] = _keep_untouched_items(cleaned[name], stored)
        return cleaned


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
    form = card_text_form(SampleDialogue, ("user_line", "character_line"))
    fields = ("position", "user_line", "character_line")
    ordering = ("position", "id")
    extra = 1
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 3})}}


class SceneInline(OwnerScopedInline, _SceneStacked):
    model = Scene
    form = card_text_form(Scene, ("name", "description", "opening_line"))
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
        # The creator's own conversations go with the character; a creator has no conversation
        # admin, so Django would otherwise refuse for want of its delete right.
        perms_needed.discard(str(Conversation._meta.verbose_name))
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
            "reply_limit": reply_limit(spec, result),
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

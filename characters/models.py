"""Characters (authored by creators), their sample dialogues and scenes, and users' personas."""

from __future__ import annotations

import re
import secrets
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from characters.validators import validate_avatar, validate_slug_not_reserved, validate_string_list

# Card text (anything an imported card fills) gets the long limit: a valid card must never be
# refused for a field the app chose to bound tighter than the other card texts.
LONG_TEXT = 20_000
MEDIUM_TEXT = 4_000


def _long_text(help_text: str, limit: int = LONG_TEXT) -> models.TextField[str, str]:
    return models.TextField(blank=True, help_text=help_text, validators=[MaxLengthValidator(limit)])


_AVATAR_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


def avatar_upload_to(instance: Character, filename: str) -> str:
    """A new random name under avatars/<year>/<month>/, keeping the upload's extension."""
    # Media is served by path with no access check, so a name kept from the upload
    # (avatar.png, face.jpg) would let anyone fetch a private character's avatar by guessing.
    extension = PurePath(filename).suffix.lower()
    if not _AVATAR_EXTENSION.fullmatch(extension):
        extension = ""
    return f"avatars/{timezone.now():%Y/%m}/{secrets.token_hex(16)}{extension}"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public (listed in the gallery)"
    UNLISTED = "unlisted", "Unlisted (anyone with the link)"
    PRIVATE = "private", "Private (only me)"


class Character(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="characters"
    )
    slug = models.SlugField(
        max_length=80,
        unique=True,
        validators=[validate_slug_not_reserved],
        help_text="Used in the character's URL.",
    )
    name = models.CharField(max_length=100, help_text="The name the character speaks under.")
    nickname = models.CharField(
        max_length=100, blank=True, help_text="Replaces {{char}} in prompts when set."
    )
    avatar = models.ImageField(
        upload_to=avatar_upload_to,
        blank=True,
        validators=[validate_avatar],
        help_text="PNG, JPEG, WEBP or GIF; at most 2 MB.",
    )
    tagline = models.CharField(max_length=200, blank=True, help_text="One line for the gallery.")
    description = _long_text("Who the character is: appearance, background, relationships.")
    personality = _long_text("How the character thinks, speaks and behaves.")
    scenario = _long_text("The situation the story starts in.")
    system_prompt = _long_text("Extra instructions for the model, added to the system message.")
    post_history_instructions = _long_text(
        "Instructions restated after the history (kept for cards; {{original}} allowed)."
    )
    greeting = _long_text("The character's first message in a new conversation.")
    alternate_greetings = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_string_list],
        help_text="Other first messages, offered as alternatives to the greeting.",
    )
    group_only_greetings = models.JSONField(
        default=list, blank=True, validators=[validate_string_list]
    )
    creator_notes = _long_text("Shown to users; never sent to the model.")
    tags = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], help_text="Short labels."
    )
    creator = models.CharField(max_length=100, blank=True, help_text="Credited author.")
    character_version = models.CharField(max_length=50, blank=True)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    default_temperature = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text="Sampling temperature, in (0, 1].",
    )
    default_top_p = models.FloatField(
        default=0.95,
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text="Nucleus sampling, in (0, 1].",
    )
    default_max_tokens = models.PositiveIntegerField(
        default=400,
        validators=[MinValueValidator(1), MaxValueValidator(2048)],
        help_text="Longest reply, in tokens (1–2048).",
    )
    card_extras = models.JSONField(
        default=dict,
        blank=True,
        help_text="Imported card data the app does not use, kept so exports are lossless.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(default_temperature__gt=0) & Q(default_temperature__lte=1),
                name="character_temperature_in_range",
            ),
            models.CheckConstraint(
                condition=Q(default_top_p__gt=0) & Q(default_top_p__lte=1),
                name="character_top_p_in_range",
            ),
            models.CheckConstraint(
                condition=Q(default_max_tokens__gte=1) & Q(default_max_tokens__lte=2048),
                name="character_max_tokens_in_range",
            ),
            models.CheckConstraint(
                condition=Q(visibility__in=Visibility.values), name="character_visibility_valid"
            ),
        ]
        indexes = [models.Index(fields=["visibility", "name"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("characters:detail", kwargs={"slug": self.slug})

    def user_can_edit(self, user: Any) -> bool:
        return bool(user.is_authenticated and (user.is_superuser or user.pk == self.owner_id))

    def is_visible_to(self, user: Any) -> bool:
        if self.visibility != Visibility.PRIVATE:
            return True
        return self.user_can_edit(user)


class SampleDialogue(models.Model):
    """One example exchange that teaches the model the character's voice."""

    character = models.ForeignKey(
        Character, on_delete=models.CASCADE, related_name="sample_dialogues"
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")
    # Both lines come from a card's mes_example, so they share the card text limit.
    user_line = _long_text("What the user says ({{user}} and {{char}} allowed).")
    character_line = _long_text("How the character answers.")

    class Meta:
        # Positions are not unique: the admin's inline saves rows one by one, and swapping two
        # positions would trip a unique constraint mid-save. Ties fall back to creation order.
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(user_line="") & ~Q(character_line=""),
                name="sample_dialogue_lines_not_empty",
            )
        ]

    def __str__(self) -> str:
        return f"{self.character} #{self.position}"


class Scene(models.Model):
    """Where a story takes place; its name and description become the `group` message."""

    character = models.ForeignKey(Character, on_delete=models.CASCADE, related_name="scenes")
    name = models.CharField(max_length=100)
    description = _long_text("What the scene looks like and what is going on.", MEDIUM_TEXT)
    opening_line = _long_text(
        "Replaces the greeting when a conversation starts in this scene.", MEDIUM_TEXT
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.character}: {self.name}"


class Persona(models.Model):
    """Who the user is in a story; sent as the `user_system` message."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personas"
    )
    name = models.CharField(max_length=100)
    description = _long_text("Who you are in the story.", MEDIUM_TEXT)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"], condition=Q(is_default=True), name="one_default_persona_per_user"
            )
        ]

    def __str__(self) -> str:
        return self.name


class LorePosition(models.TextChoices):
    BEFORE_CHAR = "before_char", "Before the character"
    AFTER_CHAR = "after_char", "After the character"


class Lorebook(models.Model):
    """A character's book of world facts, inserted into the prompt when their keys come up."""

    character = models.OneToOneField(Character, on_delete=models.CASCADE, related_name="lorebook")
    name = models.CharField(max_length=200, blank=True)
    description = _long_text("What the book covers (not sent to the model).")
    scan_depth = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(1000)],
        help_text="How many recent messages are scanned for keys (empty: the default, 2).",
    )
    token_budget = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(1_000_000)],
        help_text="Most tokens of lore per prompt; lowest priority entries are dropped first.",
    )
    recursive_scanning = models.BooleanField(
        default=False, help_text="Inserted entries may trigger other entries."
    )
    extensions = models.JSONField(default=dict, blank=True)
    card_extras = models.JSONField(
        default=dict, blank=True, help_text="Imported book data the app does not use."
    )

    def __str__(self) -> str:
        return self.name or f"Lorebook of {self.character}"


class LorebookEntry(models.Model):
    """One fact; its content is added to the system message when a key matches."""

    lorebook = models.ForeignKey(Lorebook, on_delete=models.CASCADE, related_name="entries")
    name = models.CharField(max_length=200, blank=True, help_text="Not sent to the model.")
    keys = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_string_list],
        help_text="Words that trigger the entry; /pattern/flags is a regex when regex is on.",
    )
    secondary_keys = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_string_list],
        help_text="With 'selective', one of these must match too.",
    )
    content = _long_text("Text added to the prompt ({{char}} and {{user}} allowed).")
    enabled = models.BooleanField(default=True)
    constant = models.BooleanField(default=False, help_text="Always inserted (within budget).")
    selective = models.BooleanField(default=False, help_text="Require a secondary key as well.")
    case_sensitive = models.BooleanField(default=False)
    use_regex = models.BooleanField(default=False, help_text="Treat /…/flags keys as regexes.")
    insertion_order = models.IntegerField(default=100, help_text="Lower is inserted earlier.")
    priority = models.IntegerField(default=0, help_text="Lower is dropped first at the budget.")
    position = models.CharField(max_length=20, blank=True, choices=LorePosition.choices)
    comment = _long_text("Notes for authors; never sent.")
    extensions = models.JSONField(default=dict, blank=True)
    card_extras = models.JSONField(
        default=dict, blank=True, help_text="Imported entry data the app does not use."
    )

    class Meta:
        ordering = ["insertion_order", "id"]
        verbose_name_plural = "lorebook entries"

    def __str__(self) -> str:
        return self.name or self.comment[:60] or ", ".join(self.keys)[:60] or f"entry {self.pk}"


class CardAsset(models.Model):
    """A file that came inside an imported CHARX archive, kept so the archive exports whole."""

    character = models.ForeignKey(Character, on_delete=models.CASCADE, related_name="card_assets")
    path = models.CharField(max_length=300, help_text="Path inside the archive.")
    file = models.FileField(upload_to="card_assets/%Y/%m/")
    size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["path"]
        constraints = [
            models.UniqueConstraint(fields=["character", "path"], name="card_asset_path_unique")
        ]

    def __str__(self) -> str:
        return self.path

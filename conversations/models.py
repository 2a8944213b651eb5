"""Conversations and their turns. The database is the source of truth; sockets are a live view."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

from characters.models import Character, Persona, Scene


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    character = models.ForeignKey(Character, on_delete=models.CASCADE, related_name="conversations")
    persona = models.ForeignKey(
        Persona, on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations"
    )
    scene = models.ForeignKey(
        Scene, on_delete=models.SET_NULL, null=True, blank=True, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    # The last event sequence number handed out; every event a client sees carries one.
    last_seq = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation with {self.character_id}"

    def get_absolute_url(self) -> str:
        return reverse("conversations:detail", kwargs={"conversation_id": self.id})


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"


class TurnStatus(models.TextChoices):
    COMPLETE = "complete", "Complete"
    STREAMING = "streaming", "Streaming"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class Turn(models.Model):
    """One message. Candidates of a reply (swipes) are siblings sharing a `parent`.

    The visible transcript is the turns with `active=True`, ordered by `seq`: regenerating or
    editing makes a new sibling active and leaves the old branch stored but inactive.
    """

    # No index of its own: the unique (conversation, seq) and the indexes below lead with it,
    # and every index is one more to update on each insert (two per message).
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="turns", db_index=False
    )
    seq = models.BigIntegerField(help_text="Event number of the turn's creation.")
    updated_seq = models.BigIntegerField(help_text="Event number of the turn's last change.")
    # Likewise: `turn_siblings_idx` (parent, seq) leads with it.
    parent = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        db_index=False,
    )
    active = models.BooleanField(default=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    name = models.CharField(max_length=100, help_text="Speaker name at the time of the turn.")
    content = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=TurnStatus.choices, default=TurnStatus.COMPLETE
    )
    finish_reason = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # As reported: some final frames carry only the total, with no split to price it by.
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    client_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="turn_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                condition=Q(client_id__isnull=False),
                name="turn_client_id_unique",
            ),
            # At most one reply generates per conversation at a time.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="streaming"),
                name="one_streaming_reply_per_conversation",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="turn_role_valid"),
            models.CheckConstraint(
                condition=Q(status__in=TurnStatus.values), name="turn_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(updated_seq__gte=models.F("seq")), name="turn_updated_after_created"
            ),
        ]
        indexes = [
            models.Index(fields=["conversation", "active", "seq"], name="turn_page_idx"),
            models.Index(fields=["conversation", "updated_seq"], name="turn_sync_idx"),
            models.Index(fields=["parent", "seq"], name="turn_siblings_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.conversation_id}#{self.seq} {self.role}"


class UsageCarry(models.Model):
    """What deleted conversations had used, per owner and month: deleting a chat must not take
    its tokens and cost out of the owner's usage. Written only when conversations are deleted,
    never per reply."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_carried"
    )
    month = models.DateField(help_text="First day of the month (UTC) the replies were made in.")
    replies = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    unpriced = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=8, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "month"], name="usage_carry_owner_month"),
        ]

    def __str__(self) -> str:
        return f"{self.owner_id} {self.month:%Y-%m}"

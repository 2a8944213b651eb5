"""Reads of conversations, their turns and usage, always scoped to the asking user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Substr, TruncMonth
from django.http import Http404

from companion.compiled import Compiled
from conversations.models import Conversation, Role, Turn, UsageCarry
from conversations.wire import WireTurn, turns_to_wire

SNIPPET_CHARS = 160
TURN_PAGE_DEFAULT = 50
TURN_PAGE_MAX = 200


def conversation_get_for_user(*, conversation_id: UUID | str, user: Any) -> Conversation:
    """Return the user's conversation; a missing one and another user's one are both a 404."""
    if not getattr(user, "is_authenticated", False):
        raise Http404("No such conversation.")
    try:
        return Conversation.objects.select_related("character", "persona", "scene").get(
            pk=conversation_id, owner_id=user.pk
        )
    except (Conversation.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such conversation.") from None


def conversation_is_users(*, conversation_id: UUID, user_id: int) -> bool:
    """Whether the conversation is still there, and the user's."""
    return bool(_owned_id.rows(conversation_id=conversation_id, user_id=user_id))


# Every stop frame asks.
_owned_id = Compiled(
    lambda conversation_id, user_id: (
        Conversation.objects.filter(pk=conversation_id, owner_id=user_id).values_list("pk").query
    ),
    conversation_id=UUID(int=0x5E7),
    user_id=918_273_648,
)


def conversation_list_for_user(*, user: Any) -> QuerySet[Conversation]:
    """The user's conversations, most recently active first, each with its last message."""
    last_turn = Turn.objects.filter(conversation=OuterRef("pk"), active=True).order_by("-seq")
    return (
        Conversation.objects.filter(owner_id=user.pk)
        .select_related("character")
        .annotate(
            last_message=Substr(Subquery(last_turn.values("content")[:1]), 1, SNIPPET_CHARS),
            last_role=Subquery(last_turn.values("role")[:1]),
        )
        .order_by("-updated_at", "-created_at")
    )


@dataclass(frozen=True)
class TurnPage:
    turns: list[WireTurn]
    has_more: bool


def turn_page_for_conversation(
    *, conversation: Conversation, before_seq: int | None = None, limit: int = TURN_PAGE_DEFAULT
) -> TurnPage:
    """The newest `limit` active turns below `before_seq`, returned in ascending `seq` order,
    as the protocol's turn objects (with candidate positions for swipe controls)."""
    limit = max(1, min(limit, TURN_PAGE_MAX))
    rows = Turn.objects.filter(conversation=conversation, active=True)
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    # One row more than asked tells whether an older page exists without a COUNT.
    page = list(rows.order_by("-seq")[: limit + 1])
    has_more = len(page) > limit
    page = page[:limit]
    page.reverse()
    return TurnPage(turns=turns_to_wire(page), has_more=has_more)


@dataclass(frozen=True)
class Usage:
    replies: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: Decimal
    # Replies whose service reported only a total: counted in `total_tokens`, not priced.
    unpriced: int = 0


# Aliases unlike the columns: a filter naming a column would otherwise mean the aggregate.
_USAGE = {
    "n_replies": Count(
        "id",
        filter=Q(role=Role.ASSISTANT)
        & (Q(completion_tokens__isnull=False) | Q(total_tokens__isnull=False)),
    ),
    "n_unpriced": Count("id", filter=Q(total_tokens__isnull=False, completion_tokens__isnull=True)),
    "sum_prompt": Sum("prompt_tokens"),
    "sum_completion": Sum("completion_tokens"),
    "sum_total": Sum("total_tokens"),
    "sum_cost": Sum("cost_usd"),
}
_CARRIED = {
    "n_replies": Sum("replies"),
    "n_unpriced": Sum("unpriced"),
    "sum_prompt": Sum("prompt_tokens"),
    "sum_completion": Sum("completion_tokens"),
    "sum_total": Sum("total_tokens"),
    "sum_cost": Sum("cost_usd"),
}


def _usage(*totals: dict[str, Any]) -> Usage:
    def total(name: str) -> Any:
        return sum((t[name] or 0 for t in totals), start=Decimal(0) if name == "sum_cost" else 0)

    return Usage(
        replies=total("n_replies"),
        prompt_tokens=total("sum_prompt"),
        completion_tokens=total("sum_completion"),
        total_tokens=total("sum_total"),
        cost_usd=total("sum_cost"),
        unpriced=total("n_unpriced"),
    )


def usage_by_month(turns: QuerySet[Turn]) -> list[tuple[dt.date, Usage]]:
    """The usage of these turns per month (first day, UTC)."""
    rows = (
        turns.annotate(month=TruncMonth("created_at", tzinfo=dt.UTC))
        .values("month")
        .annotate(**_USAGE)
        .order_by("month")
    )
    return [(_day(row["month"]), _usage(row)) for row in rows]


def _day(month: dt.date | dt.datetime) -> dt.date:
    return month.date() if isinstance(month, dt.datetime) else month


def usage_months_for_user(*, user: Any) -> list[dt.date]:
    """The months (first day, UTC) in which the user had replies, newest first: in their
    conversations, or in conversations they have deleted since."""
    months = (
        Turn.objects.filter(conversation__owner_id=user.pk)
        .annotate(month=TruncMonth("created_at", tzinfo=dt.UTC))
        .values_list("month", flat=True)
        # Without the turns' own ordering, which would make every turn's (month, seq) distinct.
        .order_by()
        .distinct()
    )
    carried = UsageCarry.objects.filter(owner_id=user.pk).values_list("month", flat=True)
    return sorted({_day(m) for m in months} | set(carried), reverse=True)


def usage_for_user(*, user: Any, month: dt.date | None = None) -> Usage:
    """Tokens and cost of all the user's replies (every candidate counts, those of deleted
    conversations too), for a month or ever."""
    turns = Turn.objects.filter(conversation__owner_id=user.pk)
    carried = UsageCarry.objects.filter(owner_id=user.pk)
    if month is not None:
        start = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
        end = dt.datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=dt.UTC)
        turns = turns.filter(created_at__gte=start, created_at__lt=end)
        carried = carried.filter(month=start.date())
    return _usage(turns.aggregate(**_USAGE), carried.aggregate(**_CARRIED))

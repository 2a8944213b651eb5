"""Template filters for message and card text: `{{ turn.content|render_turn }}`."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from conversations.macros import expand
from conversations.rendering import render_turn as _render_turn

register = template.Library()


@register.filter
def render_turn(text: Any) -> SafeString:
    """Markdown with role-play *actions* in italics; raw HTML is never rendered."""
    return _render_turn("" if text is None else str(text))


@register.filter
def render_card_text(text: Any, character: Any) -> SafeString:
    """Card text for a reader: {{char}} becomes the character's name and {{user}} "you"."""
    name = getattr(character, "nickname", "") or getattr(character, "name", "")
    return _render_turn(expand("" if text is None else str(text), char=name, user="you"))

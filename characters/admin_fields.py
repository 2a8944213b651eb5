"""Admin form fields for card text: kept exactly as imported unless the creator edits it.

Browsers post every line break of a textarea as CRLF, whatever the stored text had, and Django's
text fields strip edge whitespace: either would rewrite an imported card on a save that changed
nothing, and the card would no longer export as it came in.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django.utils.text import normalize_newlines


class CardTextField(forms.CharField):
    """Card text as the creator wrote it: never stripped, since cards must round-trip.

    Line breaks that only the browser changed (to CRLF) are no change, and a changed text is
    stored with LF line breaks.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**kwargs, "strip": False})

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        return normalize_newlines(text) if isinstance(text, str) else text

    def validate(self, value: Any) -> None:
        super().validate(value)
        # Unstripped, "   " would pass as a required name.
        if self.required and isinstance(value, str) and not value.strip():
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial: Any, data: Any) -> bool:
        if self.disabled:
            return False
        shown = self.prepare_value(initial)
        return normalize_newlines(str(shown or "")) != normalize_newlines(str(data or ""))


def card_text_form(model: type[models.Model], text_fields: tuple[str, ...]) -> Any:
    """A model form whose `text_fields` are `CardTextField`s (for inlines and admin pages)."""
    return forms.modelform_factory(
        model, fields="__all__", field_classes=dict.fromkeys(text_fields, CardTextField)
    )

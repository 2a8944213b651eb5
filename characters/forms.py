"""Forms of the user-facing pages: personas, starting a conversation, the usage period."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms

from characters.models import MEDIUM_TEXT, Character, Persona, Scene
from characters.selectors import persona_list_for_user


class PersonaForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True)
    description = forms.CharField(
        max_length=MEDIUM_TEXT,
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5, "maxlength": MEDIUM_TEXT}),
        help_text="Who you are in the story: the character sees this.",
    )
    is_default = forms.BooleanField(required=False, label="Use as my default persona")

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if editing:
            # The default is switched with its own button, so editing never clears it.
            del self.fields["is_default"]


class ConversationStartForm(forms.Form):
    persona = forms.ModelChoiceField(
        queryset=Persona.objects.none(),
        required=False,
        empty_label="No persona",
        label="You are",
    )
    scene = forms.ModelChoiceField(
        queryset=Scene.objects.none(),
        required=False,
        empty_label="No particular scene",
    )

    def __init__(self, *args: Any, character: Character, user: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.character = character
        personas = persona_list_for_user(user=user)
        persona_field: Any = self.fields["persona"]
        persona_field.queryset = personas
        persona_field.error_messages["invalid_choice"] = "No such persona."
        scene_field: Any = self.fields["scene"]
        scene_field.queryset = Scene.objects.filter(character=character).order_by("position", "id")
        scene_field.error_messages["invalid_choice"] = "This scene belongs to another character."
        if not self.is_bound:
            self.initial.setdefault("persona", next((p for p in personas if p.is_default), None))


def month_label(month: dt.date) -> str:
    return month.strftime("%B %Y")


class UsagePeriodForm(forms.Form):
    month = forms.ChoiceField(required=False, label="Period")

    def __init__(self, *args: Any, months: list[dt.date], **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        month_field: Any = self.fields["month"]
        month_field.choices = [("", "All time")] + [
            (m.strftime("%Y-%m"), month_label(m)) for m in months
        ]

    def selected_month(self) -> dt.date | None:
        """The chosen month, or None for all time (also when the choice was not valid)."""
        if not self.is_valid() or not self.cleaned_data["month"]:
            return None
        year, month = self.cleaned_data["month"].split("-")
        return dt.date(int(year), int(month), 1)

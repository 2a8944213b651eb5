"""Posting an admin change page back the way a browser does, for tests."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from django import forms
from django.contrib.auth.models import AbstractUser, User
from django.test import Client
from django.urls import reverse

from characters.cards.services import character_import_card
from characters.management.roles import creator_grant
from characters.models import Character


def creator_client(user: AbstractUser) -> Client:
    """A logged-in client for `user`, made a creator (staff in the Creators group)."""
    creator = creator_grant(username=user.get_username())
    client = Client()
    client.force_login(cast("User", creator))
    return client


def change_url(character: Character) -> str:
    return reverse("admin:characters_character_change", args=[character.pk])


def card_json(data: dict[str, Any]) -> bytes:
    """A V3 card as JSON whose `data` is `data` over empty defaults."""
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {
            "name": "Mira",
            "description": "",
            "personality": "",
            "scenario": "",
            "first_mes": "Hi",
            "mes_example": "",
            "creator_notes": "",
            "system_prompt": "",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": [],
            "creator": "",
            "character_version": "",
            "extensions": {},
            "group_only_greetings": [],
            **data,
        },
    }
    return json.dumps(card).encode()


def import_card(owner: AbstractUser, data: dict[str, Any]) -> Character:
    """A character imported from `card_json(data)`."""
    return character_import_card(owner=owner, data=card_json(data), filename="c.json").character


def _add_fields(form: forms.BaseForm, data: dict[str, str]) -> None:
    for name, field in form.fields.items():
        bound = form[name]
        value = bound.value()
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[bound.html_name] = "on"
            continue
        if isinstance(field, forms.FileField):
            continue
        text = "" if value is None else str(value)
        if isinstance(field.widget, forms.Textarea):
            # A browser posts every line break of a textarea as CRLF.
            text = re.sub(r"\r\n?|\n", "\r\n", text)
        data[bound.html_name] = text


def browser_post_data(page: Any) -> dict[str, str]:
    """What a browser posts from the rendered change page when nothing is edited."""
    data: dict[str, str] = {}
    _add_fields(page.context["adminform"].form, data)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        _add_fields(formset.management_form, data)
        for form in formset.forms:
            _add_fields(form, data)
    return data

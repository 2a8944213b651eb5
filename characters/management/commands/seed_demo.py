"""`manage.py seed_demo`: the demo characters and the Creators group, idempotently.

Running it twice changes nothing: rows are matched by slug (characters) and position (sample
dialogues, scenes) and saved only when their content differs. A character whose slug belongs to
someone other than the demo user is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from io import BytesIO
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand
from django.db import models, transaction
from PIL import Image, ImageDraw, ImageFont

from characters.demo_data import (
    DEMO_CHARACTERS,
    DEMO_CREATOR_CREDIT,
    DEMO_OWNER_USERNAME,
    DemoCharacter,
)
from characters.management.roles import CREATORS_GROUP, creators_group_sync
from characters.models import Character, SampleDialogue, Scene, Visibility

AVATAR_SIZE = 256


def avatar_png(initial: str, colour: str) -> bytes:
    """A coloured disc with a white initial, as PNG bytes (the same bytes on every run)."""
    image = Image.new("RGBA", (AVATAR_SIZE, AVATAR_SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, AVATAR_SIZE - 5, AVATAR_SIZE - 5), fill=colour)
    font = ImageFont.load_default(size=AVATAR_SIZE // 2)
    centre = AVATAR_SIZE / 2
    draw.text((centre, centre), initial, fill="white", font=font, anchor="mm")
    buffer = BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def demo_owner() -> AbstractBaseUser:
    """The user who owns the demo characters: cannot log in, not staff."""
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=DEMO_OWNER_USERNAME)
    if created:
        user.set_unusable_password()
        user.full_clean()
        user.save()
    return user


def _character_fields(demo: DemoCharacter) -> dict[str, Any]:
    return {
        "name": demo.name,
        "nickname": demo.nickname,
        "tagline": demo.tagline,
        "description": demo.description,
        "personality": demo.personality,
        "scenario": demo.scenario,
        "system_prompt": demo.system_prompt,
        "greeting": demo.greeting,
        "alternate_greetings": list(demo.alternate_greetings),
        "tags": list(demo.tags),
        "creator": DEMO_CREATOR_CREDIT,
        "creator_notes": demo.creator_notes,
        "visibility": Visibility.PUBLIC,
    }


def _sync_children(
    character: Character, model: type[SampleDialogue] | type[Scene], rows: Sequence[dict[str, Any]]
) -> bool:
    """Make the character's rows of `model` match `rows` by position; True if anything changed."""
    existing: list[models.Model] = list(
        model.objects.filter(character=character).order_by("position", "id")
    )
    changed = False
    for position, values in enumerate(rows):
        values = {"position": position, **values}
        if position < len(existing):
            row = existing[position]
            if all(getattr(row, name) == value for name, value in values.items()):
                continue
            for name, value in values.items():
                setattr(row, name, value)
        else:
            row = model(character=character, **values)
        row.full_clean()
        row.save()
        changed = True
    for row in existing[len(rows) :]:
        row.delete()
        changed = True
    return changed


def seed_character(*, owner: AbstractBaseUser, demo: DemoCharacter) -> str:
    """Create or update one demo character; returns created, updated, unchanged or skipped."""
    with transaction.atomic():
        character = Character.objects.filter(slug=demo.slug).first()
        if character is not None and character.owner_id != owner.pk:
            return "skipped"
        created = character is None
        if character is None:
            character = Character(slug=demo.slug, owner_id=owner.pk)
        fields = _character_fields(demo)
        changed = created or any(getattr(character, k) != v for k, v in fields.items())
        for name, value in fields.items():
            setattr(character, name, value)
        avatar = character.avatar
        if not avatar or not avatar.storage.exists(avatar.name):
            png = avatar_png(demo.avatar_initial, demo.avatar_colour)
            avatar.save(f"{demo.slug}.png", ContentFile(png), save=False)
            changed = True
        if changed:
            character.full_clean()
            character.save()
            avatar.close()
        samples = [{"user_line": u, "character_line": a} for u, a in demo.samples]
        scenes = [
            {"name": s.name, "description": s.description, "opening_line": s.opening_line}
            for s in demo.scenes
        ]
        changed |= _sync_children(character, SampleDialogue, samples)
        changed |= _sync_children(character, Scene, scenes)
    if created:
        return "created"
    return "updated" if changed else "unchanged"


class Command(BaseCommand):
    help = "Create or refresh the demo characters (public, owned by the 'demo' user) and roles."

    def handle(self, *args: Any, **options: Any) -> None:
        creators_group_sync()
        owner = demo_owner()
        outcomes = [seed_character(owner=owner, demo=demo) for demo in DEMO_CHARACTERS]
        counts = ", ".join(
            f"{outcomes.count(kind)} {kind}"
            for kind in ("created", "updated", "unchanged", "skipped")
            if outcomes.count(kind)
        )
        self.stdout.write(
            f"Demo characters: {len(outcomes)} ({counts}), owned by '{DEMO_OWNER_USERNAME}'; "
            f'group "{CREATORS_GROUP}" ready.'
        )

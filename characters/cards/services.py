"""Importing a card file as a new private character of the importer, in one transaction."""

from __future__ import annotations

import hashlib
import io
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.text import slugify
from PIL import Image

from characters.cards.containers import decode_card_file, main_icon
from characters.cards.errors import CardError
from characters.cards.png import IMAGE_ERRORS
from characters.cards.schema import COLUMNS, parse_card
from characters.models import (
    CardAsset,
    Character,
    Lorebook,
    LorebookEntry,
    SampleDialogue,
    Visibility,
)
from characters.validators import MAX_IMAGE_PIXELS, RESERVED_SLUGS, validate_avatar

FALLBACK_NAME = "Imported character"
AVATAR_SIDES = (1024, 512, 256)
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,10}")
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"GIF8", "gif"))
_LABELS = {column: f"{key} ({column})" for key, column in COLUMNS.items() if key != column}


@dataclass(frozen=True)
class CardImport:
    character: Character
    warnings: tuple[str, ...]


def _slug_for(name: str) -> str:
    base = slugify(name)[:60].strip("-") or "character"
    for n in range(1, 20):
        candidate = base if n == 1 else f"{base}-{n}"
        if (
            candidate not in RESERVED_SLUGS
            and not Character.objects.filter(slug=candidate).exists()
        ):
            return candidate
    return f"{base}-{secrets.token_hex(4)}"


def _shrunk(image: bytes, side: int) -> bytes | None:
    """A smaller WEBP copy of an avatar that is over the size limit, or None."""
    try:
        with Image.open(io.BytesIO(image)) as source:
            if source.width * source.height > MAX_IMAGE_PIXELS:
                return None
            source.thumbnail((side, side))
            out = io.BytesIO()
            source.convert("RGBA").save(out, format="WEBP", quality=85)
    except IMAGE_ERRORS:
        return None
    return out.getvalue()


def _extension(image: bytes) -> str:
    for magic, extension in _MAGIC:
        if image.startswith(magic):
            return extension
    return "webp" if image[8:12] == b"WEBP" else "img"


def _avatar(image: bytes | None, warnings: list[str]) -> ContentFile[bytes] | None:
    """The card's image as a valid avatar file; a smaller re-encoded copy if it is not one."""
    if not image:
        return None
    for side in (0, *AVATAR_SIDES):
        candidate = _shrunk(image, side) if side else image
        if candidate is None:
            break
        # Only the extension is kept: the avatar field stores it under a random name.
        file = ContentFile(candidate, name=f"avatar.{_extension(candidate)}")
        try:
            validate_avatar(file)
        except ValidationError:
            continue
        if side and len(image) > settings.AVATAR_MAX_BYTES:
            warnings.append("The card's image was too large for an avatar; a smaller copy is used.")
        elif side:
            warnings.append(
                "The card's image could not be used as it is; a re-encoded copy is used."
            )
        return file
    warnings.append("The card's image could not be used as the avatar; it was left out.")
    return None


def _clean(instance: Any, what: str, exclude: list[str]) -> None:
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        problems = "; ".join(
            f"{_LABELS.get(name, name)}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        )
        raise CardError(f"{what} cannot be imported: {problems}") from None


def character_import_card(*, owner: Any, data: bytes, filename: str = "") -> CardImport:
    """Create a private character owned by `owner` from a card file; CardError if unreadable."""
    decoded = decode_card_file(data, filename=filename)
    parsed = parse_card(decoded.payload)
    warnings = [*decoded.warnings, *parsed.warnings]
    image = decoded.image
    if image is None:
        image, warning = main_icon(parsed.assets, decoded.files)
        warnings.extend([warning] if warning else [])
    character = Character(owner=owner, visibility=Visibility.PRIVATE, **parsed.fields)
    if not character.name.strip():
        character.name = FALLBACK_NAME
        warnings.append(f"The card has no name; it was imported as “{FALLBACK_NAME}”.")
    character.slug = _slug_for(character.name)
    avatar = _avatar(image, warnings)
    if avatar is not None:
        character.avatar = avatar
        character.card_extras["avatar_sha256"] = hashlib.sha256(avatar.read()).hexdigest()
        avatar.seek(0)
    _clean(character, "The card", exclude=["owner"])
    samples = [
        SampleDialogue(position=i, user_line=user_line, character_line=character_line)
        for i, (user_line, character_line) in enumerate(parsed.samples)
    ]
    for sample in samples:
        _clean(sample, "A sample dialogue", exclude=["character"])
    book = Lorebook(**parsed.book.fields) if parsed.book else None
    entries = [LorebookEntry(**fields) for fields in (parsed.book.entries if parsed.book else [])]
    if book is not None:
        _clean(book, "The lorebook", exclude=["character"])
    for index, entry in enumerate(entries, start=1):
        _clean(entry, f"Lorebook entry {index}", exclude=["lorebook"])
    assets = [(CardAsset(path=p, size=len(c)), c) for p, c in decoded.files.items()]
    for asset, _ in assets:
        _clean(asset, "A file of the archive", exclude=["character", "file"])
    return CardImport(_save(character, samples, book, entries, assets), tuple(warnings))


def _save(
    character: Character,
    samples: list[SampleDialogue],
    book: Lorebook | None,
    entries: list[LorebookEntry],
    assets: list[tuple[CardAsset, bytes]],
) -> Character:
    # File fields write to storage before their row is inserted; remember them first.
    stored: list[Any] = [character.avatar]
    try:
        with transaction.atomic():
            character.save()
            for sample in samples:
                sample.character = character
            SampleDialogue.objects.bulk_create(samples)
            if book is not None:
                book.character = character
                book.save()
                for entry in entries:
                    entry.lorebook = book
                LorebookEntry.objects.bulk_create(entries)
            for asset, content in assets:
                asset.character = character
                stored.append(asset.file)
                asset.file.save(_stored_name(asset.path), ContentFile(content))
    except (IntegrityError, OSError):
        _delete_files(stored)
        raise CardError("The character could not be saved; please try again.") from None
    except BaseException:
        _delete_files(stored)
        raise
    return character


def _stored_name(path: str) -> str:
    # The archive's own names stay in `path`; on disk a random name keeps them unguessable.
    extension = path.rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
    token = secrets.token_hex(16)
    return f"{token}.{extension}" if _EXTENSION.fullmatch(extension) else token


def _delete_files(files: list[Any]) -> None:
    # Files are written outside the database transaction; a rollback must not orphan them.
    for file in files:
        if file and file.storage.exists(file.name):
            file.storage.delete(file.name)

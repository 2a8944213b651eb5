"""Exporting a character as a V3 card: PNG (with a V2 `chara` backfill), JSON or CHARX."""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from characters.cards import charx, png
from characters.cards.errors import CardError
from characters.cards.jsonsafe import dump_json
from characters.cards.lorebooks import BOOK_COLUMNS, ENTRY_COLUMNS
from characters.cards.schema import COLUMNS, build_card
from characters.models import Character, Lorebook

FORMATS = ("png", "json", "charx")
CONTENT_TYPES = {"png": "image/png", "json": "application/json", "charx": "application/zip"}
_CHARACTER_COLUMNS = (
    *COLUMNS.values(),
    "tagline",
    "default_temperature",
    "default_top_p",
    "default_max_tokens",
    "card_extras",
)
MAIN_ICON_DIR = "assets/icon/images/"
AVATAR_UNREADABLE = (
    "The avatar of {name} could not be read, so its card was made without it; "
    "upload the avatar again."
)
ASSET_MISSING = "The file {path} of {name} could not be read, so its CHARX was made without it."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CardFile:
    content: bytes
    filename: str
    content_type: str
    # For whoever can fix the character: what the file lacks and why.
    warnings: tuple[str, ...] = ()


def _book(character: Character) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    try:
        book = character.lorebook
    except Lorebook.DoesNotExist:
        return None
    values = {column: getattr(book, column) for column in (*BOOK_COLUMNS, "card_extras")}
    entries = [
        {column: getattr(entry, column) for column in (*ENTRY_COLUMNS, "card_extras")}
        for entry in book.entries.order_by("pk")
    ]
    return values, entries


def card_object(character: Character, *, version: int = 3) -> dict[str, Any]:
    """The character's card as a JSON-ready object (V3, or V2 for the PNG backfill)."""
    values = {column: getattr(character, column) for column in _CHARACTER_COLUMNS}
    samples = [
        (s.user_line, s.character_line)
        for s in character.sample_dialogues.order_by("position", "id")
    ]
    return build_card(
        values,
        samples,
        _book(character),
        version=version,
        now=int(timezone.now().timestamp()),
        created=int(character.created_at.timestamp()),
    )


def _avatar_bytes(character: Character) -> bytes | None:
    if not character.avatar:
        return None
    try:
        with character.avatar.open("rb") as file:
            content: bytes = file.read()
    except OSError:
        # The row names a file the storage no longer has (say, media not restored with the
        # database): export without it rather than fail.
        return None
    return content


def _b64(card: dict[str, Any]) -> str:
    return base64.b64encode(dump_json(card).encode("utf-8")).decode("ascii")


def _png(character: Character) -> tuple[bytes, tuple[str, ...]]:
    texts = {"chara": _b64(card_object(character, version=2)), "ccv3": _b64(card_object(character))}
    avatar = _avatar_bytes(character)
    if avatar:
        try:
            return png.with_card_texts(png.as_png(avatar), texts), ()
        except CardError:
            pass
    # A PNG card needs an image, and what people download a card for is the character, which
    # the text chunks hold in full. A stored avatar that cannot be read (damaged, missing, or
    # accepted before uploads were decoded) gets the placeholder of avatar-less characters
    # rather than refusing the card to visitors who could do nothing about it.
    placeholder = png.with_card_texts(png.placeholder_png(character.name), texts)
    return placeholder, _unreadable_avatar(character)


def _unreadable_avatar(character: Character) -> tuple[str, ...]:
    if not character.avatar:
        return ()
    return (AVATAR_UNREADABLE.format(name=character.name),)


def _main_icon_path(card: dict[str, Any], extension: str) -> str:
    """Where the avatar goes in the archive; the card's `main` icon asset is made to point there."""
    data = card["data"]
    assets = data.get("assets")
    if not isinstance(assets, list):
        assets = data["assets"] = []
    for asset in assets:
        if isinstance(asset, dict) and asset.get("type") == "icon" and asset.get("name") == "main":
            path = charx.embedded_path(asset.get("uri"))
            if path is not None:
                return path
            asset.update(uri=f"{charx.EMBEDDED_PREFIX}{MAIN_ICON_DIR}main.{extension}")
            asset.update(ext=extension)
            return f"{MAIN_ICON_DIR}main.{extension}"
    path = f"{MAIN_ICON_DIR}main.{extension}"
    icon = {"type": "icon", "uri": f"{charx.EMBEDDED_PREFIX}{path}", "name": "main"}
    assets.append({**icon, "ext": extension})
    return path


def _asset_files(character: Character) -> tuple[dict[str, bytes], list[str]]:
    """The imported archive's files by path, and a warning for each one storage lacks."""
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    for asset in character.card_assets.all():
        try:
            with asset.file.open("rb") as file:
                files[asset.path] = file.read()
        except OSError:
            # As with the avatar, the row may outlive its file (say, media not restored with
            # the database): the archive goes without it rather than fail for every visitor.
            log.warning(
                "Card asset %s (%r) of character %s is unreadable",
                asset.file.name,
                asset.path,
                character.pk,
            )
            warnings.append(ASSET_MISSING.format(path=asset.path, name=character.name))
    return files, warnings


def _charx(character: Character) -> tuple[bytes, tuple[str, ...]]:
    card = card_object(character)
    files, missing = _asset_files(character)
    # The archive carries the avatar's bytes as they are; only a missing file is left out.
    avatar = _avatar_bytes(character)
    if avatar is not None:
        extension = "png" if png.is_png(avatar) else character.avatar.name.rsplit(".", 1)[-1]
        path = _main_icon_path(card, extension.lower())
        unchanged = character.card_extras.get("avatar_sha256") == hashlib.sha256(avatar).hexdigest()
        if not (unchanged and path in files):
            files[path] = avatar
    warnings = (*missing, *(_unreadable_avatar(character) if avatar is None else ()))
    return charx.write_archive(dump_json(card).encode("utf-8"), files), warnings


def card_export(*, character: Character, fmt: str) -> CardFile:
    """Render the character as a card file in `fmt` (png, json or charx).

    An avatar or an archive file that cannot be read is left out (a PNG card gets the
    placeholder image instead) and named in the file's `warnings`.
    """
    warnings: tuple[str, ...] = ()
    if fmt == "png":
        content, warnings = _png(character)
    elif fmt == "charx":
        content, warnings = _charx(character)
    elif fmt == "json":
        content = dump_json(card_object(character)).encode("utf-8")
    else:
        raise ValueError(f"Unknown card format: {fmt}")
    return CardFile(content, f"{character.slug}.{fmt}", CONTENT_TYPES[fmt], warnings)

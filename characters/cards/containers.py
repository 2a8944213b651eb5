"""Recognise a card file (PNG/APNG, bare JSON or CHARX) and decode its JSON and images."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from characters.cards import charx, png
from characters.cards.errors import CardError
from characters.cards.jsonsafe import decode_utf8, load_json

MAX_CARD_BYTES = 10 * 1024 * 1024
MAX_DATA_URI_CHARS = 4 * 1024 * 1024
_DATA_URI = re.compile(r"data:image/[a-z+.-]+;base64,(.*)", re.IGNORECASE | re.DOTALL)


@dataclass
class DecodedCard:
    payload: Any
    container: str
    image: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _b64_json(text: str, what: str) -> Any:
    text = text.strip()
    if text.startswith("{"):
        return load_json(text, what=what)
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise CardError(f"{what} is not valid base64.") from None
    return load_json(decode_utf8(raw, what=what), what=what)


def _from_png(data: bytes) -> DecodedCard:
    texts = png.card_texts(data)
    if not texts:
        raise CardError("The PNG holds no character card (no `ccv3` or `chara` text chunk).")
    image = png.with_card_texts(data, {})
    if "ccv3" in texts:
        try:
            return DecodedCard(_b64_json(texts["ccv3"], "The card's ccv3 chunk"), "png", image)
        except CardError as error:
            if "chara" not in texts:
                raise
            warning = f"{error.message} The V2 `chara` chunk was used instead."
            payload = _b64_json(texts["chara"], "The card's chara chunk")
            return DecodedCard(payload, "png", image, warnings=[warning])
    return DecodedCard(_b64_json(texts["chara"], "The card's chara chunk"), "png", image)


def _from_charx(data: bytes) -> DecodedCard:
    archive = charx.read_archive(data)
    payload = load_json(decode_utf8(archive.card_json, what="card.json"), what="card.json")
    return DecodedCard(payload, "charx", files=archive.files)


def decode_card_file(data: bytes, *, filename: str = "") -> DecodedCard:
    """Decode an uploaded card; a file that is not one gets a CardError saying why."""
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"The file is too large: the limit is {MAX_CARD_BYTES // 2**20} MB.")
    if not data:
        raise CardError("The file is empty.")
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if png.is_png(data):
        return _from_png(data)
    if charx.is_zip(data):
        return _from_charx(data)
    if extension in ("png", "apng"):
        raise CardError("The file is not a PNG image.")
    if extension == "charx":
        raise CardError("The file is not a CHARX (ZIP) archive.")
    text = decode_utf8(data, what="The file")
    if not text.lstrip().startswith("{"):
        raise CardError("The file is not a character card: expected PNG, JSON or CHARX.")
    return DecodedCard(load_json(text), "json")


def main_icon(assets: list[Any], files: dict[str, bytes]) -> tuple[bytes | None, str | None]:
    """The avatar the card's assets name (`main` icon first), and a warning if it is missing."""
    icons = [a for a in assets if isinstance(a, dict) and a.get("type") == "icon"]
    icons.sort(key=lambda a: a.get("name") != "main")
    for icon in icons:
        uri = icon.get("uri")
        path = charx.embedded_path(uri)
        if path is not None:
            if path in files:
                return files[path], None
            return None, f"The icon {path[:80]} is missing from the archive."
        match = _DATA_URI.fullmatch(uri) if isinstance(uri, str) else None
        if match and len(match.group(1)) <= MAX_DATA_URI_CHARS:
            try:
                return base64.b64decode(match.group(1), validate=True), None
            except (binascii.Error, ValueError):
                return None, "The card's icon is not valid base64."
    return None, None

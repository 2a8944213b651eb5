"""PNG text chunks: read `ccv3`/`chara` from a card image, write them back, make a placeholder.

A small chunk walker rather than Pillow: it reads text chunks after the image data without
decoding pixels, and it rewrites a PNG (or APNG) keeping every other chunk byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from characters.cards.errors import CardError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = frozenset({"ccv3", "chara"})
TEXT_TYPES = frozenset({b"tEXt", b"zTXt", b"iTXt"})
MAX_TEXT_BYTES = 16 * 1024 * 1024
PLACEHOLDER_SIZE = (400, 600)
# What Pillow raises for a damaged image, depending on the format and where the damage is
# (UnidentifiedImageError is an OSError).
IMAGE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class Chunk:
    kind: bytes
    data: bytes


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_chunks(data: bytes) -> list[Chunk]:
    """Split a PNG into chunks (up to IEND); a truncated or malformed file is refused."""
    if not is_png(data):
        raise CardError("The file is not a PNG image.")
    chunks: list[Chunk] = []
    offset = len(PNG_SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise CardError("The PNG image is damaged (it ends too early).")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length + 4
        if end > len(data) or not kind.isalpha():
            raise CardError("The PNG image is damaged.")
        chunks.append(Chunk(kind, data[offset + 8 : offset + 8 + length]))
        offset = end
        if kind == b"IEND":
            return chunks


def write_chunks(chunks: list[Chunk]) -> bytes:
    out = io.BytesIO()
    out.write(PNG_SIGNATURE)
    for chunk in chunks:
        out.write(struct.pack(">I4s", len(chunk.data), chunk.kind))
        out.write(chunk.data)
        out.write(struct.pack(">I", zlib.crc32(chunk.kind + chunk.data) & 0xFFFFFFFF))
    return out.getvalue()


def _keyword(chunk: Chunk) -> str:
    return chunk.data.split(b"\x00", 1)[0].decode("latin-1").lower()


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error:
        raise CardError("A compressed text chunk of the PNG is damaged.") from None
    if inflater.unconsumed_tail:
        raise CardError("A compressed text chunk of the PNG is too large.")
    return out


def _text_value(chunk: Chunk) -> str:
    _, _, rest = chunk.data.partition(b"\x00")
    if chunk.kind == b"tEXt":
        return rest.decode("latin-1")
    if chunk.kind == b"zTXt":
        return _inflate(rest[1:]).decode("latin-1")
    compressed = rest[:1] == b"\x01"
    # iTXt: flag, method, language tag NUL, translated keyword NUL, UTF-8 text.
    parts = rest[2:].split(b"\x00", 2)
    if len(parts) < 3:
        raise CardError("An international text chunk of the PNG is damaged.")
    raw = _inflate(parts[2]) if compressed else parts[2]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CardError("A text chunk of the PNG is not UTF-8.") from None


def card_texts(data: bytes) -> dict[str, str]:
    """The `ccv3` and `chara` texts of a PNG, keywords compared lowercased; first one wins."""
    found: dict[str, str] = {}
    for chunk in read_chunks(data):
        if chunk.kind in TEXT_TYPES:
            keyword = _keyword(chunk)
            if keyword in CARD_KEYWORDS and keyword not in found:
                found[keyword] = _text_value(chunk)
    return found


def with_card_texts(png: bytes, texts: dict[str, str]) -> bytes:
    """Drop any card chunks and add `texts` as tEXt chunks just before IEND."""
    kept = [
        c for c in read_chunks(png) if not (c.kind in TEXT_TYPES and _keyword(c) in CARD_KEYWORDS)
    ]
    added = [
        Chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("ascii")) for k, v in texts.items()
    ]
    return write_chunks([*kept[:-1], *added, kept[-1]])


def as_png(image: bytes) -> bytes:
    """The image as PNG bytes: a PNG is kept as is (APNG frames too), others are converted."""
    if is_png(image):
        return image
    try:
        with Image.open(io.BytesIO(image)) as source:
            out = io.BytesIO()
            source.convert("RGBA").save(out, format="PNG")
    except IMAGE_ERRORS:
        raise CardError("The avatar is not a readable image.") from None
    return out.getvalue()


def placeholder_png(name: str) -> bytes:
    """A plain portrait with the name's initial, for characters without an avatar."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    background = (64 + digest[0] // 2, 64 + digest[1] // 2, 64 + digest[2] // 2)
    image = Image.new("RGB", PLACEHOLDER_SIZE, background)
    initial = (name.strip()[:1] or "?").upper()
    font = ImageFont.load_default(size=220)
    draw = ImageDraw.Draw(image)
    draw.text(
        (PLACEHOLDER_SIZE[0] / 2, PLACEHOLDER_SIZE[1] / 2),
        initial,
        fill=(245, 245, 245),
        font=font,
        anchor="mm",
    )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()

"""CHARX archives: a ZIP with `card.json` at the root and assets addressed `embeded://path`.

Every limit is checked against the central directory before a single member is read, and
each member is then read with a hard cap in case its header lied about its size.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from dataclasses import dataclass, field

from characters.cards.errors import CardError

CARD_JSON = "card.json"
MAX_ENTRIES = 500
MAX_TOTAL_BYTES = 50 * 1024 * 1024
MAX_MEMBER_BYTES = 20 * 1024 * 1024
MAX_RATIO = 200
RATIO_FLOOR_BYTES = 1024 * 1024
# What a CHARX carries (images, audio, models) is compressed already and its card.json is text:
# a whole archive unpacking to more than this many times its size is a way to turn small
# uploads into large writes to storage, file by file under the per-file check.
MAX_TOTAL_RATIO = 20
EMBEDDED_PREFIX = "embeded://"


@dataclass(frozen=True)
class Archive:
    card_json: bytes
    files: dict[str, bytes] = field(default_factory=dict)


def is_zip(data: bytes) -> bool:
    return data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06")


def _safe_name(name: str) -> str:
    """The member's path; anything that could land outside the archive is refused."""
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part == ".." for part in name.split("/"))
    ):
        raise CardError(f"The archive holds a path outside itself: {name[:80]!r}.")
    normalised = posixpath.normpath(name)
    if normalised.startswith("../") or normalised in ("..", "."):
        raise CardError(f"The archive holds a path outside itself: {name[:80]!r}.")
    return normalised


def _check_directory(
    infos: list[zipfile.ZipInfo], archive_bytes: int
) -> list[tuple[str, zipfile.ZipInfo]]:
    if len(infos) > MAX_ENTRIES:
        raise CardError(f"The archive has too many files (at most {MAX_ENTRIES}).")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > MAX_TOTAL_BYTES:
        limit = MAX_TOTAL_BYTES // (1024 * 1024)
        raise CardError(f"The archive unpacks to more than {limit} MB.")
    if unpacked > RATIO_FLOOR_BYTES and unpacked > MAX_TOTAL_RATIO * archive_bytes:
        raise CardError(
            "The archive is compressed suspiciously well (a zip bomb?): it unpacks to more "
            f"than {MAX_TOTAL_RATIO} times its size."
        )
    members: list[tuple[str, zipfile.ZipInfo]] = []
    seen: set[str] = set()
    for info in infos:
        name = _safe_name(info.filename)
        if info.flag_bits & 0x1:
            raise CardError("The archive is encrypted.")
        if info.file_size > MAX_MEMBER_BYTES:
            raise CardError(f"A file in the archive is too large: {name[:80]}.")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            raise CardError("The archive is compressed suspiciously well (a zip bomb?).")
        if info.is_dir():
            continue
        if name in seen:
            raise CardError(f"The archive holds the same path twice: {name[:80]}.")
        seen.add(name)
        members.append((name, info))
    return members


def read_archive(data: bytes) -> Archive:
    """Read a CHARX archive into memory, with caps on entries, sizes and paths."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = _check_directory(archive.infolist(), len(data))
            files: dict[str, bytes] = {}
            for name, info in members:
                with archive.open(info) as member:
                    content = member.read(info.file_size + 1)
                if len(content) != info.file_size:
                    raise CardError(f"A file in the archive is damaged: {name[:80]}.")
                files[name] = content
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        EOFError,
        OSError,
        zlib.error,
    ):
        raise CardError("The file is not a readable CHARX (ZIP) archive.") from None
    card_json = files.pop(CARD_JSON, None)
    if card_json is None:
        raise CardError("The archive has no card.json at its root.")
    return Archive(card_json=card_json, files=files)


def embedded_path(uri: object) -> str | None:
    """The archive path an `embeded://` URI points at, or None for other URIs."""
    if not isinstance(uri, str) or not uri.startswith(EMBEDDED_PREFIX):
        return None
    try:
        return _safe_name(uri[len(EMBEDDED_PREFIX) :])
    except CardError:
        return None


def write_archive(card_json: bytes, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CARD_JSON, card_json)
        for name, content in sorted(files.items()):
            if name != CARD_JSON:
                archive.writestr(name, content)
    return out.getvalue()

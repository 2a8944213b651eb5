"""Bad files get a clear error and write nothing: no rows, no files."""

from __future__ import annotations

import base64
import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from characters.cards import charx as charx_module
from characters.cards import lorebooks
from characters.cards.errors import CardError
from characters.cards.services import character_import_card
from characters.models import CardAsset, Character, Lorebook, LorebookEntry, SampleDialogue
from tests.characters.cards import corpus


def _stored_files(root) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _refused(owner, data: bytes, filename: str, media_root) -> str:
    with pytest.raises(CardError) as error:
        character_import_card(owner=owner, data=data, filename=filename)
    assert Character.objects.count() == 0
    assert SampleDialogue.objects.count() == 0
    assert Lorebook.objects.count() == LorebookEntry.objects.count() == 0
    assert CardAsset.objects.count() == 0
    assert _stored_files(media_root) == []
    return error.value.message


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _card_json() -> bytes:
    return json.dumps(corpus.v3_card()).encode()


def _deep(levels: int) -> str:
    return '{"name": "x", "data": ' + "[" * levels + "]" * levels + "}"


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"GIF89a not a png at all", "card.png", "not a PNG"),
        (corpus.image_bytes(), "plain.png", "no character card"),
        (corpus.png_card({"chara": "!!!not-base64!!!"}), "c.png", "not valid base64"),
        (
            corpus.png_card({"chara": base64.b64encode(b"{nope").decode()}),
            "c.png",
            "not valid JSON",
        ),
        (
            corpus.png_card({"chara": base64.b64encode(b'{"name":"\xff\xfe"}').decode()}),
            "c.png",
            "not UTF-8",
        ),
        (corpus.image_bytes()[:40], "cut.png", "damaged"),
        ('{"name": "Élodie"}'.encode("latin-1"), "c.json", "not UTF-8"),
        (b'{"spec": "chara_card_v9", "data": {}}', "c.json", "Unknown card spec"),
        (b'{"spec": "lorebook_v3", "data": {"entries": []}}', "c.json", "lorebook, not"),
        (b'{"spec": "chara_card_v2", "data": "oops"}', "c.json", "no `data` object"),
        (b'{"hello": "world"}', "c.json", "not a character card"),
        (b"[1, 2, 3]", "c.json", "not a character card"),
        (b"just some text", "notes.txt", "expected PNG, JSON or CHARX"),
        (b"", "empty.json", "empty"),
        (_deep(100).encode(), "deep.json", "nested too deeply"),
        (_deep(100_000).encode(), "bomb.json", "nested too deeply"),
        (b'{"name": "a\\u0000b"}', "nul.json", "NUL"),
        (b'{"name": "\\ud800"}', "surrogate.json", "invalid Unicode"),
        (b'{"name": "x", "description": NaN}', "nan.json", "not valid JSON"),
        (json.dumps({"name": "x" * 101}).encode(), "long.json", "name"),
        (b"PK\x03\x04 broken zip", "c.charx", "not a readable CHARX"),
        (b"{}", "c.charx", "not a CHARX"),
    ],
)
def test_malformed_files_are_refused_and_nothing_is_written(
    alice, media_root, data, filename, message
):
    assert message in _refused(alice, data, filename, media_root)


def test_oversized_files_are_refused(alice, media_root):
    data = b'{"name": "x", "description": "' + b"a" * (10 * 1024 * 1024) + b'"}'

    assert "too large" in _refused(alice, data, "big.json", media_root)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../evil.txt": b"x", "card.json": b"{}"}, "outside itself"),
        ({"/etc/passwd": b"x", "card.json": b"{}"}, "outside itself"),
        ({"assets/../../evil": b"x", "card.json": b"{}"}, "outside itself"),
        ({"C:/windows/evil": b"x", "card.json": b"{}"}, "outside itself"),
        ({"assets\\evil": b"x", "card.json": b"{}"}, "outside itself"),
        ({"notcard.json": b"{}"}, "no card.json"),
        ({"card.json": b"\xff\xfe\x00"}, "not UTF-8"),
    ],
)
def test_hostile_or_incomplete_charx_archives_are_refused(alice, media_root, members, message):
    assert message in _refused(alice, _zip(members), "c.charx", media_root)


def test_charx_with_too_many_entries_is_refused_before_reading(alice, media_root):
    members = {f"assets/other/{i}.txt": b"" for i in range(charx_module.MAX_ENTRIES + 1)}
    members["card.json"] = _card_json()

    assert "too many files" in _refused(
        alice, _zip(members, zipfile.ZIP_STORED), "c.charx", media_root
    )


def test_charx_zip_bomb_is_refused_by_its_declared_size(alice, media_root):
    bomb = b"\x00" * (charx_module.MAX_TOTAL_BYTES + 1)
    data = _zip({"card.json": _card_json(), "assets/other/bomb.bin": bomb})

    assert len(data) < 1024 * 1024
    assert "unpacks to more than" in _refused(alice, data, "c.charx", media_root)


def test_charx_member_compressed_suspiciously_well_is_refused(alice, media_root):
    data = _zip({"card.json": _card_json(), "assets/other/bomb.bin": b"\x00" * (5 * 1024 * 1024)})

    assert "zip bomb" in _refused(alice, data, "c.charx", media_root)


def test_charx_of_small_files_that_unpack_far_beyond_its_size_is_refused(alice, media_root):
    # Each file stays under the size at which a single file's ratio is checked.
    zeros = b"\x00" * charx_module.RATIO_FLOOR_BYTES
    members = {f"assets/other/other/f{i}.bin": zeros for i in range(10)}
    data = _zip({"card.json": _card_json(), **members})

    assert len(data) * charx_module.MAX_TOTAL_RATIO < 10 * len(zeros)
    message = _refused(alice, data, "c.charx", media_root)

    assert "zip bomb" in message
    assert f"more than {charx_module.MAX_TOTAL_RATIO} times its size" in message


def test_charx_whose_files_are_already_compressed_is_imported(alice, media_root):
    # Images, audio and models do not shrink much: the archive is about its unpacked size.
    noise = random.Random(0).randbytes(2 * charx_module.RATIO_FLOOR_BYTES)
    data = _zip({"card.json": _card_json(), "assets/other/other/noise.bin": noise})

    result = character_import_card(owner=alice, data=data, filename="c.charx")

    assert result.character.card_assets.get().size == len(noise)


def test_lorebook_with_more_keys_than_a_message_may_scan_is_refused(alice, media_root):
    card = corpus.v2_card()
    keys_each = 100
    entries = lorebooks.MAX_KEYS // keys_each + 1
    card["data"]["character_book"]["entries"] = [
        {
            "keys": [f"key {n}-{k}" for k in range(keys_each)],
            "content": f"Entry {n}.",
            "extensions": {},
            "enabled": True,
            "insertion_order": n,
        }
        for n in range(entries)
    ]

    message = _refused(alice, json.dumps(card).encode(), "c.json", media_root)

    assert message == (
        f"The lorebook has too many keys: {entries * keys_each:,} across its entries "
        f"(at most {lorebooks.MAX_KEYS:,})."
    )


def test_charx_member_that_lies_about_its_size_is_refused(alice, media_root):
    data = bytearray(_zip({"card.json": _card_json(), "a.txt": b"hello world"}, zipfile.ZIP_STORED))
    # Shrink the declared size of a.txt in its central directory record.
    record = data.rfind(b"PK\x01\x02")
    data[record + 24 : record + 28] = (3).to_bytes(4, "little")

    message = _refused(alice, bytes(data), "c.charx", media_root)

    assert "damaged" in message or "not a readable" in message


def test_newer_spec_version_is_imported_with_a_warning(alice):
    card = corpus.v3_card()
    card["spec_version"] = "3.5"

    result = character_import_card(owner=alice, data=json.dumps(card).encode(), filename="c.json")

    assert result.character.pk is not None
    assert any("newer" in warning for warning in result.warnings)


def test_a_broken_ccv3_chunk_falls_back_to_chara_with_a_warning(alice):
    data = corpus.png_card({"ccv3": "%%%", "chara": corpus.b64(corpus.v2_card())})

    result = character_import_card(owner=alice, data=data, filename="c.png")

    assert result.character.name == corpus.V1["name"]
    assert any("chara" in warning for warning in result.warnings)


def test_files_written_before_a_storage_failure_are_removed(alice, media_root):
    media_root.mkdir(parents=True)
    (media_root / "card_assets").write_text("a file where the asset folder should be")
    files = {"assets/icon/images/main.png": corpus.image_bytes(), "assets/other/a.bin": b"x"}
    data = corpus.charx(corpus.v3_charx_card(), files)

    with pytest.raises(CardError, match="could not be saved"):
        character_import_card(owner=alice, data=data, filename="c.charx")

    assert Character.objects.count() == 0
    assert Lorebook.objects.count() == 0
    assert [p.name for p in _stored_files(media_root)] == ["card_assets"]

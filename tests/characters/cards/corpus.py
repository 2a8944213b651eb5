"""Cards the tests build, written the way other apps write them (Pillow, zipfile), not by us."""

from __future__ import annotations

import base64
import copy
import io
import json
import struct
import zipfile
import zlib
from typing import Any

from PIL import Image, PngImagePlugin


def b64(card: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8")).decode("ascii")


def image_bytes(color: tuple[int, int, int] = (200, 80, 120), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 48), color).save(out, format=fmt)
    return out.getvalue()


def truncated_jpeg() -> bytes:
    """A JPEG cut in half: Pillow reads its header and verify() passes, but it cannot decode."""
    out = io.BytesIO()
    Image.effect_noise((300, 300), 64).convert("RGB").save(out, format="JPEG", quality=95)
    return out.getvalue()[: len(out.getvalue()) // 2]


def png_with_odd_chunk() -> bytes:
    """A PNG Pillow decodes, holding a chunk whose type has a digit (the PNG spec allows only
    letters, so the card writer refuses the file)."""
    data = image_bytes()
    kind, body = b"ab1_", b"hello"
    crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return data[:-12] + struct.pack(">I4s", len(body), kind) + body + crc + data[-12:]


def png_card(texts: dict[str, str], *, compressed: str = "") -> bytes:
    """A PNG with text chunks; `compressed` names a keyword to write as zTXt, or iTXt if it
    starts with 'i:'."""
    info = PngImagePlugin.PngInfo()
    for keyword, value in texts.items():
        if compressed == keyword:
            info.add_text(keyword, value, zip=True)
        elif compressed == f"i:{keyword}":
            info.add_itxt(keyword, value, zip=True)
        else:
            info.add_text(keyword, value)
    out = io.BytesIO()
    Image.new("RGB", (32, 48), (40, 90, 160)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def png_text_chunks(data: bytes) -> dict[str, str]:
    with Image.open(io.BytesIO(data)) as image:
        assert isinstance(image, PngImagePlugin.PngImageFile)
        return dict(image.text)


def decode_chunk(value: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(value).decode("utf-8"))
    return decoded


def charx(card: dict[str, Any], files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(card, ensure_ascii=False))
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def charx_contents(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return json.loads(files.pop("card.json")), files


V1 = {
    "name": "Élodie 🌙",
    "description": "{{char}} is a night-market cartographer who maps <USER>'s dreams.",
    "personality": "dry, precise, secretly sentimental",
    "scenario": "Tōkyō, 3 a.m., under neon rain.",
    "first_mes": "*unrolls a map* You again, {{user}}?",
    "mes_example": "<START>\n{{user}}: What are you drawing?\n{{char}}: *taps the paper* You.\n"
    "It's not finished.\n<START>\n<BOT>: Hold still.",
    # SillyTavern's legacy fields, written next to the V1 ones.
    "creatorcomment": "Made for the test corpus.",
    "talkativeness": "0.5",
    "fav": False,
    "tags": ["fantasy", "日本"],
    "create_date": "2024-5-1 @12h 00m 00s 000ms",
    "avatar": "none",
}


def lore_entries() -> list[dict[str, Any]]:
    """One entry per lorebook option, plus ST's extras under `extensions`."""
    return [
        {
            "keys": ["market", "Night Market"],
            "content": "The night market opens when the last train leaves.",
            "extensions": {"position": 0, "depth": 4, "selectiveLogic": 0, "probability": 100},
            "enabled": True,
            "insertion_order": 10,
            "case_sensitive": False,
            "name": "market",
            "priority": 5,
            "id": 1,
            "comment": "basic keyed entry",
            "selective": False,
            "secondary_keys": [],
            "constant": False,
            "position": "before_char",
        },
        {
            "keys": ["/drag(on|ons)\\b/i"],
            "content": "Dragons sleep beneath the station.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 20,
            "use_regex": True,
            "case_sensitive": True,
            "id": "entry-two",
            "position": "after_char",
        },
        {
            "keys": ["map"],
            "secondary_keys": "ink, paper",
            "selective": True,
            "content": "Maps drawn in {{char}}'s ink move on their own.",
            "extensions": {"selectiveLogic": 0, "unknown_st_field": [1, 2]},
            "enabled": True,
            "insertion_order": 30.0,
        },
        {
            "keys": [],
            "content": "It always rains in this city.",
            "extensions": {},
            "enabled": True,
            "insertion_order": 0,
            "constant": True,
            "priority": 100,
        },
        {
            "keys": ["forbidden"],
            "content": "Disabled entries never fire.",
            "extensions": {},
            "enabled": False,
            "insertion_order": 40,
            "a_future_field": {"nested": ["kept"]},
        },
    ]


def lorebook() -> dict[str, Any]:
    return {
        "name": "Neon atlas",
        "description": "Places of the city.",
        "scan_depth": 3,
        "token_budget": 500,
        "recursive_scanning": True,
        "extensions": {"world_id": "atlas"},
        "entries": lore_entries(),
    }


def v2_data() -> dict[str, Any]:
    data = {k: V1[k] for k in ("name", "description", "personality", "scenario")}
    data |= {k: V1[k] for k in ("first_mes", "mes_example")}
    return data | {
        "creator_notes": "Best with a slow pace.",
        "system_prompt": "{{original}}\nWrite in present tense.",
        "post_history_instructions": "Stay in character.",
        "alternate_greetings": ["*looks up* Oh. It's you.", "Lost again, {{user}}?"],
        "character_book": lorebook(),
        "tags": ["fantasy", "日本"],
        "creator": "tester",
        "character_version": "1.2",
        "extensions": {
            "talkativeness": "0.5",
            "fav": False,
            "world": "Neon atlas",
            "depth_prompt": {"prompt": "Rain.", "depth": 4, "role": "system"},
            "chub": {"id": 123, "full_path": "tester/elodie"},
        },
        "a_writer_specific_field": {"x": 1},
    }


def v2_card(*, st_top_level: bool = True) -> dict[str, Any]:
    card: dict[str, Any] = {"spec": "chara_card_v2", "spec_version": "2.0", "data": v2_data()}
    if st_top_level:
        card |= {k: V1[k] for k in ("name", "description", "personality", "scenario")}
        card |= {k: V1[k] for k in ("first_mes", "mes_example")}
        card |= {"creatorcomment": "Best with a slow pace.", "talkativeness": "0.5"}
        card |= {"fav": False, "tags": ["fantasy", "日本"], "create_date": "2024-5-1"}
    return card


def v3_card() -> dict[str, Any]:
    data = v2_data() | {
        "nickname": "Elle",
        "creator_notes_multilingual": {"fr": "À lire lentement."},
        "source": ["https://example.com/cards/elodie"],
        "group_only_greetings": ["*nods to everyone*"],
        "creation_date": 1714560000,
        "modification_date": 1714570000,
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "a_future_v3_field": "kept",
    }
    book = data["character_book"]
    for entry in book["entries"]:
        entry.setdefault("use_regex", False)
    book["entries"][1]["use_regex"] = True
    return {"spec": "chara_card_v3", "spec_version": "3.0", "data": data}


def v3_charx_card() -> dict[str, Any]:
    card = v3_card()
    card["data"]["assets"] = [
        {
            "type": "icon",
            "uri": "embeded://assets/icon/images/main.png",
            "name": "main",
            "ext": "png",
        },
        {
            "type": "emotion",
            "uri": "embeded://assets/emotion/images/happy.png",
            "name": "happy",
            "ext": "png",
        },
        {"type": "x_risu_bgm", "uri": "https://example.com/song.mp3", "name": "bgm", "ext": "mp3"},
    ]
    return card


def without_modification_date(card: dict[str, Any]) -> dict[str, Any]:
    card = copy.deepcopy(card)
    card["data"].pop("modification_date", None)
    return card

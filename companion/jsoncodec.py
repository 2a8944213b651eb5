"""JSON on the path of every streamed token: orjson, and the standard library for what orjson
refuses.

Each token of a model's stream arrives as a JSON object to parse, and each event leaves as JSON
text for the sockets; orjson does either in a third (parsing) to a tenth (writing) of the
standard library's time. A model request's body (the whole prompt, often tens of KiB) is written
by `encode` in one step. orjson refuses a few things the standard library takes: NaN and Infinity,
an escaped unpaired surrogate, integers beyond 64 bits, keys that are not strings. Those are
handed to the standard library, so anything accepted before is accepted still.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(text: str | bytes) -> Any:
    """The value of a JSON document; ValueError when it is not one."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON text, with characters beyond ASCII written as themselves."""
    return encode(value).decode()


def encode(value: Any) -> bytes:
    """`dumps(value)` as UTF-8 bytes, without a text copy on the way."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # Escaped to ASCII: a string holding an unpaired surrogate has no UTF-8 of its own.
        return json.dumps(value, separators=(",", ":")).encode()

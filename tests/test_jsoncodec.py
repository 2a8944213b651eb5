"""JSON on the token path: orjson's speed, the standard library's reach."""

import json
import math

import pytest

from companion import jsoncodec

CHUNK = (
    '{"id":"1","object":"chat.completion.chunk","model":"M2-her","choices":'
    '[{"index":0,"delta":{"content":" word1 \\u20ac","role":"assistant"},"finish_reason":null}]}'
)


@pytest.mark.parametrize("text", [CHUNK, CHUNK.encode(), "[]", '"x"', "12", "null"])
def test_loads_reads_what_the_standard_library_reads(text):
    assert jsoncodec.loads(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "check"),
    [
        ('{"x": NaN}', lambda value: math.isnan(value["x"])),
        ('{"x": Infinity}', lambda value: value["x"] == math.inf),
        ('"\\ud83d"', lambda value: value == "\ud83d"),
        (str(2**70), lambda value: value == 2**70),
    ],
)
def test_loads_takes_what_orjson_refuses(text, check):
    assert check(jsoncodec.loads(text))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", json.JSONDecodeError),
        ("{", json.JSONDecodeError),
        ("data: {}", json.JSONDecodeError),
        ('{"a":1}x', json.JSONDecodeError),
        (b"\xff", UnicodeDecodeError),
    ],
)
def test_loads_refuses_what_is_not_json_with_a_value_error(text, error):
    # Callers catch ValueError, of which both are kinds.
    with pytest.raises(error):
        jsoncodec.loads(text)


def test_dumps_writes_compact_utf8_that_reads_back():
    event = {"type": "reply.delta", "seq": 7, "turn_id": 3, "text": 'Grüße, € 😀\n"q"'}
    text = jsoncodec.dumps(event)
    assert text.startswith('{"type":"reply.delta","seq":7,')
    assert "€ 😀" in text
    assert json.loads(text) == event


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1: "a"}, {"1": "a"}),  # a key that is not a string
        ({"big": 2**70}, {"big": 2**70}),
    ],
)
def test_dumps_writes_what_orjson_refuses(value, expected):
    assert json.loads(jsoncodec.dumps(value)) == expected


def test_dumps_escapes_an_unpaired_surrogate_so_the_text_can_be_sent():
    text = jsoncodec.dumps({"text": "a\ud83db"})
    assert text.encode("utf-8")  # no UnicodeEncodeError on its way to a socket
    assert json.loads(text) == {"text": "a\ud83db"}


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"role": "user", "content": "Grüße, 你好 🌙", "name": "Sam"}], "n": 1.5},
        {1: "a"},  # refused by orjson
        {"big": 2**70},  # refused by orjson
        {"text": "a\ud83db"},  # an unpaired surrogate
    ],
)
def test_encode_is_dumps_as_utf8(value):
    assert jsoncodec.encode(value) == jsoncodec.dumps(value).encode("utf-8")

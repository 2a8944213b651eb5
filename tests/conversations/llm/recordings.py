"""Recorded upstream streams, byte for byte as the services send them (m2her-wire.md)."""

import json


def chunk(content, *, finish=None, usage=None, role="assistant", **extra):
    choice = {
        "index": 0,
        "delta": {"content": content, "role": role, "name": "MiniMax AI", "audio_content": ""},
    }
    if finish:
        choice["finish_reason"] = finish
    body = {
        "id": "06fb3b4c7e1d7a6b5c4d3e2f1a0b9ff8",
        "choices": [choice],
        "created": 1789671513,
        "model": "M2-her",
        "object": "chat.completion.chunk",
        "usage": usage,
        "input_sensitive": False,
        "output_sensitive": False,
        "input_sensitive_type": 0,
        "output_sensitive_type": 0,
        "output_sensitive_int": 0,
    }
    body.update(extra)
    return body


def data(obj):
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def event(kind, obj):
    return b"event: " + kind.encode() + b"\n" + data({**obj, "type": kind})


USAGE_CHUNK = {
    "id": "06fb3b4c7e1d7a6b5c4d3e2f1a0b9ff8",
    "choices": [],
    "created": 1789671513,
    "model": "M2-her",
    "object": "chat.completion.chunk",
    "usage": {
        "total_tokens": 199,
        "total_characters": 0,
        "prompt_tokens": 176,
        "completion_tokens": 23,
        "prompt_tokens_details": {"cached_tokens": 0},
    },
    "base_resp": {"status_code": 0, "status_msg": ""},
}

# /v1/chat/completions as captured in production: a trailing usage-only chunk, no [DONE].
CHAT_USAGE_CHUNK = (
    data(chunk("Hello", usage=None))
    + data(chunk(" there,", role="", usage={"total_tokens": 0, "total_characters": 0}))
    + data(chunk(" traveller.", finish="stop"))
    + data(USAGE_CHUNK)
)

# The documented example: ends after the finish chunk with `usage: null`, nothing else.
CHAT_BARE_END = data(chunk("你好")) + data(chunk("！有什么可以帮助你的吗？", finish="stop"))

# The native endpoint's documented stream: the last frame repeats the whole reply.
NATIVE_FINAL_FRAME = (
    data(chunk("你好"))
    + data(chunk("！有什么可以帮助你的吗？", finish="stop"))
    + data(
        {
            "id": "02ff",
            "choices": [
                {
                    "finish_reason": "stop",
                    "index": 0,
                    "message": {"content": "你好！有什么可以帮助你的吗？", "role": "assistant"},
                }
            ],
            "created": 1722829751,
            "model": "M2-her",
            "object": "chat.completion",
            "usage": {"total_tokens": 73},
            "input_sensitive": False,
            "output_sensitive": False,
            "input_sensitive_type": 0,
            "output_sensitive_type": 0,
            "base_resp": {"status_code": 0, "status_msg": ""},
        }
    )
)

WITH_DONE = data(chunk("Hi")) + data(chunk("!", finish="stop")) + b"data: [DONE]\n\n"

THINK_SPLIT = (
    data(chunk("<thi"))
    + data(chunk("nk>The user greets me"))
    + data(chunk(".</th"))
    + data(chunk("ink>\n\nHello"))
    + data(chunk(" back!", finish="stop"))
    + data(USAGE_CHUNK)
)

LENGTH = data(chunk("Once upon")) + data(chunk(" a time", finish="length")) + data(USAGE_CHUNK)

ENDS_WITHOUT_FINISH = data(chunk("Half a")) + data(chunk(" reply"))

INPUT_FLAGGED_EMPTY = data(
    chunk("", finish="stop", input_sensitive=True, input_sensitive_type=2)
) + data({**USAGE_CHUNK, "input_sensitive": True, "input_sensitive_type": 2})

OUTPUT_FLAGGED_TEXT = data(chunk("Let's talk")) + data(
    chunk(" about something else.", finish="stop", output_sensitive=True, output_sensitive_type=5)
)

MID_STREAM_BASE_RESP = (
    data(chunk("Sure,"))
    + data(chunk(" here"))
    + data({"choices": [], "base_resp": {"status_code": 1027, "status_msg": "output sensitive"}})
)

MID_STREAM_ERROR_ENVELOPE = data(chunk("Sure,")) + data(
    {"error": {"message": "upstream stream failed (1000)", "type": "api_error"}}
)

FINAL_FRAME_ONLY = data(
    {
        "id": "x",
        "choices": [{"finish_reason": "stop", "index": 0, "message": {"content": "All at once."}}],
        "object": "chat.completion",
        "usage": {"prompt_tokens": 180, "completion_tokens": 4, "total_tokens": 184},
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }
)

_WHERE = {"content_index": 0, "item_id": "msg_30eb", "output_index": 0}
_RESPONSE = {
    "created_at": 1770798626,
    "id": "resp_54cc",
    "model": "M2-her",
    "object": "response",
    "output": [],
    "status": "in_progress",
}
_USAGE = {
    "input_tokens": 181,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 121,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 302,
}


def _responses(deltas, terminal, terminal_response):
    out = event("response.created", {"response": _RESPONSE, "sequence_number": 0})
    out += event("response.in_progress", {"response": _RESPONSE, "sequence_number": 1})
    item = {"id": "msg_30eb", "type": "message", "role": "assistant", "status": "in_progress"}
    out += event("response.output_item.added", {"item": item, "output_index": 0})
    out += event("response.content_part.added", {"part": {"type": "output_text", "text": ""}})
    for index, text in enumerate(deltas):
        out += event(
            "response.output_text.delta", {**_WHERE, "delta": text, "sequence_number": 4 + index}
        )
    full = "".join(deltas)
    out += event("response.output_text.done", {**_WHERE, "text": full})
    out += event("response.content_part.done", {**_WHERE, "part": {"text": full}})
    return out + event(terminal, {"response": terminal_response})


# The DMXAPI relay's capture of M2-her on /v1/responses.
RESPONSES_COMPLETED = _responses(
    ["鲁迅，原", "名周树人。"],
    "response.completed",
    {**_RESPONSE, "status": "completed", "usage": _USAGE},
)
RESPONSES_INCOMPLETE = _responses(
    ["It was a dark"],
    "response.incomplete",
    {
        **_RESPONSE,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": _USAGE,
    },
)
RESPONSES_FAILED = event("response.created", {"response": _RESPONSE}) + event(
    "response.failed",
    {
        "response": {
            **_RESPONSE,
            "status": "failed",
            "error": {"code": "rate_limit_exceeded", "message": "slow down"},
        }
    },
)
RESPONSES_ERROR_EVENT = event("response.output_text.delta", {**_WHERE, "delta": "Partial"}) + event(
    "error", {"code": "server_error", "message": "boom (1000)", "param": None}
)

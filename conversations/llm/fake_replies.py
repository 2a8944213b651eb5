"""What the fake M2-her server answers: deterministic replies and scripted faults.

The reply echoes the last user message ("You said: …"), or `[[words=N]]` gives N numbered
words. Markers in the last user message (or the `X-Fake-Scenario` header, comma-separated)
select faults, e.g. `[[rate_limit=0.1]]`, `[[cut=2]]`, `[[fail=2]][[overload]]`. See `FAULTS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"\[\[([a-z_0-9]+)(?:=([^\]]*))?\]\]")
WORD = re.compile(r"\S+\s*|\s+")
_CODE = re.compile(r"\s*\((\d{4,5})\)\s*$")

FAULTS: dict[str, str] = {
    "rate_limit": "HTTP 429 with Retry-After (value: seconds, default 1)",
    "auth": "HTTP 401, MiniMax code 1004",
    "balance": "HTTP 402, insufficient balance (1008)",
    "overload": "HTTP 529, cluster under high load (2064)",
    "bad_request": "HTTP 400, invalid params (2013)",
    "context": "HTTP 400, context length exceeded",
    "openai_envelope": "errors in the OpenAI `{error: {...}}` envelope",
    "error_in_200": "HTTP 200 JSON body with a non-zero base_resp (value: code, default 1000)",
    "input_flag": "input_sensitive with an empty reply (value: type, default 2)",
    "output_flag": "output_sensitive with an empty reply (value: type, default 5)",
    "cut": "close the connection after N deltas (default: half the reply)",
    "slow_first_byte": "wait N seconds before answering",
    "stall": "wait N seconds after the first delta",
    "slow_body": "send the headers, then wait N seconds before the first event",
    "end": "how a chat stream ends: usage_chunk, final_frame, total_only, bare",
    "done": "add `data: [DONE]`",
    "linger": "keep the body open N seconds after the last event (default 1)",
    "no_finish": "end the stream cleanly without any finish reason",
    "length": "finish_reason length",
    "think": "open the reply with a <think> block split across deltas",
    "midstream_error": "an error chunk after two deltas (value: code, default 1000)",
    "midstream_error_envelope": "an `{error: {...}}` chunk after two deltas",
    "json_reply": "answer a streaming request with a plain JSON body",
    "fail": "apply the other faults only to the first N requests with this message",
    "words": "reply with N numbered words",
    "tps": "tokens per second for this reply",
    "unstorable": "the reply holds a NUL and an unpaired surrogate (sent as JSON escapes)",
}
THINK_DELTAS = ("<thi", "nk>Let me consider", " the question.</th", "ink>\n\n")
# style -> fault -> (HTTP status, error type, message)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limit": (429, "rate_limit_error", "rate limit exceeded (1002)"),
    "auth": (401, "authorized_error", "invalid api key (2049)"),
    "balance": (402, "insufficient_balance_error", "insufficient balance (1008)"),
    "overload": (
        529,
        "overloaded_error",
        "The server cluster is currently under high load. (2064)",
    ),
    "bad_request": (400, "bad_request_error", "invalid params, invalid chat setting (2013)"),
    "context": (400, "invalid_request_error", "This model's maximum context length is exceeded"),
}
ERROR_FAULTS = tuple(_ERRORS)


@dataclass
class Scenario:
    faults: dict[str, str] = field(default_factory=dict)
    user_text: str = ""

    def has(self, name: str) -> bool:
        return name in self.faults

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.faults.get(name) or default)
        except ValueError:
            return default


def last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages", body.get("input"))
    if isinstance(messages, str):
        return messages
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def parse_scenario(body: dict[str, Any], header: str = "") -> Scenario:
    text = last_user_text(body)
    faults = {name: value or "" for name, value in MARKER.findall(text)}
    for item in filter(None, (part.strip() for part in header.split(","))):
        name, _, value = item.partition("=")
        faults[name] = value
    return Scenario(faults=faults, user_text=MARKER.sub("", text).strip())


def reply_deltas(scenario: Scenario) -> list[str]:
    if scenario.has("unstorable"):
        return ["Hi ", "\x00there", " \ud83d", " friend"]
    words = int(scenario.number("words", 0))
    if words > 0:
        text = " ".join(f"word{i}" for i in range(1, words + 1))
    else:
        text = f"You said: {scenario.user_text or 'nothing'}"
    return WORD.findall(text)


def usage_numbers(body: dict[str, Any], completion: int) -> tuple[int, int]:
    messages = body.get("messages", body.get("input"))
    chars = (
        sum(len(str(m.get("content") or "")) for m in messages or [] if isinstance(m, dict))
        if isinstance(messages, list)
        else len(str(messages or ""))
    )
    return 176 + chars // 4, completion


def error_reply(style: str, fault: str, scenario: Scenario) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a scripted failure, in the envelope each style uses."""
    status, kind, message = _ERRORS[fault]
    code_match = _CODE.search(message)
    code = int(code_match.group(1)) if code_match else 2013
    if style == "chatcompletion_v2":
        # The native endpoint reports failures inside an HTTP 200 body.
        status_msg = _CODE.sub("", message)
        return 200, {"base_resp": {"status_code": code, "status_msg": status_msg}}
    if style == "responses" or scenario.has("openai_envelope"):
        return status, {"error": {"message": message, "type": kind, "param": "", "code": None}}
    return status, {
        "type": "error",
        "error": {"type": kind, "message": message, "http_code": str(status)},
        "request_id": "0" * 32,
    }


def chat_chunk(
    rid: str, model: str, content: str | None, finish: str | None = None, **flags: Any
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "delta": {"content": content or "", "role": "assistant", "name": "MiniMax AI"},
    }
    if finish:
        choice["finish_reason"] = finish
    return {
        "id": rid,
        "choices": [choice],
        "created": 1768483232,
        "model": model,
        "object": "chat.completion.chunk",
        "usage": None,
        "input_sensitive": flags.get("input_sensitive", False),
        "output_sensitive": flags.get("output_sensitive", False),
        "input_sensitive_type": flags.get("input_sensitive_type", 0),
        "output_sensitive_type": flags.get("output_sensitive_type", 0),
        "output_sensitive_int": 0,
    }


def chat_whole(
    rid: str, model: str, text: str, finish: str, usage: tuple[int, int], **flags: Any
) -> dict[str, Any]:
    """The non-streamed body, which is also the final frame of a native stream."""
    frame = chat_chunk(rid, model, None, finish, **flags)
    frame["object"] = "chat.completion"
    frame["choices"][0].pop("delta")
    frame["choices"][0]["message"] = {"content": text, "role": "assistant", "name": "MiniMax AI"}
    frame["usage"] = usage_dict(usage)
    frame["base_resp"] = {"status_code": 0, "status_msg": ""}
    return frame


def usage_dict(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {
        "total_tokens": prompt + completion,
        "total_characters": 0,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }


def response_object(
    rid: str, model: str, status: str, text: str = "", usage: tuple[int, int] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "created_at": 1770798626,
        "id": rid,
        "model": model,
        "object": "response",
        "output": [],
        "status": status,
    }
    if text:
        obj["output"] = [
            {
                "id": "msg_" + rid[5:],
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
    if usage is not None:
        obj["usage"] = {
            "input_tokens": usage[0],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage[1],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage[0] + usage[1],
        }
    return obj

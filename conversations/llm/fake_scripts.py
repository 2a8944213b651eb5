"""The event scripts of the fake M2-her server's streams, one per wire style.

A script yields steps: ("delta", bytes) is paced at the server's token rate, ("frame", bytes)
is sent at once, ("sleep", seconds) pauses, ("cut", None) drops the connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from conversations.llm.fake_replies import (
    THINK_DELTAS,
    Scenario,
    chat_chunk,
    chat_whole,
    reply_deltas,
    response_object,
    usage_dict,
    usage_numbers,
)

Step = tuple[str, Any]
_MARK = "\u0000delta\u0000"


def dumps(obj: Any) -> bytes:
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:  # an unpaired surrogate: only a JSON escape can carry it
        return json.dumps(obj, separators=(",", ":")).encode()


def sse(obj: Any, event: str = "") -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + dumps(obj) + b"\n\n"


def _flags(scenario: Scenario) -> dict[str, Any]:
    if scenario.has("input_flag"):
        return {
            "input_sensitive": True,
            "input_sensitive_type": int(scenario.number("input_flag", 2)),
        }
    if scenario.has("output_flag"):
        return {
            "output_sensitive": True,
            "output_sensitive_type": int(scenario.number("output_flag", 5)),
        }
    return {}


def planned_deltas(scenario: Scenario) -> list[str]:
    if scenario.has("input_flag") or scenario.has("output_flag"):
        return []
    deltas = reply_deltas(scenario)
    return [*THINK_DELTAS, *deltas] if scenario.has("think") else deltas


def whole_body(style: str, scenario: Scenario, body: dict[str, Any], rid: str) -> dict[str, Any]:
    """The non-streamed answer."""
    model = str(body.get("model") or "M2-her")
    deltas = planned_deltas(scenario)
    text = "".join(deltas)
    usage = usage_numbers(body, len(deltas))
    finish = "length" if scenario.has("length") else "stop"
    if style == "responses":
        flagged = bool(_flags(scenario))
        status = "incomplete" if flagged or finish == "length" else "completed"
        obj = response_object(rid, model, status, text, usage)
        if status == "incomplete":
            reason = "content_filter" if flagged else "max_output_tokens"
            obj["incomplete_details"] = {"reason": reason}
        return obj
    return chat_whole(rid, model, text, finish, usage, **_flags(scenario))


def chat_script(style: str, scenario: Scenario, body: dict[str, Any], rid: str) -> Iterator[Step]:
    model = str(body.get("model") or "M2-her")
    flags = _flags(scenario)
    deltas = planned_deltas(scenario)
    finish = "length" if scenario.has("length") else "stop"
    no_finish = scenario.has("no_finish")
    # Every delta chunk but the last differs only in its content: encode the rest once.
    pre, post = sse(chat_chunk(rid, model, _MARK, **flags)).split(dumps(_MARK))
    if scenario.has("slow_body"):
        yield ("sleep", scenario.number("slow_body", 1.0))
    for index, text in enumerate(deltas):
        if _cut_here(scenario, index, len(deltas)):
            yield ("cut", None)
            return
        if index == 2 and scenario.has("midstream_error"):
            yield ("frame", _chat_error_chunk(scenario, rid, model))
            return
        if index == 2 and scenario.has("midstream_error_envelope"):
            error = {"error": {"message": "upstream stream failed (1000)", "type": "api_error"}}
            yield ("frame", sse(error))
            return
        if index == len(deltas) - 1 and not no_finish:
            yield ("delta", sse(chat_chunk(rid, model, text, finish, **flags)))
        else:
            yield ("delta", pre + dumps(text) + post)
        if index == 0 and scenario.has("stall"):
            yield ("sleep", scenario.number("stall", 1.0))
    if not deltas and not no_finish:
        yield ("frame", sse(chat_chunk(rid, model, "", finish, **flags)))
    if _cut_here(scenario, len(deltas), len(deltas)):
        yield ("cut", None)
        return
    if no_finish:
        return
    usage = usage_numbers(body, len(deltas))
    default_end = "final_frame" if style == "chatcompletion_v2" else "usage_chunk"
    end = scenario.faults.get("end") or default_end
    if end == "usage_chunk":
        tail = {
            "id": rid,
            "choices": [],
            "created": 1768483232,
            "model": model,
            "object": "chat.completion.chunk",
            "usage": usage_dict(usage),
            "base_resp": {"status_code": 0, "status_msg": ""},
        }
        yield ("frame", sse(tail))
    elif end == "final_frame":
        yield ("frame", sse(chat_whole(rid, model, "".join(deltas), finish, usage, **flags)))
    elif end == "total_only":
        # The documented native example: the final frame's usage holds only the total.
        whole = chat_whole(rid, model, "".join(deltas), finish, usage, **flags)
        whole["usage"] = {"total_tokens": sum(usage)}
        yield ("frame", sse(whole))
    if scenario.has("done"):
        yield ("frame", b"data: [DONE]\n\n")
    yield from _linger(scenario)


def responses_script(scenario: Scenario, body: dict[str, Any], rid: str) -> Iterator[Step]:
    model = str(body.get("model") or "M2-her")
    item_id = "msg_" + rid[5:]
    seq = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return sse({**fields, "sequence_number": next(seq), "type": kind}, kind)

    start = response_object(rid, model, "in_progress")
    yield ("frame", event("response.created", response=start))
    yield ("frame", event("response.in_progress", response=start))
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress"}
    yield (
        "frame",
        event("response.output_item.added", item={**item, "content": []}, output_index=0),
    )
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"content_index": 0, "item_id": item_id, "output_index": 0}
    yield ("frame", event("response.content_part.added", part=part, **where))
    deltas = planned_deltas(scenario)
    for index, text in enumerate(deltas):
        if _cut_here(scenario, index, len(deltas)):
            yield ("cut", None)
            return
        if index == 2 and scenario.has("midstream_error"):
            message = f"upstream stream failed ({int(scenario.number('midstream_error', 1000))})"
            yield ("frame", event("error", code="server_error", message=message, param=None))
            return
        yield ("delta", event("response.output_text.delta", delta=text, **where))
        if index == 0 and scenario.has("stall"):
            yield ("sleep", scenario.number("stall", 1.0))
    if _cut_here(scenario, len(deltas), len(deltas)):
        yield ("cut", None)
        return
    if scenario.has("no_finish"):
        return
    text = "".join(deltas)
    yield ("frame", event("response.output_text.done", text=text, **where))
    yield ("frame", event("response.content_part.done", part={**part, "text": text}, **where))
    final = whole_body("responses", scenario, body, rid)
    done_item = final["output"][0] if final["output"] else {**item, "content": []}
    yield ("frame", event("response.output_item.done", item=done_item, output_index=0))
    terminal = "response.completed" if final["status"] == "completed" else "response.incomplete"
    yield ("frame", event(terminal, response=final))
    if scenario.has("done"):
        yield ("frame", b"data: [DONE]\n\n")
    yield from _linger(scenario)


def _linger(scenario: Scenario) -> Iterator[Step]:
    if scenario.has("linger"):
        yield ("sleep", scenario.number("linger", 1.0))


def _cut_here(scenario: Scenario, index: int, total: int) -> bool:
    return scenario.has("cut") and index == int(scenario.number("cut", total // 2))


def _chat_error_chunk(scenario: Scenario, rid: str, model: str) -> bytes:
    code = int(scenario.number("midstream_error", 1000))
    return sse(
        {
            "id": rid,
            "choices": [],
            "model": model,
            "object": "chat.completion.chunk",
            "base_resp": {"status_code": code, "status_msg": "stream failed"},
        }
    )

"""Turn the events of each wire style into reply text, a finish reason and usage.

A decoder sees one SSE event (or one whole JSON body) at a time, returns the new text it
carries, raises `LLMError` for an error it carries, and sets `done` at a terminal signal.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from companion import jsoncodec
from conversations.llm.base import Sensitivity, Usage
from conversations.llm.classify import body_error, envelope_error, int_or_zero
from conversations.llm.errors import ErrorCode, LLMError

logger = logging.getLogger(__name__)

FinishReason = Literal["stop", "length"]


class Decoder:
    """State shared by the styles: what the stream said about how and why it ended."""

    __slots__ = ("done", "final_text", "finish_reason", "model", "sensitivity", "usage")

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: FinishReason | None = None
        self.usage = Usage()
        self.sensitivity = Sensitivity()
        self.model = ""
        # The whole reply as a final frame repeated it; used only when nothing was streamed.
        self.final_text = ""

    def feed(self, event: str, data: str) -> str:
        raise NotImplementedError

    def feed_body(self, body: Any) -> str:
        """A complete non-streamed response body."""
        raise NotImplementedError

    def _object(self, data: str) -> dict[str, Any] | None:
        """The event's JSON object; None for `[DONE]` (which ends the stream), for data that is
        not JSON (skipped) and for other values."""
        if data == "[DONE]":
            self.done = True
            return None
        try:
            obj = jsoncodec.loads(data)
        except ValueError:
            logger.debug("skipping a data line that is not JSON: %.80r", data)
            return None
        return obj if isinstance(obj, dict) else None


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
    completion = raw.get("completion_tokens", raw.get("output_tokens"))
    total = raw.get("total_tokens")
    if not (prompt or completion or total):
        return None  # intermediate chunks carry null or zero placeholders
    return Usage(
        prompt_tokens=prompt if isinstance(prompt, int) else None,
        completion_tokens=completion if isinstance(completion, int) else None,
        total_tokens=total if isinstance(total, int) else None,
    )


def _finish(value: Any) -> FinishReason | None:
    if not value:
        return None
    return "length" if value in ("length", "max_tokens", "max_output_tokens") else "stop"


class ChatDecoder(Decoder):
    """`chat.completion.chunk` streams: MiniMax's two chat endpoints and OpenAI-compatible ones."""

    __slots__ = ()

    def feed(self, event: str, data: str) -> str:
        obj = self._object(data)
        return "" if obj is None else self._frame(obj)

    def feed_body(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="response body is not an object")
        text = self._frame(body)
        flags = self.sensitivity
        if not body.get("choices") and not (flags.input_flagged or flags.output_flagged):
            # A 200 body without choices or an error code still answered nothing (m2her-wire
            # §B.3): a failure, not an empty reply.
            raise LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="the response held no choices")
        self.done = True
        return text

    def _frame(self, obj: dict[str, Any]) -> str:
        if "base_resp" in obj or "error" in obj:
            error = body_error(obj)
            if error is not None:
                raise error
        if obj.get("input_sensitive") or obj.get("output_sensitive"):
            self._flag(obj)
        # Chunks carry `"usage": null` until the last ones; those are not looked into.
        raw_usage = obj.get("usage")
        usage = _usage(raw_usage) if raw_usage else None
        if usage is not None:
            self.usage = usage
        if not self.model and obj.get("model"):
            self.model = str(obj["model"])
        choices = obj.get("choices")
        if not choices:
            if usage is not None and choices is not None:
                self.done = True  # the trailing usage-only chunk
            return ""
        choice = choices[0]
        finish = choice.get("finish_reason")
        if finish:
            if finish == "content_filter":
                flags = self.sensitivity
                self.sensitivity = Sensitivity(flags.input_flagged, flags.input_type, True, 7)
            self.finish_reason = _finish(finish)
        delta = choice.get("delta")
        whole = obj.get("object") == "chat.completion"
        if delta is not None and not whole:
            return delta.get("content") or ""
        message = choice.get("message")
        if message is not None or whole:
            # A whole message: the non-streamed body, or the final frame repeating the reply.
            self.final_text = (message or {}).get("content") or ""
            self.done = True
        return ""

    def _flag(self, obj: dict[str, Any]) -> None:
        # A flag stays once raised: a later chunk flagging the output keeps the input's flag.
        old = self.sensitivity
        flag_in, flag_out = bool(obj.get("input_sensitive")), bool(obj.get("output_sensitive"))
        self.sensitivity = Sensitivity(
            input_flagged=old.input_flagged or flag_in,
            input_type=int_or_zero(obj.get("input_sensitive_type")) if flag_in else old.input_type,
            output_flagged=old.output_flagged or flag_out,
            output_type=(
                int_or_zero(obj.get("output_sensitive_type")) if flag_out else old.output_type
            ),
        )


class ResponsesDecoder(Decoder):
    """Responses-API event streams as relays serve them (`response.output_text.delta`, ...)."""

    __slots__ = ()

    def feed(self, event: str, data: str) -> str:
        obj = self._object(data)
        if obj is None:
            return ""
        kind = event or obj.get("type") or ""
        if kind == "response.output_text.delta":
            return str(obj.get("delta") or "")
        failed = kind == "error" or bool(obj.get("error"))
        if failed or "base_resp" in obj:
            # MiniMax's own error envelope may reach a Responses stream as a data line too.
            error = body_error(obj)
            if error is not None:
                raise error
            if failed:
                raise envelope_error({"message": data})
        if kind == "response.output_text.done":
            self.final_text = str(obj.get("text") or "")
        elif kind in ("response.completed", "response.incomplete", "response.done"):
            self._terminal(obj.get("response") or {})
        elif kind == "response.failed":
            raise _failure(obj.get("response") or {}, "failed")
        return ""

    def feed_body(self, body: Any) -> str:
        if not isinstance(body, dict):
            raise LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="response body is not an object")
        error = body_error(body)
        if error is not None:
            raise error
        _raise_if_failed(body)
        output = body.get("output")
        if not isinstance(output, list):
            # Some other JSON (a relay's own error shape, an empty object) answered nothing:
            # a failure, not an empty reply.
            raise LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail="the response held no output")
        self.final_text = "".join(
            part.get("text") or ""
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content") or []
            if isinstance(part, dict) and part.get("type") == "output_text"
        )
        self._terminal(body)
        return ""

    def _terminal(self, response: dict[str, Any]) -> None:
        _raise_if_failed(response)
        self.done = True
        usage = _usage(response.get("usage"))
        if usage is not None:
            self.usage = usage
        if response.get("model"):
            self.model = str(response["model"])
        details = response.get("incomplete_details") or {}
        reason = details.get("reason") if response.get("status") == "incomplete" else None
        if reason == "content_filter":
            self.sensitivity = Sensitivity(output_flagged=True, output_type=7)
            self.finish_reason = "stop"
        else:
            self.finish_reason = "length" if reason == "max_output_tokens" else "stop"


def _raise_if_failed(response: dict[str, Any]) -> None:
    """A response that ended `failed` or `cancelled` (some relays end every stream with
    `response.done`, whatever its status) is an error, whatever text came before it."""
    status = response.get("status")
    if status in ("failed", "cancelled"):
        raise _failure(response, status)


def _failure(response: dict[str, Any], status: str) -> LLMError:
    error = response.get("error")
    return envelope_error(error if isinstance(error, dict) else {"message": f"response {status}"})

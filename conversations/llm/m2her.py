"""MiniMax M2-her in its three wire styles (m2her-wire.md §A, §B, §C)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conversations.llm.base import ChatMessage, GenerationParams
from conversations.llm.decoders import ChatDecoder, Decoder, ResponsesDecoder
from conversations.llm.remote import RemoteBackend, WireStyle
from conversations.llm.transport import ClientPool, HttpSettings

API_STYLES = ("chat_completions", "chatcompletion_v2", "responses")


def wire_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The canonical roles go out as they are; every message carries a string `content`."""
    out: list[ChatMessage] = []
    for message in messages:
        item: ChatMessage = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("name"):
            item["name"] = message["name"]
        out.append(item)
    return out


class ChatStyle:
    """`/v1/chat/completions` and the native `/v1/text/chatcompletion_v2`: same body and chunks."""

    def __init__(self, path: str, *, max_tokens_field: str = "max_completion_tokens") -> None:
        self.path = path
        # M2-her caps replies with `max_completion_tokens`; generic OpenAI-compatible servers
        # (Ollama, vLLM, llama.cpp) all understand `max_tokens`.
        self.max_tokens_field = max_tokens_field

    def body(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        *,
        model: str,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "stream": stream,
            self.max_tokens_field: params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def decoder(self) -> Decoder:
        return ChatDecoder()


class ResponsesStyle:
    """Responses-API relays (DMXAPI): `input` instead of `messages`, event-typed SSE."""

    path = "/v1/responses"

    def body(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        *,
        model: str,
        stream: bool,
    ) -> dict[str, Any]:
        return {
            "model": model,
            "input": list(messages),
            "stream": stream,
            # The relay documents MiniMax's field name, not OpenAI's `max_output_tokens`.
            "max_completion_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }

    def decoder(self) -> Decoder:
        return ResponsesDecoder()


def style_for(api_style: str) -> WireStyle:
    if api_style == "chat_completions":
        return ChatStyle("/v1/chat/completions")
    if api_style == "chatcompletion_v2":
        return ChatStyle("/v1/text/chatcompletion_v2")
    if api_style == "responses":
        return ResponsesStyle()
    raise ValueError(f"unknown M2-her API style {api_style!r}; expected one of {API_STYLES}")


def m2her_backend(
    *,
    base_url: str,
    api_key: str,
    model: str = "M2-her",
    api_style: str = "chat_completions",
    http: HttpSettings | None = None,
    clients: ClientPool | None = None,
) -> RemoteBackend:
    """The M2-her backend for one of the three wire styles."""
    http = http or HttpSettings()
    return RemoteBackend(
        name=f"m2her:{api_style}",
        base_url=base_url,
        model=model,
        style=style_for(api_style),
        http=http,
        api_key=api_key,
        clients=clients,
        prepare=wire_messages,
    )

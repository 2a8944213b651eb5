"""OpenAI-compatible chat servers: Ollama, vLLM, llama.cpp server, LM Studio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conversations.llm.base import MAX_COMPLETION_TOKENS, ChatMessage, GenerationParams
from conversations.llm.decoders import ChatDecoder, Decoder
from conversations.llm.remote import RemoteBackend
from conversations.llm.roles import fold_roles
from conversations.llm.transport import ClientPool, HttpSettings


def clamp_openai(params: GenerationParams) -> GenerationParams:
    """OpenAI's ranges: temperature 0-2 (0 is greedy), top_p (0, 1]."""
    return GenerationParams(
        temperature=min(max(params.temperature, 0.0), 2.0),
        top_p=params.top_p if 0 < params.top_p <= 1 else 1.0,
        max_tokens=min(max(int(params.max_tokens), 1), MAX_COMPLETION_TOKENS),
    )


class OpenAIChatStyle:
    path = "/v1/chat/completions"

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
            # `max_tokens` is the field every compatible server understands.
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def decoder(self) -> Decoder:
        return ChatDecoder()


def openai_backend(
    *,
    base_url: str,
    model: str,
    api_key: str = "",
    http: HttpSettings | None = None,
    clients: ClientPool | None = None,
) -> RemoteBackend:
    """A backend for any server speaking `/v1/chat/completions` with SSE.

    `base_url` may be given with or without its trailing `/v1`.
    """
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return RemoteBackend(
        name="openai",
        base_url=base,
        model=model,
        style=OpenAIChatStyle(),
        http=http or HttpSettings(),
        api_key=api_key,
        clients=clients,
        prepare=fold_roles,
        clamp=clamp_openai,
    )

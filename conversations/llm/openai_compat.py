"""OpenAI-compatible chat servers: Ollama, vLLM, llama.cpp server, LM Studio."""

from __future__ import annotations

from conversations.llm.base import MAX_COMPLETION_TOKENS, GenerationParams
from conversations.llm.m2her import ChatStyle
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
        style=ChatStyle("/v1/chat/completions", max_tokens_field="max_tokens"),
        http=http or HttpSettings(),
        api_key=api_key,
        clients=clients,
        prepare=fold_roles,
        clamp=clamp_openai,
    )

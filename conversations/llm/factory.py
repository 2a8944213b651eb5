"""The one place that reads Django settings for the model backends.

`get_backend()` returns this process's backend. Backends are cached by their configuration,
so a settings override (in tests) gets its own backend rather than a stale one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from conversations.llm.base import ChatBackend, Usage
from conversations.llm.local import LocalBackend
from conversations.llm.local_model import bundled_model_path
from conversations.llm.m2her import API_STYLES, m2her_backend
from conversations.llm.openai_compat import openai_backend
from conversations.llm.pricing import Prices, cost_usd
from conversations.llm.transport import HttpSettings

BACKENDS = ("m2her", "local", "openai")


@dataclass(frozen=True)
class BackendConfig:
    kind: str
    base_url: str
    model: str
    api_key: str
    api_style: str
    context_tokens: int
    prices: Prices
    http: HttpSettings
    local_threads: int
    local_temperature_scale: float
    local_repeat_penalty: float

    def __repr__(self) -> str:
        return (
            f"BackendConfig(kind={self.kind!r}, base_url={self.base_url!r}, model={self.model!r})"
        )


_lock = threading.Lock()
_backends: dict[BackendConfig, ChatBackend] = {}


def backend_config() -> BackendConfig:
    """The configured backend, validated. Read once (every reply asks, three times); a change
    of settings, as tests make, has it read again."""
    global _config
    config = _config
    if config is None:
        config = _config = _read_config()
    return config


_config: BackendConfig | None = None


@receiver(setting_changed)
def _settings_changed(**kwargs: Any) -> None:
    global _config
    _config = None


def _read_config() -> BackendConfig:
    kind = settings.LLM_BACKEND
    if kind not in BACKENDS:
        raise ImproperlyConfigured(f"LLM_BACKEND must be one of {BACKENDS}, not {kind!r}")
    http = HttpSettings(
        connect_timeout=settings.LLM_CONNECT_TIMEOUT,
        first_byte_timeout=settings.LLM_FIRST_BYTE_TIMEOUT,
        idle_timeout=settings.LLM_IDLE_TIMEOUT,
        reply_timeout=settings.LLM_REPLY_TIMEOUT,
        max_retries=max(settings.LLM_MAX_RETRIES, 0),
        retry_after_cap=settings.LLM_RETRY_AFTER_CAP,
        retry_base_delay=settings.LLM_RETRY_BASE_DELAY,
        max_connections=settings.LLM_MAX_CONNECTIONS,
    )
    base_url, model, api_key, style = "", "", "", ""
    prices = Prices()
    if kind == "m2her":
        if settings.M2HER_API_STYLE not in API_STYLES:
            raise ImproperlyConfigured(f"M2HER_API_STYLE must be one of {API_STYLES}")
        base_url, model, api_key = (
            settings.M2HER_BASE_URL,
            settings.M2HER_MODEL,
            settings.M2HER_API_KEY,
        )
        style = settings.M2HER_API_STYLE
        context = settings.M2HER_CONTEXT_TOKENS
        prices = Prices.from_floats(settings.PRICE_INPUT_PER_MTOK, settings.PRICE_OUTPUT_PER_MTOK)
    elif kind == "openai":
        if not settings.OPENAI_BASE_URL or not settings.OPENAI_MODEL:
            raise ImproperlyConfigured("LLM_BACKEND=openai needs OPENAI_BASE_URL and OPENAI_MODEL")
        base_url, model, api_key = (
            settings.OPENAI_BASE_URL,
            settings.OPENAI_MODEL,
            settings.OPENAI_API_KEY,
        )
        context = settings.OPENAI_CONTEXT_TOKENS
        prices = Prices.from_floats(
            settings.OPENAI_PRICE_INPUT_PER_MTOK, settings.OPENAI_PRICE_OUTPUT_PER_MTOK
        )
    else:
        model = settings.LOCAL_MODEL_PATH or bundled_model_path()
        context = settings.LOCAL_MODEL_CONTEXT_TOKENS
    return BackendConfig(
        kind=kind,
        base_url=base_url,
        model=model,
        api_key=api_key,
        api_style=style,
        context_tokens=context,
        prices=prices,
        http=http,
        local_threads=settings.LOCAL_MODEL_THREADS,
        local_temperature_scale=settings.LOCAL_MODEL_TEMPERATURE_SCALE,
        local_repeat_penalty=settings.LOCAL_MODEL_REPEAT_PENALTY,
    )


def get_backend() -> ChatBackend:
    """This process's backend for the current settings (built once, then reused)."""
    config = backend_config()
    backend = _backends.get(config)
    if backend is None:
        with _lock:
            backend = _backends.get(config)
            if backend is None:
                backend = _backends[config] = _build(config)
    return backend


def context_tokens() -> int:
    """The configured backend's context window, for fitting prompts."""
    return backend_config().context_tokens


def reply_cost(usage: Usage) -> Decimal | None:
    """What a reply with this usage cost on the configured backend (the local model is free)."""
    return cost_usd(usage, backend_config().prices)


def _build(config: BackendConfig) -> ChatBackend:
    if config.kind == "m2her":
        return m2her_backend(
            base_url=config.base_url,
            api_key=config.api_key,
            model=config.model,
            api_style=config.api_style,
            http=config.http,
        )
    if config.kind == "openai":
        return openai_backend(
            base_url=config.base_url, model=config.model, api_key=config.api_key, http=config.http
        )
    return LocalBackend(
        model_path=config.model,
        context_tokens=config.context_tokens,
        temperature_scale=config.local_temperature_scale,
        repeat_penalty=config.local_repeat_penalty,
        n_threads=config.local_threads,
    )

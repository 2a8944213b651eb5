"""The factory: settings in, this process's backend out."""

import asyncio
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from conversations.llm.base import GenerationParams, Usage
from conversations.llm.factory import backend_config, context_tokens, get_backend, reply_cost
from conversations.llm.fake_server import FakeM2her
from conversations.llm.local import LocalBackend
from conversations.llm.remote import RemoteBackend
from tests.conversations.llm.helpers import MESSAGES

SECRET = "sk-api-factory-secret-value"


@pytest.fixture
def m2her_settings(settings):
    settings.LLM_BACKEND = "m2her"
    settings.M2HER_API_KEY = SECRET
    settings.M2HER_BASE_URL = "https://api.minimax.io"
    settings.M2HER_API_STYLE = "chat_completions"
    settings.M2HER_CONTEXT_TOKENS = 2048
    settings.LLM_RETRY_BASE_DELAY = 0.01
    return settings


def test_local_backend_uses_the_bundled_model_when_no_path_is_set(settings):
    settings.LLM_BACKEND = "local"
    settings.LOCAL_MODEL_PATH = ""
    settings.LOCAL_MODEL_CONTEXT_TOKENS = 1536

    backend = get_backend()

    assert isinstance(backend, LocalBackend)
    assert backend.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert context_tokens() == 1536
    assert reply_cost(Usage(prompt_tokens=1000, completion_tokens=1000)) == 0


@pytest.mark.parametrize(
    ("style", "path"),
    [
        ("chat_completions", "/v1/chat/completions"),
        ("chatcompletion_v2", "/v1/text/chatcompletion_v2"),
        ("responses", "/v1/responses"),
    ],
)
def test_m2her_backend_follows_the_api_style(m2her_settings, style, path):
    m2her_settings.M2HER_API_STYLE = style

    backend = get_backend()

    assert isinstance(backend, RemoteBackend)
    assert backend.url == "https://api.minimax.io" + path
    assert backend.model == "M2-her"


def test_the_backend_is_built_once_per_configuration(m2her_settings):
    first = get_backend()

    assert get_backend() is first
    m2her_settings.M2HER_API_STYLE = "responses"
    assert get_backend() is not first


def test_m2her_replies_are_priced_from_settings(m2her_settings):
    m2her_settings.PRICE_INPUT_PER_MTOK = 0.30
    m2her_settings.PRICE_OUTPUT_PER_MTOK = 1.20

    assert reply_cost(Usage(prompt_tokens=2000, completion_tokens=1000)) == Decimal("0.00180000")
    assert reply_cost(Usage()) is None


def test_openai_backend_needs_a_base_url_and_a_model(settings):
    settings.LLM_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_MODEL = "llama3"

    with pytest.raises(ImproperlyConfigured):
        get_backend()

    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_CONTEXT_TOKENS = 8192
    backend = get_backend()
    assert isinstance(backend, RemoteBackend)
    assert backend.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert context_tokens() == 8192


def test_unknown_backend_or_style_is_a_configuration_error(settings, m2her_settings):
    m2her_settings.M2HER_API_STYLE = "soap"
    with pytest.raises(ImproperlyConfigured):
        get_backend()

    settings.LLM_BACKEND = "gpt"
    with pytest.raises(ImproperlyConfigured):
        get_backend()


def test_the_api_key_is_not_in_reprs(m2her_settings):
    assert SECRET not in repr(backend_config())
    assert SECRET not in repr(get_backend())
    assert SECRET not in str(backend_config())


def test_one_backend_serves_several_event_loops(m2her_settings):
    """Each test (and each `asyncio.run`) has its own loop; the cached backend must cope."""
    with FakeM2her.in_thread(api_key=SECRET) as fake:
        m2her_settings.M2HER_BASE_URL = fake.base_url
        backend = get_backend()

        async def ask():
            return await backend.complete(MESSAGES, GenerationParams())

        first = asyncio.run(ask())
        second = asyncio.run(ask())

    assert first.text == second.text == "You said: Hello there"
    assert len(fake.requests) == 2

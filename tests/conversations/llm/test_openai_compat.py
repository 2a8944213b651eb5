"""OpenAI-compatible servers: role folding, their parameter names, SSE over loopback."""

import pytest

from conversations.llm.base import GenerationParams
from conversations.llm.errors import ErrorCode
from conversations.llm.openai_compat import openai_backend
from tests.conversations.llm.helpers import FAST, MESSAGES, run_stream, user_says


@pytest.fixture
async def make_openai(fake):
    made = []

    def build(base_url=None, api_key="", model="qwen2.5:0.5b"):
        backend = openai_backend(
            base_url=base_url or fake.base_url + "/v1", model=model, api_key=api_key, http=FAST
        )
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()


async def test_reply_streams_from_an_openai_compatible_server(make_openai, fake):
    fake.api_key = ""
    backend = make_openai()

    texts, completion, error = await run_stream(backend, user_says("hi there"))

    assert error is None
    assert "".join(texts) == completion.text == "You said: hi there"
    assert fake.requests[-1].path == "/v1/chat/completions"


async def test_extra_roles_are_folded_into_system_user_and_assistant(make_openai, fake):
    fake.api_key = ""
    backend = make_openai()

    await run_stream(backend, MESSAGES)

    messages = fake.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    system = messages[0]["content"]
    assert system.startswith("You are Mira.\n\nMira keeps the lighthouse.")
    assert "The user is Sam. A traveller." in system
    assert "Scene: Storm. The lamp room." in system
    assert "Sam: Is it loud?\nMira: Always." in system
    assert messages[1:] == [
        {"role": "assistant", "content": "Welcome up!"},
        {"role": "user", "content": "Hello there"},
    ]


async def test_uses_max_tokens_and_keeps_temperature_zero(make_openai, fake):
    fake.api_key = ""
    backend = make_openai()

    await run_stream(backend, MESSAGES, GenerationParams(temperature=0, max_tokens=50))

    body = fake.requests[-1].body
    assert body["model"] == "qwen2.5:0.5b"
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0
    assert "max_completion_tokens" not in body


async def test_no_authorization_header_without_a_key(make_openai, fake):
    fake.api_key = ""
    backend = make_openai(base_url=fake.base_url)

    await run_stream(backend)

    assert "authorization" not in fake.requests[-1].headers


async def test_key_is_sent_as_bearer_when_configured(make_openai, fake):
    backend = make_openai(api_key=fake.api_key)

    _, completion, error = await run_stream(backend)

    assert error is None
    assert completion.text == "You said: Hello there"
    assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.api_key}"


async def test_unreachable_server_is_upstream_unavailable(make_openai):
    backend = make_openai(base_url="http://127.0.0.1:9")

    _, _, error = await run_stream(backend)

    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert error.retryable

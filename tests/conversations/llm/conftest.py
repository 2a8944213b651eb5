import pytest

from conversations.llm.fake_server import FakeM2her
from conversations.llm.m2her import m2her_backend
from tests.conversations.llm.helpers import FAST

API_KEY = "sk-api-test-0123456789abcdef"


@pytest.fixture
async def fake():
    async with FakeM2her(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def make_backend(fake):
    """Build M2-her backends pointed at the fake server; their clients close afterwards."""
    made = []

    def build(style="chat_completions", http=FAST, api_key=API_KEY):
        backend = m2her_backend(base_url=fake.base_url, api_key=api_key, api_style=style, http=http)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.aclose()

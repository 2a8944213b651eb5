import pytest

from conversations.llm.fake_server import FakeM2her
from conversations.services.conversations import conversation_create
from tests.factories import make_character, make_persona, make_user


@pytest.fixture
async def fake():
    async with FakeM2her() as server:
        yield server


@pytest.fixture
def m2her(settings, fake):
    """The app's M2-her backend pointed at a fake M2-her server on a loopback socket."""
    settings.LLM_BACKEND = "m2her"
    settings.M2HER_API_KEY = "test-key"
    settings.M2HER_BASE_URL = fake.base_url
    settings.M2HER_API_STYLE = "chat_completions"
    settings.LLM_MAX_RETRIES = 1
    return fake


@pytest.fixture
def owner(db):
    return make_user("owner")


@pytest.fixture
def conversation(owner):
    """The owner's conversation with Aria, as Sam; modules may define their own."""
    character = make_character(name="Aria")
    persona = make_persona(owner, name="Sam")
    return conversation_create(owner=owner, character=character, persona=persona)

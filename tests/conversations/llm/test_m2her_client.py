"""The real M2-her client over a loopback socket against the project's fake server."""

import asyncio
import dataclasses
import gc
import json
import logging
import time

import pytest

from conversations.llm.base import Completion, GenerationParams, TextDelta, Usage
from conversations.llm.errors import ErrorCode
from conversations.llm.m2her import m2her_backend
from conversations.llm.session import DRAIN_SECONDS
from conversations.llm.transport import KEEPALIVE_CONNECTIONS
from tests.conversations.llm.conftest import API_KEY
from tests.conversations.llm.helpers import (
    CHUNKED_HEAD,
    FAST,
    MESSAGES,
    NO_RETRY,
    chunk,
    disconnected,
    run_paced,
    run_stream,
    scripted_server,
    user_says,
)

STYLES = ["chat_completions", "chatcompletion_v2", "responses"]
# Read token by token, and with a pace, when the tokens are parsed in the connection's callback
# (`conversations.llm.pacing`): the same text, errors and limits either way.
READERS = pytest.mark.parametrize("read", [run_stream, run_paced], ids=["pulled", "paced"])


@pytest.mark.parametrize("style", STYLES)
async def test_reply_streams_as_deltas_then_one_completion(make_backend, style):
    backend = make_backend(style)

    texts, completion, error = await run_stream(backend, user_says("good evening"))

    assert error is None
    assert texts == ["You ", "said: ", "good ", "evening"]
    assert completion.text == "You said: good evening"
    assert completion.finish_reason == "stop"
    assert completion.usage.completion_tokens == 4
    assert completion.usage.prompt_tokens > 0


@pytest.mark.parametrize("style", STYLES)
async def test_complete_makes_one_non_streamed_call(make_backend, fake, style):
    backend = make_backend(style)

    completion = await backend.complete(user_says("all at once"), GenerationParams())

    assert completion.text == "You said: all at once"
    assert completion.usage.completion_tokens == 5
    assert fake.requests[-1].body["stream"] is False


@pytest.mark.parametrize("style", ["chat_completions", "chatcompletion_v2"])
async def test_wire_body_keeps_canonical_roles_names_and_clamped_params(make_backend, fake, style):
    backend = make_backend(style)

    await run_stream(backend, MESSAGES, GenerationParams(temperature=0, top_p=3, max_tokens=9000))

    request = fake.requests[-1]
    assert request.path == (
        "/v1/chat/completions" if style == "chat_completions" else "/v1/text/chatcompletion_v2"
    )
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["model"] == "M2-her"
    assert body["messages"] == MESSAGES
    assert [m["role"] for m in body["messages"]].count("system") == 1
    assert body["max_completion_tokens"] == 2048
    assert body["temperature"] == 1.0
    assert body["top_p"] == 0.95
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_responses_style_sends_the_messages_as_input(make_backend, fake):
    backend = make_backend("responses")

    await run_stream(backend, MESSAGES, GenerationParams(max_tokens=300))

    body = fake.requests[-1].body
    assert fake.requests[-1].path == "/v1/responses"
    assert body["input"] == MESSAGES
    assert body["max_completion_tokens"] == 300
    assert "messages" not in body


ERROR_CASES = [
    ("[[rate_limit=0.5]]", ErrorCode.RATE_LIMITED),
    ("[[auth]]", ErrorCode.AUTH),
    ("[[balance]]", ErrorCode.INSUFFICIENT_BALANCE),
    ("[[overload]]", ErrorCode.UPSTREAM_UNAVAILABLE),
    ("[[bad_request]]", ErrorCode.BAD_REQUEST),
    ("[[error_in_200=1002]]", ErrorCode.RATE_LIMITED),
    ("[[error_in_200=1004]]", ErrorCode.AUTH),
    ("[[input_flag=6]]", ErrorCode.CONTENT_FILTERED),
    ("[[output_flag]]", ErrorCode.CONTENT_FILTERED),
    ("[[cut=0]]", ErrorCode.TRUNCATED),
    ("[[no_finish]]", ErrorCode.TRUNCATED),
]


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("marker", "code"), ERROR_CASES)
async def test_every_error_class_is_reported(make_backend, style, marker, code):
    backend = make_backend(style, http=NO_RETRY)

    _, completion, error = await run_stream(backend, user_says(f"{marker} hi"))

    assert completion is None
    assert error.code == code
    assert error.message


async def test_context_overflow_is_its_own_class(make_backend):
    backend = make_backend(http=NO_RETRY)

    _, _, error = await run_stream(backend, user_says("[[context]]"))

    assert error.code == ErrorCode.CONTEXT_TOO_LONG
    assert not error.retryable


async def test_openai_style_error_envelope_is_understood(make_backend):
    backend = make_backend(http=NO_RETRY)

    _, _, error = await run_stream(backend, user_says("[[openai_envelope]][[balance]]"))

    assert error.code == ErrorCode.INSUFFICIENT_BALANCE
    assert error.provider_code == 1008


async def test_flagged_input_names_its_type(make_backend):
    backend = make_backend()

    _, _, error = await run_stream(backend, user_says("[[input_flag=6]]"))

    assert "violence or terrorism" in error.message


async def test_wrong_api_key_is_an_auth_error_and_not_retried(make_backend, fake):
    backend = make_backend(api_key="sk-wrong")

    _, _, error = await run_stream(backend)

    assert error.code == ErrorCode.AUTH
    assert len(fake.requests) == 1


@pytest.mark.parametrize("style", STYLES)
async def test_retryable_failure_before_any_delta_is_retried(make_backend, fake, style):
    backend = make_backend(style)

    _, completion, error = await run_stream(backend, user_says("[[fail=2]][[overload]] again"))

    assert error is None
    assert completion.text == "You said: again"
    assert len(fake.requests) == 3


async def test_retries_stop_after_the_configured_attempts(make_backend, fake):
    backend = make_backend(http=dataclasses.replace(FAST, max_retries=1))

    _, _, error = await run_stream(backend, user_says("[[fail=5]][[overload]] again"))

    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert len(fake.requests) == 2


async def test_connection_cut_before_the_first_delta_is_retried(make_backend, fake):
    backend = make_backend()

    _, completion, error = await run_stream(backend, user_says("[[fail=1]][[cut=0]] once more"))

    assert error is None
    assert completion.text == "You said: once more"
    assert len(fake.requests) == 2


async def test_retry_waits_at_least_the_retry_after(make_backend, fake):
    backend = make_backend()
    started = time.monotonic()

    _, completion, error = await run_stream(backend, user_says("[[fail=1]][[rate_limit=0.4]] x"))

    assert error is None
    assert completion.text == "You said: x"
    assert len(fake.requests) == 2
    assert time.monotonic() - started >= 0.4


async def test_retry_after_beyond_the_cap_is_not_waited_for(make_backend, fake):
    backend = make_backend()  # cap 2 s

    _, _, error = await run_stream(backend, user_says("[[rate_limit=30]] x"))

    assert error.code == ErrorCode.RATE_LIMITED
    assert error.retry_after == 30
    assert len(fake.requests) == 1


async def test_plan_quota_exhaustion_is_not_retried(make_backend, fake):
    backend = make_backend()

    _, _, error = await run_stream(backend, user_says("[[error_in_200=2056]] x"))

    assert error.code == ErrorCode.RATE_LIMITED
    assert not error.retryable
    assert len(fake.requests) == 1


async def test_token_limit_is_retried_once_then_read_as_a_context_overflow(make_backend, fake):
    backend = make_backend()

    _, _, error = await run_stream(backend, user_says("[[error_in_200=1039]] x"))

    assert error.code == ErrorCode.CONTEXT_TOO_LONG
    assert error.provider_code == 1039
    assert not error.retryable
    assert len(fake.requests) == 2


async def test_a_token_limit_that_clears_after_a_backoff_was_a_rate_limit(make_backend, fake):
    backend = make_backend()

    _, completion, error = await run_stream(backend, user_says("[[fail=1]][[error_in_200=1039]] x"))

    assert error is None
    assert completion.text == "You said: x"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("style", STYLES)
@READERS
async def test_nothing_is_retried_once_a_delta_was_yielded(make_backend, fake, style, read):
    backend = make_backend(style)

    # Tokens apart, so that a paced reader's connection hands them over as they come.
    texts, completion, error = await read(backend, user_says("[[tps=100]][[midstream_error]] a b"))

    assert "".join(texts) == "You said: "
    assert completion is None
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert error.retryable
    assert len(fake.requests) == 1


@READERS
async def test_connection_cut_mid_reply_is_truncated_without_retry(make_backend, fake, read):
    backend = make_backend()

    texts, _, error = await read(backend, user_says("[[tps=100]][[cut=3]] one two three four"))

    assert "".join(texts) == "You said: one "
    assert error.code == ErrorCode.TRUNCATED
    assert len(fake.requests) == 1


async def test_slow_first_byte_times_out(make_backend):
    http = dataclasses.replace(NO_RETRY, first_byte_timeout=0.3, idle_timeout=5.0)
    backend = make_backend(http=http)

    _, _, error = await run_stream(backend, user_says("[[slow_first_byte=3]] x"))

    assert error.code == ErrorCode.TIMEOUT


async def test_the_first_byte_limit_covers_the_headers_and_the_first_event_together(make_backend):
    # Each wait alone is within the limit; the two together are not.
    http = dataclasses.replace(NO_RETRY, first_byte_timeout=1.0, idle_timeout=5.0)
    backend = make_backend(http=http)

    texts, _, error = await run_stream(
        backend, user_says("[[slow_first_byte=0.6]] [[slow_body=0.6]] x")
    )

    assert texts == []
    assert error.code == ErrorCode.TIMEOUT


async def test_first_byte_may_take_longer_than_the_idle_limit(make_backend):
    http = dataclasses.replace(NO_RETRY, first_byte_timeout=3.0, idle_timeout=0.2)
    backend = make_backend(http=http)

    _, completion, error = await run_stream(backend, user_says("[[slow_first_byte=0.5]] x"))

    assert error is None
    assert completion.text == "You said: x"


@READERS
async def test_silent_gap_between_deltas_times_out_after_the_first_delta(make_backend, read):
    # The stall is shorter than the first-byte limit: only the idle limit can end it.
    http = dataclasses.replace(NO_RETRY, first_byte_timeout=5.0, idle_timeout=0.3)
    backend = make_backend(http=http)

    texts, completion, error = await read(backend, user_says("[[stall=2]] a b"))

    assert texts == ["You "]
    assert completion is None
    assert error.code == ErrorCode.TIMEOUT


async def test_a_slow_consumer_does_not_trip_the_idle_limit(make_backend):
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.2)
    backend = make_backend(http=http)
    texts = []

    async for event in backend.stream(user_says("one two"), GenerationParams()):
        if isinstance(event, TextDelta):
            texts.append(event.text)
            await asyncio.sleep(0.3)

    assert "".join(texts) == "You said: one two"


async def test_cancelling_the_consumer_closes_the_upstream_connection(make_backend, fake):
    backend = make_backend()
    first = asyncio.Event()

    async def consume():
        async for _ in backend.stream(user_says("[[tps=20]][[words=400]]"), GenerationParams()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await disconnected(fake)
    assert not fake.requests[-1].completed


async def test_closing_the_stream_early_closes_the_upstream_connection(make_backend, fake):
    backend = make_backend()
    stream = backend.stream(user_says("[[tps=20]][[words=400]]"), GenerationParams())

    assert isinstance(await anext(stream), TextDelta)
    await stream.aclose()

    assert await disconnected(fake)


async def test_the_api_key_never_appears_in_reprs_errors_or_logs(make_backend, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make_backend()

    _, _, error = await run_stream(backend, user_says("[[fail=1]][[overload]] x"))
    _, _, error = await run_stream(backend, user_says("[[auth]]"))

    assert error.code == ErrorCode.AUTH
    for text in (repr(backend), str(error), repr(error), error.detail, caplog.text):
        assert API_KEY not in text
    assert "retrying" in caplog.text


async def test_usage_and_model_come_from_the_stream(make_backend):
    backend = make_backend("chatcompletion_v2")

    _, completion, _ = await run_stream(backend, user_says("[[words=5]]"))

    assert completion.text == "word1 word2 word3 word4 word5"
    assert isinstance(completion, Completion)
    assert completion.usage.completion_tokens == 5
    assert completion.usage != Usage()
    assert completion.model == "M2-her"


@pytest.mark.parametrize("style", STYLES)
async def test_replies_one_after_another_reuse_one_upstream_connection(make_backend, fake, style):
    backend = make_backend(style)

    for word in ("one", "two", "three"):
        _, completion, error = await run_stream(backend, user_says(word))
        assert error is None
        assert completion.text == f"You said: {word}"

    # The body's end (after the last event) is read, so the connection goes back to the pool.
    assert fake.connections == 1


async def test_a_body_left_open_after_the_last_event_costs_at_most_the_drain(make_backend):
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    body = b"".join(b"data: %s\n\n" % json.dumps(e).encode() for e in events)
    # The reply is whole, but the chunked body never ends and the connection stays open.
    accepted: list[object] = []
    server, port = await scripted_server(
        [(0, CHUNKED_HEAD), (0, chunk(body + b"data: [DONE]\n\n"))], linger=5, accepted=accepted
    )
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=FAST)
    async with server:
        started = time.monotonic()
        texts, completion, error = await run_stream(backend, user_says("hello"))
        elapsed = time.monotonic() - started
        again = await run_stream(backend, user_says("again"))
        await backend.aclose()

    assert error is None
    assert texts == ["Hi."]
    assert completion.text == "Hi."
    assert elapsed < DRAIN_SECONDS + 0.5
    # The unfinished body's connection was closed, not handed to the next reply.
    assert again[1].text == "Hi."
    assert len(accepted) == 2


async def test_after_a_burst_a_bounded_number_of_connections_stay_for_the_next_replies(
    make_backend, fake
):
    backend = make_backend()
    burst = KEEPALIVE_CONNECTIONS + 10
    results = await asyncio.gather(
        # Half a second each: all are open at once, so none can reuse another's connection.
        *(run_stream(backend, user_says(f"[[tps=20]][[words=10]] {i}")) for i in range(burst))
    )
    assert all(error is None for _, _, error in results)
    assert fake.connections == burst

    _, completion, error = await run_stream(backend, user_says("after"))

    assert error is None
    assert completion.text == "You said: after"
    assert fake.connections == burst  # an idle connection was reused
    pool = backend._clients.get()._transport._pool
    assert 1 <= len(pool.connections) <= KEEPALIVE_CONNECTIONS


async def test_a_reply_kept_alive_by_comments_alone_ends_at_the_reply_limit():
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hmm"}}]}
    pings = [(0.1, chunk(b": ping\n\n")) for _ in range(60)]
    server, port = await scripted_server(
        [(0, CHUNKED_HEAD), (0, chunk(b"data: %s\n\n" % json.dumps(first).encode())), *pings]
    )
    # Every ping is well within the idle limit; only the whole reply's limit can end it.
    http = dataclasses.replace(NO_RETRY, idle_timeout=3.0, reply_timeout=1.0)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=http)
    async with server:
        started = time.monotonic()
        async with asyncio.timeout(5):
            texts, completion, error = await run_stream(backend, user_says("hello"))
        elapsed = time.monotonic() - started
        await backend.aclose()

    assert texts == ["Hmm"]
    assert completion is None
    assert (error.code, error.detail) == (ErrorCode.TIMEOUT, "the reply went on too long")
    assert 1.0 <= elapsed < 3.0


async def test_a_reply_leaves_nothing_for_the_garbage_collector(make_backend, fake):
    # Reference cycles wait for the collector's full pass, which stops every stream at once.
    backend = make_backend()
    await run_stream(backend, user_says("[[fail=1]][[overload]] warm up"))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            _, completion, error = await run_stream(backend, user_says("[[fail=1]][[overload]] x"))
            assert error is None
            assert completion.text == "You said: x"
        gc.collect()
        left = [type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()

    assert left == []

"""A reply read at a pace (`conversations.llm.pacing`): its tokens are parsed in the connection's
callback and reach the reader in batches, with the same text, errors and limits as when read
token by token, over a real loopback socket."""

import asyncio
import dataclasses
import itertools
import json
import random

import httpx
import pytest

from conversations.llm.base import GenerationParams, TextDelta
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.m2her import m2her_backend
from conversations.llm.netbackend import asyncio_transport
from conversations.llm.pacing import Pace, paced
from conversations.llm.transport import ClientPool
from tests.conversations.llm.conftest import API_KEY
from tests.conversations.llm.helpers import (
    CHUNKED_HEAD,
    FAST,
    chunk,
    run_stream,
    scripted_server,
    user_says,
)

NO_RETRY = dataclasses.replace(FAST, max_retries=0)
HOLD = 0.05  # as the reply runner does: text arriving within this of the last delta waits


async def run_paced(backend, messages, *, hold=HOLD):
    """`run_stream` by a reader that, after each delta, holds what arrives for `hold` seconds."""
    loop = asyncio.get_running_loop()
    pace = Pace()
    texts, completion, error = [], None, None
    with paced(pace):
        try:
            async for event in backend.stream(messages, GenerationParams()):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                    pace.hold_until = pace.deliver_by = loop.time() + hold
                else:
                    completion = event
        except LLMError as exc:
            error = exc
    return texts, completion, error


async def test_tokens_arriving_between_frames_reach_the_reader_together(make_backend):
    backend = make_backend()
    words = " ".join(f"w{i}" for i in range(40))
    message = user_says(f"[[tps=200]] {words}")

    pulled, pulled_completion, _ = await run_stream(backend, message)
    pushed, completion, error = await run_paced(backend, message)

    assert error is None
    assert "".join(pushed) == "".join(pulled) == f"You said: {words}"
    assert completion.text == pulled_completion.text
    assert completion.usage == pulled_completion.usage
    # 42 tokens 5 ms apart, read by a reader that wants them every 50 ms at most.
    assert len(pulled) == 42
    assert len(pushed) <= 10


async def test_a_reader_that_wants_text_at_once_gets_each_token(make_backend):
    backend = make_backend()

    texts, completion, error = await run_paced(backend, user_says("[[tps=50]] a b c d"), hold=0)

    assert error is None
    assert texts == ["You ", "said: ", "a ", "b ", "c ", "d"]
    assert completion.text == "You said: a b c d"


async def test_a_connection_cut_while_pushing_is_truncated(make_backend):
    backend = make_backend()

    texts, _, error = await run_paced(backend, user_says("[[tps=100]][[cut=3]] one two three four"))

    assert "".join(texts) == "You said: one "
    assert error.code == ErrorCode.TRUNCATED


async def test_an_error_event_while_pushing_ends_the_reply_after_the_text_before_it(make_backend):
    backend = make_backend()

    texts, completion, error = await run_paced(
        backend, user_says("[[tps=100]][[midstream_error]] a b c d")
    )

    assert "".join(texts) == "You said: "
    assert completion is None
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE


async def test_a_silence_while_pushing_times_out(make_backend):
    http = dataclasses.replace(NO_RETRY, first_byte_timeout=5.0, idle_timeout=0.3)
    backend = make_backend(http=http)

    texts, completion, error = await run_paced(backend, user_says("[[stall=2]] a b"))

    assert texts == ["You "]
    assert completion is None
    assert error.code == ErrorCode.TIMEOUT


async def test_steady_tokens_while_pushing_do_not_trip_the_idle_limit(make_backend):
    # Each wait of the reader is longer than the limit; the upstream is never silent that long.
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.2)
    backend = make_backend(http=http)
    words = " ".join(f"w{i}" for i in range(30))

    _, completion, error = await run_paced(backend, user_says(f"[[tps=20]] {words}"), hold=0.3)

    assert error is None
    assert completion.text == f"You said: {words}"


async def test_a_reply_whose_body_stays_open_after_its_finish_reason_completes():
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {"choices": [{"index": 0, "delta": {"content": " there."}, "finish_reason": "stop"}]},
    ]
    data = [b"data: %s\n\n" % json.dumps(e).encode() for e in events]
    # No `[DONE]` and no end of the body: the idle limit ends the wait, and the reply is whole.
    server, port = await scripted_server(
        [(0, CHUNKED_HEAD + chunk(data[0])), (0.05, chunk(data[1]))], linger=5
    )
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.3)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=http)
    async with server:
        texts, completion, error = await run_paced(backend, user_says("hello"))
        await backend.aclose()

    assert error is None
    assert "".join(texts) == "Hi there."
    assert completion.text == "Hi there."


async def test_a_chunk_that_is_not_plain_is_read_by_h11_and_the_reply_goes_on():
    events = [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": w}}]}).encode()
        for w in ("one ", "two ", "three ", "four")
    ]
    end = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    with_extension = b"%x;note=1\r\n%s\r\n" % (len(events[2]), events[2])
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        (0.02, with_extension),
        (0.02, chunk(events[3])),
        (0.02, chunk(end) + chunk(b"")),
    ]
    server, port = await scripted_server(parts, linger=2)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=NO_RETRY)
    async with server:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0)
        await backend.aclose()

    assert error is None
    assert texts == ["one ", "two ", "three ", "four"]
    assert completion.text == "one two three four"


async def test_pushed_replies_one_after_another_reuse_one_upstream_connection(make_backend, fake):
    backend = make_backend()

    for word in ("one", "two", "three"):
        _, completion, error = await run_paced(backend, user_says(f"[[tps=200]] {word} more"))
        assert error is None
        assert completion.text == f"You said: {word} more"

    assert fake.connections == 1


async def test_closing_a_pushed_stream_early_lets_go_of_its_connection(make_backend, fake):
    backend = make_backend()
    pace = Pace()
    with paced(pace):
        stream = backend.stream(user_says("[[tps=50]][[words=400]]"), GenerationParams())
        assert isinstance(await anext(stream), TextDelta)
        pace.hold_until = pace.deliver_by = asyncio.get_running_loop().time() + 10
        await stream.aclose()

    for _ in range(100):
        if fake.requests[-1].disconnected:
            break
        await asyncio.sleep(0.05)
    assert fake.requests[-1].disconnected
    # The next reply gets a connection of its own and reads normally.
    _, completion, error = await run_paced(backend, user_says("again"))
    assert error is None
    assert completion.text == "You said: again"


async def test_a_compressed_body_is_read_without_pushing():
    body = b'data: {"choices": [{"delta": {"content": "Hi."}, "finish_reason": "stop"}]}\n\n'

    def handler(request):
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream", "content-encoding": "identity"},
            content=body,
        )

    transport = httpx.MockTransport(handler)
    backend = m2her_backend(
        base_url="https://api.example.test",
        api_key=API_KEY,
        http=FAST,
        clients=ClientPool(FAST, transport=transport),
    )
    texts, completion, error = await run_paced(backend, user_says("hi"))

    assert error is None
    assert texts == ["Hi."]
    assert completion.text == "Hi."


async def test_text_held_for_the_reader_when_the_upstream_falls_silent_is_kept():
    events = [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": w}}]}).encode()
        for w in ("one ", "two ")
    ]
    server, port = await scripted_server(
        [(0, CHUNKED_HEAD + chunk(events[0])), (0.02, chunk(events[1]))], linger=5
    )
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.2)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=http)
    loop = asyncio.get_running_loop()
    async with server:
        started = loop.time()
        # The reader holds text for longer than the idle limit: the silence is counted from the
        # last bytes, not from when the reader would next have looked.
        texts, completion, error = await run_paced(backend, user_says("hello"), hold=0.6)
        elapsed = loop.time() - started
        await backend.aclose()

    assert texts == ["one ", "two "]
    assert completion is None
    assert error.code == ErrorCode.TIMEOUT
    assert elapsed < 0.5


@pytest.mark.parametrize("seed", range(8))
async def test_a_body_cut_anywhere_reads_whole_and_leaves_the_connection_reusable(seed):
    rng = random.Random(seed)
    words = [f"w{i} " for i in range(30)]
    events = [json.dumps({"choices": [{"delta": {"content": w}}]}).encode() for w in words]
    events.append(b'{"choices": [{"delta": {}, "finish_reason": "stop"}]}')
    body = b"".join(chunk(b"data: %s\n\n" % e) for e in events)
    body += chunk(b"data: [DONE]\n\n") + chunk(b"")
    raw = CHUNKED_HEAD + body
    # Writes end anywhere: inside a size line, inside a chunk's data, several chunks at once.
    points = sorted(set(rng.sample(range(len(CHUNKED_HEAD) + 1, len(raw)), 25)))
    edges = [0, *points, len(raw)]
    parts = [(0.002, raw[a:b]) for a, b in itertools.pairwise(edges)]
    server, port = await scripted_server(parts, linger=2)
    transport = asyncio_transport(limits=httpx.Limits(max_connections=10))
    backend = m2her_backend(
        base_url=f"http://127.0.0.1:{port}",
        api_key=API_KEY,
        http=NO_RETRY,
        clients=ClientPool(NO_RETRY, transport=transport),
    )
    async with server:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0.01)
        pool = transport._pool.connections
        reusable = len(pool) == 1 and pool[0].is_idle()
        await backend.aclose()

    assert error is None
    assert "".join(texts) == completion.text == "".join(words)
    assert reusable


async def test_a_reader_busy_when_text_came_is_not_woken_for_it_again_later():
    words = ("one ", "two ", "three ", "four")
    events = [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": w}}]}).encode()
        for w in words
    ]
    end = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        (0.01, chunk(events[2])),  # arrives while the reader is busy with the second
        (0.4, chunk(events[3]) + chunk(end) + chunk(b"")),
    ]
    server, port = await scripted_server(parts, linger=2)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=NO_RETRY)
    loop = asyncio.get_running_loop()
    pace = Pace()
    texts = []
    async with server:
        with paced(pace):
            async for event in backend.stream(user_says("count"), GenerationParams()):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                    if len(texts) == 2:
                        # Busy: the third text arrives meanwhile, and is held for a while.
                        pace.hold_until = pace.deliver_by = loop.time() + 0.1
                        await asyncio.sleep(0.05)
        await backend.aclose()

    # Taken as soon as the reader came back for it, the held text's wake-up was no longer due;
    # the reader went on waiting for the rest, which came as it does.
    assert texts == list(words)


async def test_a_reply_that_ends_while_its_reader_is_busy_still_hands_over_its_end():
    words = ("one ", "two ", "three")
    events = [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": w}}]}).encode()
        for w in words
    ]
    end = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        # The rest of the reply, its end included, comes while the reader is busy with "two".
        (0.02, chunk(events[2]) + chunk(end) + chunk(b"")),
    ]
    server, port = await scripted_server(parts, linger=2)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=NO_RETRY)
    pace = Pace()
    texts, completion = [], None
    async with server:
        with paced(pace):
            async for event in backend.stream(user_says("count"), GenerationParams()):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
                    if len(texts) == 2:
                        await asyncio.sleep(0.1)  # busy: publishing the text, say
                else:
                    completion = event
        await backend.aclose()

    assert "".join(texts) == "one two three"
    assert completion is not None
    assert completion.text == "one two three"


async def test_a_body_ending_without_a_finish_reason_while_pushing_says_so_after_its_text():
    events = [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": w}}]}).encode()
        for w in ("one ", "two")
    ]
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1]) + chunk(b"")),  # the body ends: no finish reason, no [DONE]
    ]
    server, port = await scripted_server(parts, linger=2)
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=NO_RETRY)
    async with server:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0.5)
        await backend.aclose()

    assert texts == ["one ", "two"]
    assert completion is None
    assert error.code == ErrorCode.TRUNCATED
    assert "finish reason" in error.detail

"""A reply read at a pace (`conversations.llm.pacing`): its tokens are parsed in the connection's
callback and reach the reader in batches, with the same text, errors and limits as when read
token by token, over a real loopback socket. (The cut, error-event and silence scenarios of
`test_m2her_client` run with a paced reader too.)"""

import asyncio
import contextlib
import dataclasses
import itertools
import random

import httpx
import pytest

from conversations.llm.base import GenerationParams, TextDelta
from conversations.llm.errors import ErrorCode
from conversations.llm.m2her import m2her_backend
from conversations.llm.netbackend import asyncio_transport
from conversations.llm.pacing import Pace, paced
from conversations.llm.transport import ClientPool
from tests.conversations.llm.conftest import API_KEY
from tests.conversations.llm.helpers import (
    CHUNKED_HEAD,
    END,
    NO_RETRY,
    chunk,
    disconnected,
    run_paced,
    run_stream,
    scripted_server,
    sse,
    user_says,
)


@contextlib.asynccontextmanager
async def scripted_backend(parts, *, http=NO_RETRY, linger=2.0, clients=None):
    """An M2-her backend whose one request a loopback server answers with `parts`."""
    server, port = await scripted_server(parts, linger=linger)
    backend = m2her_backend(
        base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=http, clients=clients
    )
    async with server:
        try:
            yield backend
        finally:
            await backend.aclose()


async def read_busy(backend, *, busy_after: int, busy: float, hold: float = 0.0):
    """A paced reader that, at its `busy_after`-th delta, lets text wait `hold` seconds and is
    busy for `busy` seconds (publishing that delta, say): its texts and completion."""
    loop = asyncio.get_running_loop()

    async def busy_at(count, pace):
        if count == busy_after:
            pace.hold_until = pace.deliver_by = loop.time() + hold
            await asyncio.sleep(busy)

    texts, completion, error = await run_paced(backend, user_says("count"), after_delta=busy_at)
    if error is not None:
        raise error
    return texts, completion


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


async def test_steady_tokens_while_pushing_do_not_trip_the_idle_limit(make_backend):
    # Each wait of the reader is longer than the limit; the upstream is never silent that long.
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.2)
    backend = make_backend(http=http)
    words = " ".join(f"w{i}" for i in range(30))

    _, completion, error = await run_paced(backend, user_says(f"[[tps=20]] {words}"), hold=0.3)

    assert error is None
    assert completion.text == f"You said: {words}"


async def test_a_reply_whose_body_stays_open_after_its_finish_reason_completes():
    (hi,) = sse("Hi")
    finish = b'data: {"choices": [{"delta": {"content": " there."}, "finish_reason": "stop"}]}\n\n'
    # No `[DONE]` and no end of the body: the idle limit ends the wait, and the reply is whole.
    parts = [(0, CHUNKED_HEAD + chunk(hi)), (0.05, chunk(finish))]
    async with scripted_backend(
        parts, http=dataclasses.replace(NO_RETRY, idle_timeout=0.3), linger=5
    ) as backend:
        texts, completion, error = await run_paced(backend, user_says("hello"))

    assert error is None
    assert "".join(texts) == "Hi there."
    assert completion.text == "Hi there."


async def test_a_chunk_that_is_not_plain_is_read_by_h11_and_the_reply_goes_on():
    events = sse("one ", "two ", "three ", "four")
    with_extension = b"%x;note=1\r\n%s\r\n" % (len(events[2]), events[2])
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        (0.02, with_extension),
        (0.02, chunk(events[3])),
        (0.02, chunk(END) + chunk(b"")),
    ]
    async with scripted_backend(parts) as backend:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0)

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

    assert await disconnected(fake)
    # The next reply gets a connection of its own and reads normally.
    _, completion, error = await run_paced(backend, user_says("again"))
    assert error is None
    assert completion.text == "You said: again"


@pytest.mark.parametrize("encoding", [None, "identity"])
async def test_a_compressed_body_is_read_without_pushing(encoding):
    # Tokens 10 ms apart, for a reader that lets text wait 50 ms: pushed, they come in batches.
    words = [f"w{i} " for i in range(10)]
    head = CHUNKED_HEAD
    if encoding is not None:
        head = head.replace(b"\r\n\r\n", b"\r\nContent-Encoding: %s\r\n\r\n" % encoding.encode())
    events = [chunk(e) for e in sse(*words)]
    parts = [
        (0, head + events[0]),
        *((0.01, e) for e in events[1:]),
        (0.01, chunk(END) + chunk(b"")),
    ]
    async with scripted_backend(parts) as backend:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0.05)

    assert error is None
    assert "".join(texts) == completion.text == "".join(words)
    if encoding is None:
        assert len(texts) < len(words)
    else:
        # Through httpx's decoders, token by token, as an unpaced reader reads it.
        assert texts == words


async def test_text_held_for_the_reader_when_the_upstream_falls_silent_is_kept():
    events = sse("one ", "two ")
    parts = [(0, CHUNKED_HEAD + chunk(events[0])), (0.02, chunk(events[1]))]
    loop = asyncio.get_running_loop()
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.2)
    async with scripted_backend(parts, http=http, linger=5) as backend:
        started = loop.time()
        # The reader holds text for longer than the idle limit: the silence is counted from the
        # last bytes, not from when the reader would next have looked.
        texts, completion, error = await run_paced(backend, user_says("hello"), hold=0.6)
        elapsed = loop.time() - started

    assert texts == ["one ", "two "]
    assert completion is None
    assert error.code == ErrorCode.TIMEOUT
    assert elapsed < 0.5


@pytest.mark.parametrize("seed", range(8))
async def test_a_body_cut_anywhere_reads_whole_and_leaves_the_connection_reusable(seed):
    rng = random.Random(seed)
    words = [f"w{i} " for i in range(30)]
    raw = CHUNKED_HEAD + b"".join(map(chunk, [*sse(*words), END, b""]))
    # Writes end anywhere: inside a size line, inside a chunk's data, several chunks at once.
    points = sorted(set(rng.sample(range(len(CHUNKED_HEAD) + 1, len(raw)), 25)))
    edges = [0, *points, len(raw)]
    parts = [(0.002, raw[a:b]) for a, b in itertools.pairwise(edges)]
    transport = asyncio_transport(limits=httpx.Limits(max_connections=10))
    clients = ClientPool(NO_RETRY, transport=transport)
    async with scripted_backend(parts, clients=clients) as backend:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0.01)
        pool = transport._pool.connections
        reusable = len(pool) == 1 and pool[0].is_idle()

    assert error is None
    assert "".join(texts) == completion.text == "".join(words)
    assert reusable


async def test_a_reader_busy_when_text_came_is_not_woken_for_it_again_later():
    words = ("one ", "two ", "three ", "four")
    events = sse(*words)
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        (0.01, chunk(events[2])),  # arrives while the reader is busy with the second, and waits
        (0.4, chunk(events[3]) + chunk(END) + chunk(b"")),
    ]
    async with scripted_backend(parts) as backend:
        texts, _ = await read_busy(backend, busy_after=2, busy=0.05, hold=0.1)

    # Taken as soon as the reader came back for it, the held text's wake-up was no longer due;
    # the reader went on waiting for the rest, which came as it does.
    assert texts == list(words)


async def test_a_reply_that_ends_while_its_reader_is_busy_still_hands_over_its_end():
    events = sse("one ", "two ", "three")
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1])),
        # The rest of the reply, its end included, comes while the reader is busy with "two".
        (0.02, chunk(events[2]) + chunk(END) + chunk(b"")),
    ]
    async with scripted_backend(parts) as backend:
        texts, completion = await read_busy(backend, busy_after=2, busy=0.1)

    assert "".join(texts) == "one two three"
    assert completion is not None
    assert completion.text == "one two three"


async def test_a_body_ending_without_a_finish_reason_while_pushing_says_so_after_its_text():
    events = sse("one ", "two")
    parts = [
        (0, CHUNKED_HEAD + chunk(events[0])),
        (0.02, chunk(events[1]) + chunk(b"")),  # the body ends: no finish reason, no [DONE]
    ]
    async with scripted_backend(parts) as backend:
        texts, completion, error = await run_paced(backend, user_says("count"), hold=0.5)

    assert texts == ["one ", "two"]
    assert completion is None
    assert error.code == ErrorCode.TRUNCATED
    assert "finish reason" in error.detail


async def test_a_reader_busy_past_the_idle_limit_is_not_taken_for_a_silence():
    # As when read token by token, only waiting on the network counts: the reader is busy
    # 0.3 s with the second text (pushed: the first is read with the headers), and the third
    # comes 0.1 s after it waits again.
    http = dataclasses.replace(NO_RETRY, idle_timeout=0.25)
    events = [chunk(e) for e in sse("w1 ", "w2 ", "w3")]
    parts = [
        (0, CHUNKED_HEAD),
        (0.05, events[0]),
        (0.05, events[1]),
        (0.4, events[2] + chunk(END) + chunk(b"")),
    ]
    async with scripted_backend(parts, http=http) as backend:
        texts, completion = await read_busy(backend, busy_after=2, busy=0.3)

    assert texts == ["w1 ", "w2 ", "w3"]
    assert completion.text == "w1 w2 w3"

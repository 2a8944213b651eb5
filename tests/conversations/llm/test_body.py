"""The direct HTTP/1.1 body reader: same bytes and errors as httpx's, connection kept alive."""

import itertools
import random
import re

import h11
import httpx
import pytest

from conversations.llm.body import H11Body, _NotPlain, _plain_chunk, body_reader
from conversations.llm.fake_server import FakeM2her
from conversations.llm.netbackend import asyncio_transport
from tests.conversations.llm.helpers import CHUNKED_HEAD, chunk, scripted_server

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30)
BODY = {
    "model": "M2-her",
    "stream": True,
    "messages": [{"role": "user", "content": "[[words=50]] go"}],
}


async def _read_all(read):
    parts = []
    while (chunk := await read()) is not None:
        parts.append(chunk)
    return b"".join(parts)


async def test_a_streamed_body_reads_the_same_directly_and_the_connection_is_reused():
    transport = asyncio_transport(limits=LIMITS)
    async with FakeM2her() as fake, httpx.AsyncClient(transport=transport) as client:
        url = f"{fake.base_url}/v1/chat/completions"
        request = client.build_request("POST", url, json=BODY)
        response = await client.send(request, stream=True)
        assert H11Body.attach(response) is not None
        direct = await _read_all(body_reader(response))
        await response.aclose()
        response = await client.send(client.build_request("POST", url, json=BODY), stream=True)
        through_httpx = b"".join([chunk async for chunk in response.aiter_raw()])
        await response.aclose()
        # The same stream but for its response id, which the fake numbers per request.
        same_id = re.sub(rb'"id":\s*"[^"]*"', b'"id":""', through_httpx)
        assert re.sub(rb'"id":\s*"[^"]*"', b'"id":""', direct) == same_id
        assert direct.count(b"word") == 50
        assert len(transport._pool.connections) == 1  # kept alive after the direct read


async def test_other_transports_are_read_through_httpx():
    async def pieces():
        yield b"data: {}"
        yield b"\n\n"

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=pieces()))
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.send(client.build_request("GET", "http://x.test/"), stream=True)
        assert H11Body.attach(response) is None
        assert await _read_all(body_reader(response)) == b"data: {}\n\n"


async def test_a_body_cut_short_is_httpx_remote_protocol_error():
    server, port = await scripted_server([(0, CHUNKED_HEAD + chunk(b"hello"))])
    transport = asyncio_transport(limits=LIMITS)
    async with server, httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", f"http://127.0.0.1:{port}/")
        response = await client.send(request, stream=True)
        read = body_reader(response)
        assert await read() == b"hello"
        with pytest.raises(httpx.RemoteProtocolError):
            await read()
        await response.aclose()


async def test_a_silent_body_is_httpx_read_timeout():
    server, port = await scripted_server([(0, CHUNKED_HEAD)], linger=5)
    transport = asyncio_transport(limits=LIMITS)
    timeout = httpx.Timeout(5.0, read=0.2)
    async with server, httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        response = await client.send(
            client.build_request("GET", f"http://127.0.0.1:{port}/"), stream=True
        )
        with pytest.raises(httpx.ReadTimeout):
            await body_reader(response)()
        await response.aclose()


def _size_line(data: bytes, style: str) -> bytes:
    size = b"%x" % len(data)
    if style == "upper":
        size = size.upper()
    elif style == "zeros":
        size = size.rjust(8, b"0")
    elif style == "extension":
        size += b";note=1"
    return size + b"\r\n"


def _chunked(pieces: list[bytes], styles: list[str], trailer: bytes = b"") -> bytes:
    body = b"".join(_size_line(p, s) + p + b"\r\n" for p, s in zip(pieces, styles, strict=True))
    return body + b"0\r\n" + trailer + b"\r\n"


def _cut(raw: bytes, points: list[int]) -> list[tuple[float, bytes]]:
    """`raw` in writes ending at `points`, each after a pause so that reads end there too."""
    edges = [0, *sorted(set(points)), len(raw)]
    return [(0.005, raw[a:b]) for a, b in itertools.pairwise(edges) if b > a]


async def _read_scripted(parts):
    """The body read directly from a server writing `parts`, and whether the connection is
    left idle in the pool (h11 saw the body end) once the response is closed."""
    server, port = await scripted_server(parts, linger=2)
    transport = asyncio_transport(limits=LIMITS)
    async with server, httpx.AsyncClient(transport=transport) as client:
        request = client.build_request("GET", f"http://127.0.0.1:{port}/")
        response = await client.send(request, stream=True)
        body = H11Body.attach(response)
        assert body is not None
        data = await _read_all(body.read)
        await response.aclose()
        pool = transport._pool.connections
        return data, len(pool) == 1 and pool[0].is_idle()


def _random_case(seed: int) -> tuple[bytes, list[tuple[float, bytes]]]:
    rng = random.Random(seed)
    pieces = [rng.randbytes(rng.choice([1, 2, 15, 16, 200, 4000, 70_000])) for _ in range(12)]
    styles = [rng.choice(["plain", "plain", "upper", "zeros", "extension"]) for _ in pieces]
    trailer = rng.choice([b"", b"X-Usage: 12\r\n"])
    raw = CHUNKED_HEAD + _chunked(pieces, styles, trailer)
    # Mostly on chunk boundaries (a model's stream), some anywhere, some chunks together.
    bounds, at = [], len(CHUNKED_HEAD)
    for piece, style in zip(pieces, styles, strict=True):
        at += len(_size_line(piece, style)) + len(piece) + 2
        bounds.append(at)
    points = rng.sample(bounds, 8) + [rng.randrange(len(raw)) for _ in range(6)]
    return b"".join(pieces), _cut(raw, points)


@pytest.mark.parametrize("seed", range(12))
async def test_a_chunked_body_cut_anywhere_reads_whole_and_leaves_the_connection_reusable(seed):
    expected, parts = _random_case(seed)
    data, reusable = await _read_scripted(parts)
    assert data == expected
    assert reusable


async def test_chunks_that_end_their_reads_are_split_without_h11():
    pieces = [b"data: %d\n\n" % i for i in range(6)]
    # One write per chunk, a pause before each, so that each read ends with a whole chunk.
    writes = [CHUNKED_HEAD + chunk(pieces[0]), *map(chunk, pieces[1:]), chunk(b"")]
    server, port = await scripted_server([(0.005, data) for data in writes], linger=2)
    transport = asyncio_transport(limits=LIMITS)
    async with server, httpx.AsyncClient(transport=transport) as client:
        response = await client.send(
            client.build_request("GET", f"http://127.0.0.1:{port}/"), stream=True
        )
        body = H11Body.attach(response)
        assert body is not None
        h11_state = body._h11
        assert await body.read() == pieces[0]  # through h11, which then hands over
        for piece in pieces[1:]:
            assert body._plain
            assert await body.read() == piece
            assert h11_state.trailing_data == (b"", False)  # never given these bytes
        assert await body.read() is None
        assert h11_state.their_state is h11.DONE  # the last chunk went through h11
        await response.aclose()
        assert transport._pool.connections[0].is_idle()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"5\r\nhello\r\n", (b"hello", 10)),
        (b"5\r\nhello\r\n7\r\n", (b"hello", 10)),
        (b"0000000A\r\n0123456789\r\n", (b"0123456789", 22)),
        (b"a\r\n0123456789\r\n", (b"0123456789", 15)),
        (b"", None),
        (b"5", None),
        (b"5\r", None),
        (b"5\r\nhel", None),
        (b"5\r\nhello\r", None),
    ],
)
def test_the_splitter_takes_a_plain_chunk_or_waits_for_the_rest(raw, expected):
    assert _plain_chunk(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"0\r\n\r\n",  # the last chunk: h11 reads the trailer and ends the body
        b"00\r\n\r\n",
        b"5;ext=1\r\nhello\r\n",
        b"+5\r\nhello\r\n",  # int() would take these; HTTP does not
        b" 5\r\nhello\r\n",
        b"0x5\r\nhello\r\n",
        b"5_0\r\nhello\r\n",
        b"5\nhello\r\n",
        b"\r\nhello\r\n",
        b"123456789\r\n",  # more digits than a plain chunk's
        b"10001\r\n",  # over 64 KiB: h11 streams it in pieces
        b"5\r\nhelloXY",
    ],
)
def test_the_splitter_leaves_anything_else_to_h11(raw):
    with pytest.raises(_NotPlain):
        _plain_chunk(raw)


@pytest.mark.parametrize(
    "rest",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # a size that is not hex
        b"5\r\nhelloXY0\r\n\r\n",  # data longer than its size
        b"5\r\nhel",  # the connection closes inside a chunk
        b"",  # it closes between chunks, without the last one
    ],
)
async def test_a_malformed_body_after_split_chunks_is_httpx_remote_protocol_error(rest):
    first = chunk(b"data: 1\n\n")
    parts = [(0, CHUNKED_HEAD + first), (0.01, chunk(b"data: 2\n\n")), (0.01, rest)]
    server, port = await scripted_server([p for p in parts if p[1]])
    transport = asyncio_transport(limits=LIMITS)
    async with server, httpx.AsyncClient(transport=transport) as client:
        response = await client.send(
            client.build_request("GET", f"http://127.0.0.1:{port}/"), stream=True
        )
        read = body_reader(response)
        assert await read() == b"data: 1\n\n"
        assert await read() == b"data: 2\n\n"
        with pytest.raises(httpx.RemoteProtocolError):
            await _read_all(read)
        await response.aclose()

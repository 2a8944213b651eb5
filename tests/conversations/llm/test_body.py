"""The direct HTTP/1.1 body reader: same bytes and errors as httpx's, connection kept alive."""

import re

import httpx
import pytest

from conversations.llm.body import H11Body, body_reader
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

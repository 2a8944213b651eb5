"""The asyncio network backend under httpx: plain HTTP, TLS, keep-alive, large bodies, closes."""

import asyncio
import json
import ssl

import httpx
import pytest
import trustme

from conversations.llm.fake_server import FakeM2her
from conversations.llm.m2her import m2her_backend
from conversations.llm.netbackend import AsyncioBackend, asyncio_transport
from conversations.llm.transport import ClientPool, HttpSettings
from tests.conversations.llm.helpers import (
    CHUNKED_HEAD,
    FAST,
    chunk,
    run_stream,
    scripted_server,
    user_says,
)

LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=30)


@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


@pytest.fixture
async def tls_fake(certificate_authority):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with FakeM2her(ssl=server_context) as server:
        yield server


async def test_a_stream_over_tls_arrives_whole(tls_fake, certificate_authority):
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    clients = ClientPool(
        HttpSettings(), transport=asyncio_transport(limits=LIMITS, verify=client_context)
    )
    backend = m2her_backend(base_url=tls_fake.base_url, api_key="k", clients=clients)
    texts, completion, error = await run_stream(backend, user_says("[[words=50]] over tls"))
    await backend.aclose()
    assert error is None
    assert completion is not None
    assert "".join(texts) == completion.text
    assert completion.text.endswith("word50")
    assert tls_fake.base_url.startswith("https://")


async def test_an_untrusted_certificate_is_refused(tls_fake):
    clients = ClientPool(HttpSettings(max_retries=0), transport=asyncio_transport(limits=LIMITS))
    backend = m2her_backend(base_url=tls_fake.base_url, api_key="k", clients=clients)
    _texts, completion, error = await run_stream(backend, user_says("hello"))
    await backend.aclose()
    assert completion is None
    assert error is not None
    assert error.code == "upstream_unavailable"


async def test_connections_are_kept_alive_and_reused():
    async with FakeM2her() as fake:
        transport = asyncio_transport(limits=LIMITS)
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(3):
                response = await client.post(
                    f"{fake.base_url}/v1/chat/completions",
                    json={"model": "M2-her", "messages": [{"role": "user", "content": "hi"}]},
                )
                assert response.json()["choices"][0]["message"]["content"] == "You said: hi"
            connections = transport._pool.connections
            assert len(connections) == 1


async def test_a_large_body_larger_than_the_read_buffer_is_read_whole():
    transport = asyncio_transport(limits=LIMITS)
    async with FakeM2her() as fake, httpx.AsyncClient(transport=transport) as client:
        text = "x" * 600_000
        response = await client.post(
            f"{fake.base_url}/v1/chat/completions",
            json={"model": "M2-her", "messages": [{"role": "user", "content": text}]},
        )
        assert response.json()["choices"][0]["message"]["content"] == f"You said: {text}"


async def test_a_connection_refused_is_a_connect_error():
    async with httpx.AsyncClient(transport=asyncio_transport(limits=LIMITS)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")


async def test_a_server_that_closes_midway_is_a_read_error():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
    server, port = await scripted_server([(0, head)])
    async with server, httpx.AsyncClient(transport=asyncio_transport(limits=LIMITS)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_the_default_client_pool_uses_the_asyncio_backend():
    pool = ClientPool(HttpSettings())
    client = pool.get()
    transport = client._transport
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    backend = transport._pool._network_backend
    await pool.aclose()
    assert isinstance(backend, AsyncioBackend)


async def test_a_model_request_is_the_one_httpx_builds():
    pool = ClientPool(HttpSettings(connect_timeout=3.0))
    client = pool.get()
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    url = "http://127.0.0.1:9/v1/text/chatcompletion_v2"
    for content in (b'{"a": 1}', b'{"longer": "body"}', b'{"a": 1}'):
        ours = client.post_request(url, headers, content)
        theirs = client.build_request("POST", url, content=content, headers=headers)
        assert (ours.method, ours.url, ours.headers.raw, ours.extensions) == (
            theirs.method,
            theirs.url,
            theirs.headers.raw,
            theirs.extensions,
        )
        assert ours.read() == content
        assert ours.headers["content-length"] == str(len(content))
    # Another backend's URL and key get their own.
    other = client.post_request("http://127.0.0.1:9/other", {"Authorization": "Bearer j"}, b"")
    assert other.url.path == "/other"
    assert other.headers["authorization"] == "Bearer j"
    with pytest.raises(httpx.InvalidURL):
        client.post_request("http://\x00x/", headers, b"")
    await pool.aclose()


async def test_cookies_the_model_service_sets_are_not_sent_back():
    # One client carries every user's requests: a cookie one reply set must not go with the
    # next (whoever's it is).
    choice = {"index": 0, "delta": {"content": "Hi."}, "finish_reason": "stop"}
    event = b"data: %s\n\n" % json.dumps({"choices": [choice]}).encode()
    head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nSet-Cookie: affinity=node-7; Path=/\r\n\r\n")
    heads: list[bytes] = []
    server, port = await scripted_server(
        [(0, head), (0, chunk(event + b"data: [DONE]\n\n") + chunk(b""))], heads=heads
    )
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key="k", http=FAST)
    async with server:
        first = await run_stream(backend, user_says("one"))
        await asyncio.sleep(0.1)  # the server's close reaches the idle connection
        second = await run_stream(backend, user_says("two"))
        client = backend._clients.get()
        await backend.aclose()

    assert first[1].text == second[1].text == "Hi."
    assert len(heads) == 2
    assert all(b"cookie:" not in head.lower() for head in heads)
    assert not client.cookies
    with pytest.raises(AttributeError):
        client.cookies = {"affinity": "node-7"}


async def _chunked(body_steps):
    """A server answering one chunked response, writing each step's bytes after its pause."""
    parts = [(0, CHUNKED_HEAD), *((pause, chunk(data)) for pause, data in body_steps)]
    return await scripted_server([*parts, (0, chunk(b""))], linger=5)


async def test_a_server_that_goes_silent_is_a_read_timeout():
    server, port = await _chunked([(0, b"first"), (10, b"never in time")])
    timeout = httpx.Timeout(5.0, read=0.3)
    transport = asyncio_transport(limits=LIMITS)
    async with server, httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
            chunks = response.aiter_raw()
            assert await anext(chunks) == b"first"
            with pytest.raises(httpx.ReadTimeout):
                await anext(chunks)
        assert loop.time() - started < 3


async def test_the_read_deadline_is_per_read_not_per_response():
    # Ten gaps of 0.1 s: the whole body takes longer than the 0.3 s read timeout, no read does.
    steps = [(0.1, b"piece%d" % i) for i in range(10)]
    server, port = await _chunked(steps)
    timeout = httpx.Timeout(5.0, read=0.3)
    transport = asyncio_transport(limits=LIMITS)
    async with (
        server,
        httpx.AsyncClient(transport=transport, timeout=timeout) as client,
        client.stream("GET", f"http://127.0.0.1:{port}/") as response,
    ):
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body == b"".join(data for _, data in steps)

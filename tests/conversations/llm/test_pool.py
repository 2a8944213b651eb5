"""The upstream connection pool (`LinearConnectionPool`), through the real M2-her client over
loopback sockets to the fake server."""

import asyncio
import dataclasses
import json

import h11
import pytest
from httpcore._async.http11 import AsyncHTTP11Connection

from conversations.llm.base import GenerationParams
from conversations.llm.connection import AsyncioHTTPConnection, PromptLock
from conversations.llm.m2her import m2her_backend
from conversations.llm.pool import LinearConnectionPool
from conversations.llm.transport import KEEPALIVE_CONNECTIONS
from tests.conversations.llm.conftest import API_KEY
from tests.conversations.llm.helpers import (
    CHUNKED_HEAD,
    FAST,
    chunk,
    run_stream,
    scripted_server,
    user_says,
)


def pool_of(backend):
    pool = backend._clients.get()._transport._pool
    assert isinstance(pool, LinearConnectionPool)
    return pool


async def test_replies_finishing_while_many_run_leave_their_connections_to_the_next(
    make_backend, fake
):
    backend = make_backend()
    running = KEEPALIVE_CONNECTIONS + 5
    # More replies than the keep-alive limit stay open for a while...
    long = [
        asyncio.create_task(run_stream(backend, user_says(f"[[tps=10]][[words=15]] {i}")))
        for i in range(running)
    ]
    # ...while a few short ones finish, then a few more start.
    first = await asyncio.gather(*(run_stream(backend, user_says(f"a{i}")) for i in range(3)))
    opened = fake.connections
    second = await asyncio.gather(*(run_stream(backend, user_says(f"b{i}")) for i in range(3)))
    assert not any(task.done() for task in long)  # all the long ones were open throughout
    done = await asyncio.gather(*long)

    assert all(error is None for _, _, error in [*first, *second, *done])
    assert opened == running + 3
    # The idle connections were kept (the limit counts idle ones only) and reused.
    assert fake.connections == opened


async def test_idle_connections_beyond_the_limit_are_closed(make_backend, fake):
    backend = make_backend()
    burst = KEEPALIVE_CONNECTIONS + 7
    results = await asyncio.gather(
        *(run_stream(backend, user_says(f"[[tps=40]][[words=8]] {i}")) for i in range(burst))
    )
    assert all(error is None for _, _, error in results)

    pool = pool_of(backend)
    assert len(pool.connections) == KEEPALIVE_CONNECTIONS
    assert all(connection.is_idle() for connection in pool.connections)


async def test_requests_beyond_max_connections_wait_for_a_released_one(make_backend, fake):
    backend = make_backend(http=dataclasses.replace(FAST, max_connections=2))

    results = await asyncio.gather(
        *(run_stream(backend, user_says(f"[[tps=50]][[words=4]] {i}")) for i in range(5))
    )

    assert [error for _, _, error in results] == [None] * 5
    assert [completion.text for _, completion, _ in results] == ["word1 word2 word3 word4"] * 5
    assert fake.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced_not_reused():
    choice = {"index": 0, "delta": {"content": "Hi."}, "finish_reason": "stop"}
    event = b"data: %s\n\n" % json.dumps({"choices": [choice]}).encode()
    accepted: list[object] = []
    # The server ends each connection right after its response.
    server, port = await scripted_server(
        [(0, CHUNKED_HEAD), (0, chunk(event + b"data: [DONE]\n\n") + chunk(b""))],
        accepted=accepted,
    )
    backend = m2her_backend(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, http=FAST)
    async with server:
        first = await run_stream(backend, user_says("one"))
        await asyncio.sleep(0.1)  # the server's close reaches the idle connection
        second = await run_stream(backend, user_says("two"))
        await backend.aclose()

    assert first[1].text == second[1].text == "Hi."
    assert second[2] is None
    assert len(accepted) == 2


def test_the_pool_refuses_http2():
    with pytest.raises(ValueError, match=r"HTTP/1\.1"):
        LinearConnectionPool(http2=True)


async def test_a_request_on_a_kept_alive_connection_is_sent_before_the_loop_turns(
    make_backend, fake
):
    # httpcore's own (anyio) locks yield to the event loop even when free: a request waited two
    # turns of the loop, on a busy server milliseconds each, before its bytes went out.
    backend = make_backend()
    assert (await run_stream(backend, user_says("warm")))[2] is None
    (connection,) = pool_of(backend).connections
    assert isinstance(connection, AsyncioHTTPConnection)
    http11 = connection._connection
    assert isinstance(http11, AsyncHTTP11Connection)
    states: list[object] = []
    asyncio.get_running_loop().call_soon(lambda: states.append(http11._h11_state.our_state))

    stream = backend.stream(user_says("[[words=3]] again"), GenerationParams())
    first = await anext(stream)
    await stream.aclose()

    assert first.text
    assert states == [h11.DONE]  # the whole request was written before the loop's next turn
    assert fake.connections == 1


async def test_the_connection_lock_excludes_and_is_taken_at_once_when_free():
    lock = PromptLock()
    turns: list[str] = []
    asyncio.get_running_loop().call_soon(turns.append, "turn")

    async def second() -> None:
        async with lock:
            turns.append("second")

    async with lock:
        assert turns == []  # taken without yielding to the loop
        waiter = asyncio.create_task(second())
        await asyncio.sleep(0.01)
        assert turns == ["turn"]  # the second holder waits for the first
    await asyncio.wait_for(waiter, 1)
    assert turns == ["turn", "second"]

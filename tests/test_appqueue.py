"""The queue between a daphne connection and its application: first in, first out, nothing lost
to a cancelled receive, and an idle connection's queue a fraction of `asyncio.Queue`'s size."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

from companion.appqueue import ApplicationQueue, Server


async def test_messages_come_out_in_the_order_they_went_in():
    queue = ApplicationQueue()
    for n in range(5):
        queue.put_nowait({"n": n})

    assert [(await queue.get())["n"] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_a_waiting_receive_gets_the_next_message_and_later_ones_queue_behind_it():
    queue = ApplicationQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)

    queue.put_nowait("first")
    queue.put_nowait("second")

    assert await waiting == "first"
    assert await queue.get() == "second"


async def test_two_waiting_receives_are_served_in_turn():
    queue = ApplicationQueue()
    one, two = asyncio.create_task(queue.get()), asyncio.create_task(queue.get())
    await asyncio.sleep(0)

    queue.put_nowait("a")
    queue.put_nowait("b")

    assert (await one, await two) == ("a", "b")


async def test_a_receive_cancelled_as_it_was_handed_a_message_puts_it_back_first():
    queue = ApplicationQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)

    queue.put_nowait("handed over")  # the receive has it, but has not run since
    queue.put_nowait("next")
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)

    assert waiting.cancelled()
    assert await queue.get() == "handed over"
    assert await queue.get() == "next"


async def test_a_cancelled_receive_leaves_the_next_message_to_the_next_receive():
    queue = ApplicationQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)

    queue.put_nowait("kept")

    assert await asyncio.wait_for(queue.get(), 1) == "kept"


async def test_an_empty_queue_is_true_as_daphne_tests_it():
    # daphne's HTTP protocol asks `if self.application_queue:` to mean "the app was made".
    assert ApplicationQueue()


async def waiting_queues(make: Any, count: int) -> int:
    """Bytes held by `count` queues, each with a receive waiting on it (an idle socket)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        queues = [make() for _ in range(count)]
        tasks = [asyncio.create_task(queue.get()) for queue in queues]
        await asyncio.sleep(0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return held


async def test_an_idle_connections_queue_is_a_fraction_of_asyncios():
    light = await waiting_queues(ApplicationQueue, 200)
    standard = await waiting_queues(asyncio.Queue, 200)

    # Both with the waiting task and its future; asyncio's adds four deques (~3 KiB).
    assert standard - light > 200 * 2500, (light, standard)


class Protocol:
    """Stands for a daphne protocol: the server only keys its connections by it."""


async def test_the_server_gives_each_application_its_own_queue():
    received: list[Any] = []

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append((scope["type"], await receive()))

    server = Server(application=application, endpoints=["tcp:port=0:interface=lo"])
    server.connections = {}
    first, second = Protocol(), Protocol()
    queues = []
    for protocol in (first, second):
        server.connections[protocol] = {"connected": 0.0}
        queue = server.create_application(protocol, {"type": "websocket"})
        assert isinstance(queue, ApplicationQueue)
        queues.append(queue)
    queues[1].put_nowait({"type": "websocket.connect", "to": "second"})
    queues[0].put_nowait({"type": "websocket.connect", "to": "first"})
    await asyncio.gather(*(server.connections[p]["application_instance"] for p in (first, second)))

    assert sorted(message["to"] for _, message in received) == ["first", "second"]

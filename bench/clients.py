"""Load clients: app streams over the websocket protocol, and floor streams read straight from
the fake upstream. Both record when each piece of the reply arrives."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.typing import Origin


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """This process's garbage collector held off while streams are timed, and run before.

    The load clients keep every stream's timings; a full pass over them found nothing to free
    and took 40–70 ms, a pause that every stream in flight, the app's and the floor's alike,
    counted as delivery lag. Run before each timed phase instead, it delays nothing timed."""
    # A phase inside another leaves the collector as the outer one wants it: off, with no pass
    # that would pause the outer phase's streams.
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.collect()
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class StreamResult:
    ttfd: float | None = None  # seconds from request to first text
    # Seconds from starting to connect to the first text: for a socket's first reply, what its
    # page waits from opening the socket, setting it up included.
    from_connect: float | None = None
    lags: list[float] = field(default_factory=list)  # per word: arrival - its due time
    frames: int = 0
    words: int = 0
    error: str = ""


class _Timeline:
    """Turns arrivals of numbered words into delivery lags against the upstream's pacing."""

    def __init__(
        self, started: float, tps: float, result: StreamResult, connecting: float | None = None
    ) -> None:
        self.started = started
        self.connecting = connecting
        self.tps = tps
        self.result = result
        self.first_at = 0.0
        self.first_words = 0

    def arrived(self, text: str) -> None:
        now = time.perf_counter()
        count = text.count("word")
        if count == 0:
            return
        result = self.result
        result.frames += 1
        before = result.words
        result.words += count
        if result.ttfd is None:
            result.ttfd = now - self.started
            if self.connecting is not None:
                result.from_connect = now - self.connecting
            self.first_at, self.first_words = now, result.words
            return
        # Every word counts, not only the last of a batch: a coalesced frame delivers its
        # earlier words later than the upstream produced them.
        for index in range(before + 1, result.words + 1):
            due = self.first_at + (index - self.first_words) / self.tps if self.tps else now
            result.lags.append(max(now - due, 0.0))


async def app_stream(
    ws_url: str, origin: str, cookie: str, *, words: int, tps: float, replies: int = 1
) -> list[StreamResult]:
    results = []
    headers = {"Cookie": cookie}
    connecting: float | None = time.perf_counter()
    async with websockets.connect(
        ws_url,
        origin=Origin(origin),
        additional_headers=headers,
        max_size=2**22,
    ) as ws:
        # As the chat page does after rendering the conversation: it has everything up to now.
        await ws.send(json.dumps({"type": "sync", "after_seq": 10**9}))
        json.loads(await ws.recv())
        for _ in range(replies):
            results.append(await reply_on(ws, words=words, tps=tps, connecting=connecting))
            connecting = None
    return results


async def reply_on(
    ws: websockets.ClientConnection, *, words: int, tps: float, connecting: float | None = None
) -> StreamResult:
    """Send a message on an open, synced socket and read its reply to the end."""
    result = StreamResult()
    timeline = _Timeline(time.perf_counter(), tps, result, connecting)
    frame = {"type": "message.send", "client_id": str(uuid.uuid4())}
    frame["text"] = f"[[words={words}]] go"
    await ws.send(json.dumps(frame))
    async for raw in ws:
        event = json.loads(raw)
        kind = event["type"]
        if kind == "reply.delta":
            timeline.arrived(event["text"])
        elif kind == "reply.completed":
            break
        elif kind in ("reply.failed", "error"):
            result.error = json.dumps(event)[:300]
            break
    return result


async def client_reply(
    port: int, client: dict[str, Any], *, words: int, tps: float
) -> StreamResult:
    """One reply on a new socket to the server on `port`, as `client` (a signed-in user and their
    conversation, from `bench.prepare`); a failure is the result's error, not raised."""
    base = f"127.0.0.1:{port}"
    url = f"ws://{base}/ws/conversations/{client['conversation']}/"
    try:
        results = await app_stream(url, f"http://{base}", client["cookie"], words=words, tps=tps)
    except Exception as exc:
        return StreamResult(error=repr(exc)[:300])
    return results[0]


async def floor_stream(host: str, port: int, *, words: int, tps: float) -> StreamResult:
    """The fake upstream read directly over a plain socket.

    No HTTP client library: the floor measures the upstream and the loopback, and an httpx
    client per stream cost the shared load core more than the upstream itself (at 300 streams the
    floor lagged by its own client's cost).
    """
    result = StreamResult()
    body = json.dumps(
        {
            "model": "M2-her",
            "stream": True,
            "messages": [{"role": "user", "content": f"[[words={words}]] go"}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    timeline = _Timeline(time.perf_counter(), tps, result)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        status = await reader.readline()
        if b" 200 " not in status:
            result.error = status.decode(errors="replace").strip()[:300]
            return result
        # The body is chunked; every event is one `data: {...}` line, whatever chunk holds it,
        # and the last chunk (size 0) ends it (the connection is kept alive).
        async for line in reader:
            if line.startswith(b"data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                timeline.arrived((choices[0].get("delta") or {}).get("content") or "")
            elif line == b"0\r\n" or line.startswith(b"data: [DONE]"):
                break
    finally:
        writer.close()
    return result


async def open_idle(url: str, origin: str, cookie: str) -> websockets.ClientConnection:
    """One synced, idle socket (the caller closes it)."""
    ws = await websockets.connect(url, origin=Origin(origin), additional_headers={"Cookie": cookie})
    await ws.send(json.dumps({"type": "sync", "after_seq": 10**9}))
    await ws.recv()
    return ws

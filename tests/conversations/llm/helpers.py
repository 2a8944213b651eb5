"""Shared helpers for driving backends in tests."""

import asyncio
import dataclasses
import json

import httpx

from conversations.llm.base import ChatMessage, Completion, GenerationParams, TextDelta
from conversations.llm.errors import LLMError
from conversations.llm.m2her import m2her_backend
from conversations.llm.pacing import Pace, paced
from conversations.llm.transport import ClientPool, HttpSettings

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "Mira keeps the lighthouse.", "name": "Mira"},
    {"role": "user_system", "content": "A traveller.", "name": "Sam"},
    {"role": "group", "content": "The lamp room.", "name": "Storm"},
    {"role": "sample_message_user", "content": "Is it loud?", "name": "Sam"},
    {"role": "sample_message_ai", "content": "Always.", "name": "Mira"},
    {"role": "assistant", "content": "Welcome up!", "name": "Mira"},
    {"role": "user", "content": "Hello there", "name": "Sam"},
]

FAST = HttpSettings(
    connect_timeout=2.0,
    first_byte_timeout=2.0,
    idle_timeout=1.0,
    max_retries=2,
    retry_after_cap=2.0,
    retry_base_delay=0.01,
)

NO_RETRY = dataclasses.replace(FAST, max_retries=0)
# A reply's last events, as one chunk: the finish reason, then `[DONE]`.
END = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'


def sse(*texts: str) -> list[bytes]:
    """One SSE event a text, each a delta of a chat-completions stream."""
    return [
        b"data: %s\n\n" % json.dumps({"choices": [{"delta": {"content": t}}]}).encode()
        for t in texts
    ]


def user_says(text, history=MESSAGES[:-1]) -> list[ChatMessage]:
    last: ChatMessage = {"role": "user", "content": text, "name": "Sam"}
    return [*history, last]


async def run_stream(backend, messages=MESSAGES, params=None):
    """Consume a stream: (texts of the deltas, the completion or None, the error or None)."""
    texts, completion, error = [], None, None
    try:
        async for event in backend.stream(messages, params or GenerationParams()):
            if isinstance(event, TextDelta):
                texts.append(event.text)
            else:
                assert isinstance(event, Completion)
                assert completion is None, "exactly one Completion"
                completion = event
    except LLMError as exc:
        error = exc
    return texts, completion, error


async def run_paced(backend, messages=MESSAGES, *, hold=0.05, after_delta=None):
    """`run_stream` by a reader with a pace (`conversations.llm.pacing`) that, after each delta,
    lets arriving text wait `hold` seconds for it, as the reply runner does between frames; or,
    given `after_delta`, awaits `after_delta(deltas so far, pace)` there instead."""
    loop = asyncio.get_running_loop()
    pace = Pace()
    texts, completion, error = [], None, None
    with paced(pace):
        try:
            async for event in backend.stream(messages, GenerationParams()):
                if not isinstance(event, TextDelta):
                    completion = event
                    continue
                texts.append(event.text)
                if after_delta is None:
                    pace.hold_until = pace.deliver_by = loop.time() + hold
                else:
                    await after_delta(len(texts), pace)
        except LLMError as exc:
            error = exc
    return texts, completion, error


async def disconnected(fake, timeout=5.0):
    """Whether the fake service's last request was disconnected by the client within `timeout`."""
    for _ in range(int(timeout / 0.05)):
        if fake.requests[-1].disconnected:
            return True
        await asyncio.sleep(0.05)
    return fake.requests[-1].disconnected


def recorded_backend(
    body,
    *,
    style="chat_completions",
    status=200,
    content_type="text/event-stream",
    headers=None,
    chunk_size=7,
    http=FAST,
):
    """A backend whose HTTP exchanges replay `body`, split into small chunks."""
    seen = []

    async def pieces():
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]

    def handler(request):
        seen.append(request)
        return httpx.Response(
            status, headers={"content-type": content_type, **(headers or {})}, content=pieces()
        )

    backend = m2her_backend(
        base_url="https://api.example.test",
        api_key="sk-test",
        api_style=style,
        http=http,
        clients=ClientPool(http, transport=httpx.MockTransport(handler)),
    )
    return backend, seen


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body (`b""` is the last one)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def scripted_server(parts, *, linger=0.0, accepted=None, heads=None):
    """A loopback HTTP server answering each request with `parts` — (pause, raw bytes) pairs,
    each written after its pause — then staying open `linger` seconds before closing.
    Each connection it accepts is appended to `accepted` (a list) if given, and each request's
    head (its request line and headers, as bytes) to `heads`. Returns the server and its port."""

    async def handler(reader, writer):
        if accepted is not None:
            accepted.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        if heads is not None:
            heads.append(head)
        for pause, data in parts:
            await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()
        await asyncio.sleep(linger)
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]

"""The HTTP side of the remote backends: one pooled client per event loop, silence deadlines,
and reading a response into reply events.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from dataclasses import dataclass
from typing import Any

import httpx

from conversations.llm.base import Completion, StreamEvent, TextDelta
from conversations.llm.classify import http_error, parse_retry_after, sensitivity_error
from conversations.llm.decoders import Decoder
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.sse import SSEParser
from conversations.llm.think import ThinkStripper

ERROR_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout: float = 10.0
    first_byte_timeout: float = 60.0
    idle_timeout: float = 30.0
    max_retries: int = 2
    retry_after_cap: float = 20.0
    retry_base_delay: float = 0.5
    max_connections: int = 500


class ClientPool:
    """One `httpx.AsyncClient` per running event loop (a client cannot cross loops)."""

    def __init__(
        self, settings: HttpSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        # Tests replay recorded streams through `httpx.MockTransport` here.
        self._transport = transport
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            s = self._settings
            # The watchdog enforces first-byte and idle limits; httpx's read timeout is a backstop.
            backstop = 2 * max(s.first_byte_timeout, s.idle_timeout)
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=s.connect_timeout, read=backstop, write=backstop, pool=backstop
                ),
                limits=httpx.Limits(
                    max_connections=s.max_connections,
                    max_keepalive_connections=min(s.max_connections, 100),
                    keepalive_expiry=30.0,
                ),
                follow_redirects=False,
                transport=self._transport,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the current loop's client."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


class Watchdog:
    """Cancels the reading task when the upstream stays silent too long.

    The first wait (connect, headers, first chunk) may last `first_byte`; later waits `idle`.
    Only time spent waiting on the network counts: a slow consumer never trips it. One timer
    per stream is re-armed lazily, so each chunk costs two attribute writes, not a timer.
    """

    __slots__ = ("_handle", "_idle", "_limit", "_loop", "_since", "_task", "fired")

    def __init__(self, first_byte: float, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._limit = first_byte
        self._idle = idle
        self._since: float | None = None
        self.fired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_at(
            self._loop.time() + first_byte, self._check
        )

    def waiting(self) -> None:
        self._since = self._loop.time()

    def received(self) -> None:
        self._since = None
        if self._limit != self._idle:
            # The first chunk is in: from now on the (usually shorter) idle limit applies.
            self._limit = self._idle
            if self._handle is not None:
                self._handle.cancel()
                self._handle = self._loop.call_at(self._loop.time() + self._idle, self._check)

    def timed_out(self) -> bool:
        """After a CancelledError: True when this watchdog caused it (and nobody else did)."""
        return self.fired and self._task is not None and self._task.uncancel() == 0

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is None:
            self._handle = self._loop.call_at(now + self._limit, self._check)
        elif now - since >= self._limit:
            self._handle = None
            self.fired = True
            if self._task is not None:
                self._task.cancel()
        else:
            self._handle = self._loop.call_at(since + self._limit, self._check)


def transport_error(exc: httpx.HTTPError, *, started: bool) -> LLMError:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return LLMError(ErrorCode.TIMEOUT, detail=detail)
    if isinstance(exc, httpx.UnsupportedProtocol):
        return LLMError(ErrorCode.BAD_REQUEST, detail=detail)
    if started:
        return LLMError(ErrorCode.TRUNCATED, detail=detail)
    return LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail=detail)


class StreamSession:
    """One HTTP exchange read into reply events; `open` reads up to the first event."""

    __slots__ = (
        "_chunks",
        "_decoder",
        "_parser",
        "_parts",
        "_response",
        "_think",
        "_watchdog",
        "finished",
    )

    def __init__(self, response: httpx.Response, decoder: Decoder, watchdog: Watchdog) -> None:
        self._response = response
        self._decoder = decoder
        self._watchdog = watchdog
        self._parser = SSEParser()
        self._think = ThinkStripper()
        self._parts: list[str] = []
        self._chunks = response.aiter_bytes().__aiter__()
        self.finished = False

    @classmethod
    async def open(
        cls,
        client: httpx.AsyncClient,
        request: httpx.Request,
        decoder: Decoder,
        settings: HttpSettings,
    ) -> tuple[StreamSession, list[StreamEvent]]:
        watchdog = Watchdog(settings.first_byte_timeout, settings.idle_timeout)
        watchdog.waiting()
        try:
            response = await client.send(request, stream=True)
        except asyncio.CancelledError:
            watchdog.stop()
            if watchdog.timed_out():
                raise LLMError(ErrorCode.TIMEOUT, detail="no response in time") from None
            raise
        except httpx.HTTPError as exc:
            watchdog.stop()
            raise transport_error(exc, started=False) from None
        session = cls(response, decoder, watchdog)
        try:
            if response.status_code >= 300:
                body = await session._read_body(ERROR_BODY_LIMIT)
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                raise http_error(response.status_code, body, retry_after=retry_after)
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                try:
                    events = await session._whole_body()
                except LLMError as exc:
                    # Native-style failures arrive as HTTP 200; a Retry-After still counts.
                    if exc.retry_after is None:
                        exc.retry_after = parse_retry_after(response.headers.get("retry-after"))
                    raise
            else:
                events = await session.next_events()
        except BaseException:
            await session.aclose()
            raise
        return session, events

    async def next_events(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        decoder = self._decoder
        while not out:
            chunk = await self._read()
            if chunk is None:
                return self._complete()
            for event, data in self._parser.feed(chunk):
                text = decoder.feed(event, data)
                if text:
                    text = self._think.feed(text)
                    if text:
                        self._parts.append(text)
                        out.append(TextDelta(text))
                if decoder.done:
                    out.extend(self._complete())
                    return out
        return out

    async def aclose(self) -> None:
        self._watchdog.stop()
        await self._response.aclose()

    async def _read(self) -> bytes | None:
        watchdog = self._watchdog
        watchdog.waiting()
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if watchdog.timed_out():
                if self._decoder.finish_reason is not None:
                    return None  # the reply was over; the server just never closed
                raise LLMError(ErrorCode.TIMEOUT, detail="the stream went silent") from None
            raise
        except httpx.HTTPError as exc:
            if self._decoder.finish_reason is not None:
                return None
            raise transport_error(exc, started=True) from None
        watchdog.received()
        return chunk

    async def _read_body(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await self._read()
            if chunk is None:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)[:limit]

    async def _whole_body(self) -> list[StreamEvent]:
        raw = await self._read_body(JSON_BODY_LIMIT)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            raise LLMError(
                ErrorCode.UPSTREAM_UNAVAILABLE, detail="response body is not JSON"
            ) from None
        self._decoder.feed_body(body)
        return self._complete()

    def _complete(self) -> list[StreamEvent]:
        self.finished = True
        self._watchdog.stop()
        decoder = self._decoder
        events: list[StreamEvent] = []
        tail = self._think.flush()
        if tail:
            self._parts.append(tail)
            events.append(TextDelta(tail))
        if not self._parts and decoder.final_text:
            # Nothing was streamed: the whole message is the reply (never appended twice).
            stripper = ThinkStripper()
            text = stripper.feed(decoder.final_text) + stripper.flush()
            if text:
                self._parts.append(text)
                events.append(TextDelta(text))
        if decoder.finish_reason is None and not decoder.done:
            raise LLMError(ErrorCode.TRUNCATED, detail="the stream ended without a finish reason")
        text = "".join(self._parts)
        flags = decoder.sensitivity
        if not text and (flags.input_flagged or flags.output_flagged):
            raise sensitivity_error(
                flags.input_type, flags.output_type, flagged_input=flags.input_flagged
            )
        events.append(
            Completion(
                text=text,
                finish_reason=decoder.finish_reason or "stop",
                usage=decoder.usage,
                sensitivity=flags,
                model=decoder.model,
            )
        )
        return events

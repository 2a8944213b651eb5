"""One HTTP exchange with a model service, read into reply events."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx

from conversations.llm.base import Completion, StreamEvent, TextDelta
from conversations.llm.body import chunk_reader, direct_body
from conversations.llm.classify import http_error, parse_retry_after, sensitivity_error
from conversations.llm.decoders import Decoder
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.pacing import Pace, current_pace
from conversations.llm.sse import SSEError, SSEParser
from conversations.llm.think import ThinkStripper
from conversations.llm.transport import HttpSettings, Watchdog, transport_error

ERROR_BODY_LIMIT = 64 * 1024
JSON_BODY_LIMIT = 8 * 1024 * 1024
# After the last event, how long and how much of the body's end is read so that the connection
# can be reused. A service sends its end at once; one that dawdles only costs this much.
DRAIN_SECONDS = 0.1
DRAIN_LIMIT = 64 * 1024
_CLOSED_STREAM = httpx.ByteStream(b"")
# What a decoder meets in JSON of an unexpected shape (`choices` that is not a list of objects,
# a flag type that is not a number): the service's fault, reported as such, never a crash.
MALFORMED = (AttributeError, TypeError, ValueError, KeyError, IndexError)

log = logging.getLogger(__name__)


class StreamSession:
    """One HTTP exchange read into reply events; `open` reads up to the first event.

    Read by a task with a `Pace` (`conversations.llm.pacing`), a body coming as plain chunks
    over one of `ClientPool`'s connections is parsed in the connection's callback as it arrives
    ("pushed"): the task wakes once per batch the pace asks for, not once per token, which was
    the largest share of the server's CPU per token that was not the parsing itself.
    """

    __slots__ = (
        "_decoder",
        "_direct",
        "_ended",
        "_loop",
        "_next_chunk",
        "_over",
        "_pace",
        "_parser",
        "_parts",
        "_push_error",
        "_pushed",
        "_pushing",
        "_response",
        "_think",
        "_unframed",
        "_waiter",
        "_wake_timer",
        "_watchdog",
    )

    def __init__(self, response: httpx.Response, decoder: Decoder, watchdog: Watchdog) -> None:
        self._response = response
        self._decoder = decoder
        self._watchdog = watchdog
        self._parser = SSEParser()
        self._think = ThinkStripper()
        self._parts: list[str] = []
        self._direct = direct_body(response)
        self._next_chunk = chunk_reader(response, self._direct)
        self._ended = False  # no more to read: the body ended, broke, or went silent
        self._over = False  # the stream's last event is in: its `Completion` is made
        # Kept until the first SSE event: a body that never had one may be a mislabelled
        # JSON error (or reply) and is decoded as such at the end.
        self._unframed: bytearray | None = bytearray()
        self._loop = asyncio.get_running_loop()
        self._pace: Pace | None = current_pace()
        self._pushing = False  # the connection hands its bytes to `data`
        self._pushed: list[StreamEvent] = []  # parsed there, for the reader to take
        self._push_error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake_timer: asyncio.TimerHandle | None = None

    @property
    def finished(self) -> bool:
        """The reader has been handed the `Completion`: there is nothing more to ask for. (Made
        in the connection's callback, it may still wait to be taken, or a failure after it.)"""
        return self._over and not self._pushed and self._push_error is None

    @classmethod
    async def open(
        cls,
        client: httpx.AsyncClient,
        request: httpx.Request,
        decoder: Decoder,
        settings: HttpSettings,
    ) -> tuple[StreamSession, list[StreamEvent]]:
        watchdog = Watchdog(
            settings.first_byte_timeout, settings.idle_timeout, settings.reply_timeout
        )
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
            try:
                if content_type.startswith("application/json"):
                    events = await session._whole_body()
                else:
                    events = await session.next_events()
            except LLMError as exc:
                # Native-style failures arrive as HTTP 200 (as JSON, or mislabelled as a
                # stream); a Retry-After still counts.
                if exc.retry_after is None:
                    exc.retry_after = parse_retry_after(response.headers.get("retry-after"))
                raise
        except BaseException:
            await session.aclose()
            raise
        return session, events

    async def next_events(self) -> list[StreamEvent]:
        if not (self._pushing or self._ended or self._over) and self._pace and self._direct:
            self._pushing = self._direct.attach_sink(self)
        while self._pushing and not self._pushed and self._push_error is None:
            await self._wait_pushed()  # until the callback hands over text, a failure or the end
        if self._pushed or self._push_error is not None:
            return self._take_pushed()
        out: list[StreamEvent] = []
        while not out:
            chunk = await self._read()
            if chunk is None:
                if self._unframed:
                    return self._unframed_body(bytes(self._unframed))
                return self._complete()
            out = self._parse(chunk)
        return out

    def _parse(self, chunk: bytes) -> list[StreamEvent]:
        """The events `chunk` completes; at the stream's end, its completion too."""
        try:
            events = self._parser.feed(chunk)
        except SSEError as exc:
            raise _malformed(exc) from None
        if self._unframed is not None:
            self._unframed += chunk
            if events or len(self._unframed) > ERROR_BODY_LIMIT:
                self._unframed = None
        out: list[StreamEvent] = []
        decoder = self._decoder
        for event, data in events:
            try:
                text = decoder.feed(event, data)
            except MALFORMED as exc:
                raise _malformed(exc) from None
            if text:
                text = self._think.feed(text)
                if text:
                    self._parts.append(text)
                    out.append(TextDelta(text))
            if decoder.done:
                out.extend(self._complete())
                break
        return out

    # The connection's sink while pushing (`netbackend.Sink`), called in its callback.

    def data(self, data: bytes) -> bool:
        direct = self._direct
        if direct is None or not self._pushing:
            return False  # not expected: nothing takes bytes once pushing has stopped
        chunks, plain = direct.take_plain(data)
        self._watchdog.received()
        try:
            for chunk in chunks:
                self._pushed += self._parse(chunk)
                if self._over:
                    plain = False  # the rest of the body (its end) is read as it always is
                    break
        except Exception as exc:
            # Raised to the reader, as the same bytes read by it would have raised it there.
            self._push_error = exc
            plain = False
        if not plain:
            self._pushing = False
            self._wake()
            return False
        pace = self._pace
        if self._pushed and pace is not None:
            if self._loop.time() >= pace.hold_until:
                self._wake()
            elif self._wake_timer is None:
                self._wake_timer = self._loop.call_at(pace.deliver_by, self._wake)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            # Still waiting: a silence counts from these bytes on. A reader woken for them is
            # not waiting on the network until it asks again, however long it is busy.
            self._watchdog.waiting()
        return True

    def ended(self) -> None:
        # Whatever ended the connection is found by reading on, as without pushing.
        self._pushing = False
        self._wake()

    def _wake(self) -> None:
        self._cancel_wake_timer()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_pushed(self) -> None:
        """Wait for the callback to wake this reader. When the upstream stays silent too long,
        what it parsed before is still handed over, and the silence's outcome after it."""
        watchdog = self._watchdog
        watchdog.waiting()
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        except asyncio.CancelledError:
            if not watchdog.timed_out():
                raise
            self._stop_pushing()
            self._ended = True
            if self._decoder.finish_reason is None:
                self._push_error = self._silence_error()
            else:
                # The reply was over; the server just never closed.
                try:
                    self._pushed += self._complete()
                except LLMError as exc:
                    self._push_error = exc
        finally:
            self._waiter = None

    def _take_pushed(self) -> list[StreamEvent]:
        """What the callback parsed since the reader last took it, its texts as one delta (the
        reader coalesces them anyway); a failure after them is raised on the next call."""
        self._cancel_wake_timer()
        events, self._pushed = self._pushed, []
        if not events:
            error, self._push_error = self._push_error, None
            if error is None:
                return []
            self._ended = True
            raise error
        texts = [e.text for e in events if isinstance(e, TextDelta)]
        if len(texts) < 2:
            return events
        rest = [e for e in events if not isinstance(e, TextDelta)]
        return [TextDelta("".join(texts)), *rest]

    def _stop_pushing(self) -> None:
        if self._direct is not None:
            self._direct.detach_sink(self)
        self._pushing = False
        self._cancel_wake_timer()

    def _cancel_wake_timer(self) -> None:
        if self._wake_timer is not None:
            self._wake_timer.cancel()
            self._wake_timer = None

    async def aclose(self) -> None:
        self._stop_pushing()
        self._watchdog.stop()
        drain = self._over and not self._ended
        self._ended = True  # closed: a second call has nothing left to read
        try:
            if drain:
                await self._drain()
        finally:
            await self._response.aclose()
            # httpx binds a response and its stream to each other; closed, the stream is done
            # with, and without the cycle the reply's objects go at once rather than in the
            # garbage collector's next full pass (a pause of every stream at once).
            self._response.stream = _CLOSED_STREAM

    async def _drain(self) -> None:
        """Read the rest of a finished reply's body (usually just the chunked body's last
        chunk, after `[DONE]`). A response closed before its end closes its connection, and the
        next reply would pay for a new one (a TLS handshake with a real service)."""
        size = 0
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while (chunk := await self._next_chunk()) is not None:
                    size += len(chunk)
                    if size > DRAIN_LIMIT:
                        return
        except (TimeoutError, httpx.HTTPError):
            return  # the connection is closed with the response instead

    async def _read(self) -> bytes | None:
        watchdog = self._watchdog
        watchdog.waiting()
        try:
            chunk = await self._next_chunk()
        except asyncio.CancelledError:
            if watchdog.timed_out():
                if self._decoder.finish_reason is not None:
                    self._ended = True
                    return None  # the reply was over; the server just never closed
                raise self._silence_error() from None
            raise
        except httpx.HTTPError as exc:
            self._ended = True
            if self._decoder.finish_reason is not None:
                return None
            raise transport_error(exc, started=True) from None
        if chunk is None:
            self._ended = True
            return None
        watchdog.received()
        return chunk

    def _silence_error(self) -> LLMError:
        detail = (
            "the reply went on too long" if self._watchdog.overran else "the stream went silent"
        )
        return LLMError(ErrorCode.TIMEOUT, detail=detail)

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
        return self._decoded_body(body)

    def _unframed_body(self, raw: bytes) -> list[StreamEvent]:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            return self._complete()
        return self._decoded_body(body)

    def _decoded_body(self, body: Any) -> list[StreamEvent]:
        try:
            self._decoder.feed_body(body)
        except MALFORMED as exc:
            raise _malformed(exc) from None
        return self._complete()

    def _complete(self) -> list[StreamEvent]:
        self._over = True
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


def _malformed(exc: Exception) -> LLMError:
    # The traceback is kept in the log: a shape this project should understand shows up there.
    log.warning("the model service sent a malformed response", exc_info=exc)
    return LLMError(
        ErrorCode.UPSTREAM_UNAVAILABLE, detail=f"malformed response: {type(exc).__name__}: {exc}"
    )

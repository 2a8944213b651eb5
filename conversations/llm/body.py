"""Reading a streamed response body with one layer instead of five.

Through httpx, each chunk of a body passes four nested async generators (httpx's two streams,
httpcore's pool stream and connection stream) and two exception-mapping context managers before
h11 parses it. A model stream is one small chunk per token, and on the benchmark those layers
were about half of the CPU spent reading a token. For HTTP/1.1 connections of httpcore's pool
(every connection `ClientPool` makes), `H11Body` drives the connection's own h11 parser and
network stream directly, so the connection state stays exactly as httpcore's reader would leave
it and `Response.aclose()` returns the connection to the pool as usual. Any other response (a
test transport, a different httpx) is read through `aiter_raw` as before.

A chunked body's plain chunks (a hex size, CRLF, the data, CRLF) are then split off the network
reads by `_plain_chunk`, not by h11: h11 spends two calls through its generic state machine on
each chunk (one for the data, one that finds the next chunk not yet there), about a quarter of
the server's CPU per streamed token. h11 keeps the rest of the body. It parses everything up to
the first chunk that ends a network read, and every byte from the first one `_plain_chunk` does
not take (the last chunk and its trailer, a chunk extension, anything malformed, the end of the
connection), so it still decides the body's end, its errors and whether the connection can be
reused.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h11
import httpcore
import httpx
from httpcore._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream

from conversations.llm.netbackend import AsyncioStream, Sink

ChunkReader = Callable[[], Awaitable[bytes | None]]

# What `_plain_chunk` takes: a size of 1 to 8 hex digits, nothing else on its line. Anything
# else (extensions, padding, larger sizes, the last chunk) is h11's to parse or refuse.
_PLAIN_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")
_MAX_SIZE_LINE = 10  # 8 digits and CRLF
# A chunk up to this size is held until it is whole; a larger one streams through h11 in pieces.
_MAX_PLAIN_CHUNK = 64 * 1024


class _NotPlain(Exception):
    """The bytes ahead are not a plain chunk: h11 takes them."""


def _plain_chunk(buf: bytes) -> tuple[bytes, int] | None:
    """The data of the chunk `buf` starts with and where that chunk ends in `buf`; None when
    `buf` does not hold all of it yet. Raises `_NotPlain` for anything but a plain chunk."""
    line_end = buf.find(b"\r\n", 0, _MAX_SIZE_LINE)
    if line_end < 0:
        if len(buf) >= _MAX_SIZE_LINE or b"\n" in buf:
            raise _NotPlain
        return None
    size_field = buf[:line_end]
    if _PLAIN_SIZE.fullmatch(size_field) is None:
        raise _NotPlain
    size = int(size_field, 16)
    if size == 0 or size > _MAX_PLAIN_CHUNK:
        raise _NotPlain
    start = line_end + 2
    end = start + size
    if len(buf) < end + 2:
        return None
    if buf[end : end + 2] != b"\r\n":
        raise _NotPlain
    return buf[start:end], end + 2


class H11Body:
    """The body of a response from an HTTP/1.1 connection of httpcore's pool."""

    __slots__ = ("_h11", "_network", "_plain", "_tail", "_timeout")

    def __init__(self, connection: AsyncHTTP11Connection, request: httpcore.Request) -> None:
        self._h11 = connection._h11_state
        self._network = connection._network_stream
        self._timeout = request.extensions.get("timeout", {}).get("read")
        # Whether chunks are split here: h11 has taken a whole chunk and holds nothing more,
        # so the bytes ahead open with the next chunk's size line.
        self._plain = False
        self._tail = b""  # bytes read but not yet split into a chunk

    @classmethod
    def attach(cls, response: httpx.Response) -> H11Body | None:
        """The direct reader for `response`, or None when it did not come that way."""
        stream: Any = response.stream
        for name in ("_stream", "_httpcore_stream", "_stream"):
            stream = getattr(stream, name, None)
        if not isinstance(stream, HTTP11ConnectionByteStream):
            return None
        connection = getattr(stream, "_connection", None)
        request = getattr(stream, "_request", None)
        if not isinstance(connection, AsyncHTTP11Connection) or request is None:
            return None
        return cls(connection, request)

    async def read(self) -> bytes | None:
        """The next piece of the body; None at its end. Errors are httpx's, as through httpx."""
        if self._plain:
            data = await self._read_plain()
            if data is not None:
                return data
        return await self._read_h11()

    def attach_sink(self, sink: Sink) -> bool:
        """Have the connection hand its bytes to `sink` as they arrive (see `take_plain`);
        False when they cannot come that way now."""
        if not self._plain or self._tail or not isinstance(self._network, AsyncioStream):
            return False
        return self._network.attach_sink(sink)

    def detach_sink(self, sink: Sink) -> None:
        if isinstance(self._network, AsyncioStream):
            self._network.detach_sink(sink)

    def take_plain(self, data: bytes) -> tuple[list[bytes], bool]:
        """The data of the plain chunks `data` completes, and whether the bytes ahead may
        still be plain ones. What is not taken (a chunk's start, or the first bytes that are not
        a plain chunk) is kept, and `read` goes on from there."""
        buf = self._tail + data if self._tail else data
        chunks: list[bytes] = []
        while buf:
            try:
                found = _plain_chunk(buf)
            except _NotPlain:
                self._tail = buf
                return chunks, False
            if found is None:
                break
            chunk, end = found
            chunks.append(chunk)
            buf = buf[end:]
        self._tail = buf
        return chunks, True

    async def _read_plain(self) -> bytes | None:
        """The next plain chunk's data; None once the bytes ahead are handed to h11."""
        buf = self._tail
        closed = False
        while True:
            if buf:  # usually empty: the last read ended with the chunk it held
                try:
                    found = _plain_chunk(buf)
                except _NotPlain:
                    break
                if found is not None:
                    data, end = found
                    self._tail = buf[end:]
                    return data
            # Kept while waiting: a read that times out or is cancelled loses nothing.
            self._tail = buf
            more = await self._receive()
            if not more:
                closed = True  # h11 says how the body ended
                break
            buf = buf + more if buf else more
        self._plain = False
        self._tail = b""
        if buf:
            self._feed(buf)
        if closed:
            self._feed(b"")
        return None

    async def _read_h11(self) -> bytes | None:
        state = self._h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                self._feed(await self._receive())
            elif type(event) is h11.Data:
                # A whole chunk that ended its network read: once h11 has taken its CRLF, the
                # next bytes from the network open the next chunk, and are split here.
                if event.chunk_end and state.trailing_data == (b"\r\n", False):
                    self._plain = state.next_event() is h11.NEED_DATA
                return bytes(event.data)
            elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                return None

    async def _receive(self) -> bytes:
        try:
            return await self._network.read(
                AsyncHTTP11Connection.READ_NUM_BYTES, timeout=self._timeout
            )
        except httpcore.TimeoutException as exc:
            raise httpx.ReadTimeout(str(exc)) from None
        except httpcore.NetworkError as exc:
            raise httpx.ReadError(str(exc)) from None

    def _feed(self, data: bytes) -> None:
        try:
            self._h11.receive_data(data)
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from None


def direct_body(response: httpx.Response) -> H11Body | None:
    """The direct reader of the response's body, when it has one."""
    # A compressed body needs httpx's decoders.
    return None if "content-encoding" in response.headers else H11Body.attach(response)


def body_reader(response: httpx.Response) -> ChunkReader:
    """A function returning the response body's next raw chunk, or None at its end."""
    return chunk_reader(response, direct_body(response))


def chunk_reader(response: httpx.Response, direct: H11Body | None) -> ChunkReader:
    """`body_reader` for a caller that already has `direct_body(response)`."""
    return direct.read if direct is not None else httpx_reader(response)


def httpx_reader(response: httpx.Response) -> ChunkReader:
    """`body_reader` for a response without a direct reader: through httpx's streams (and its
    decoders, for a compressed body)."""
    encoded = "content-encoding" in response.headers
    chunks: AsyncIterator[bytes] = (
        response.aiter_bytes() if encoded else response.aiter_raw()
    ).__aiter__()

    async def read() -> bytes | None:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return None

    return read

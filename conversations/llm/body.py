"""Reading a streamed response body with one layer instead of five.

Through httpx, each chunk of a body passes four nested async generators (httpx's two streams,
httpcore's pool stream and connection stream) and two exception-mapping context managers before
h11 parses it. A model stream is one small chunk per token, and on the benchmark those layers
were about half of the CPU spent reading a token. For HTTP/1.1 connections of httpcore's pool
(every connection `ClientPool` makes), `H11Body` drives the connection's own h11 parser and
network stream directly, so the connection state stays exactly as httpcore's reader would leave
it and `Response.aclose()` returns the connection to the pool as usual. Any other response (a
test transport, a different httpx) is read through `aiter_raw` as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h11
import httpcore
import httpx
from httpcore._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream

ChunkReader = Callable[[], Awaitable[bytes | None]]


class H11Body:
    """The body of a response from an HTTP/1.1 connection of httpcore's pool."""

    __slots__ = ("_h11", "_network", "_timeout")

    def __init__(self, connection: AsyncHTTP11Connection, request: httpcore.Request) -> None:
        self._h11 = connection._h11_state
        self._network = connection._network_stream
        self._timeout = request.extensions.get("timeout", {}).get("read")

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
        state = self._h11
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is h11.NEED_DATA:
                try:
                    data = await self._network.read(
                        AsyncHTTP11Connection.READ_NUM_BYTES, timeout=self._timeout
                    )
                except httpcore.TimeoutException as exc:
                    raise httpx.ReadTimeout(str(exc)) from None
                except httpcore.NetworkError as exc:
                    raise httpx.ReadError(str(exc)) from None
                try:
                    state.receive_data(data)
                except h11.RemoteProtocolError as exc:
                    raise httpx.RemoteProtocolError(str(exc)) from None
            elif type(event) is h11.Data:
                return bytes(event.data)
            elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                return None


def body_reader(response: httpx.Response) -> ChunkReader:
    """A function returning the response body's next raw chunk, or None at its end."""
    # A compressed body needs httpx's decoders; any other is read raw, directly when possible.
    encoded = "content-encoding" in response.headers
    direct = None if encoded else H11Body.attach(response)
    if direct is not None:
        return direct.read
    chunks: AsyncIterator[bytes] = (
        response.aiter_bytes() if encoded else response.aiter_raw()
    ).__aiter__()

    async def read() -> bytes | None:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return None

    return read

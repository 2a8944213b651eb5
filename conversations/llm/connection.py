"""httpcore's HTTP/1.1 connections, taking a free lock without a turn of the event loop.

httpcore locks a connection twice on a request's way out (the connection, in case it must
connect first, then its HTTP/1.1 state) and once more when the response closes, with anyio's
`Lock`. By default that lock, even when nobody holds it, yields to the event loop inside a
shielded cancel scope before it returns (~7 µs a lock here), so every model request waited two
extra turns of the loop before its bytes went out; on a busy server a turn is milliseconds, paid
by each reply's first word. anyio's `fast_acquire` takes a free lock at once (it still honours
anyio's cancel scopes); these connections lock with it.
"""

from __future__ import annotations

from typing import Any

import anyio
from httpcore import Request, Response
from httpcore._async.connection import AsyncHTTPConnection
from httpcore._async.http11 import AsyncHTTP11Connection
from httpcore._synchronization import AsyncLock


class PromptLock(AsyncLock):
    """httpcore's `AsyncLock` on asyncio, taken at once when free."""

    def setup(self) -> None:
        self._backend = "asyncio"
        self._anyio_lock = anyio.Lock(fast_acquire=True)


class AsyncioHTTP11Connection(AsyncHTTP11Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_lock = PromptLock()


class AsyncioHTTPConnection(AsyncHTTPConnection):
    """A connection to one origin over HTTP/1.1 (the pool using it never asks for HTTP/2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self._http2 or not self._http1:
            raise ValueError("AsyncioHTTPConnection speaks HTTP/1.1 only")
        self._request_lock = PromptLock()

    async def handle_async_request(self, request: Request) -> Response:
        # httpcore 1.0.9's, less its HTTP/2 branch, making the connection above.
        if not self.can_handle_request(request.url.origin):
            raise RuntimeError(
                f"Attempted to send request to {request.url.origin} on connection to {self._origin}"
            )
        try:
            async with self._request_lock:
                if self._connection is None:
                    stream = await self._connect(request)
                    self._connection = AsyncioHTTP11Connection(
                        origin=self._origin,
                        stream=stream,
                        keepalive_expiry=self._keepalive_expiry,
                    )
        except BaseException:
            self._connect_failed = True
            raise
        return await self._connection.handle_async_request(request)

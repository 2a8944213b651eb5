"""An asyncio-native network backend for httpcore (and so httpx).

httpcore's default asyncio path goes through anyio, whose socket stream pauses reading after
every chunk and resumes it on the next read: two epoll changes and a cancel scope per read. A
stream of tokens is one small read per token, and on the benchmark that was a quarter of the
server's CPU. This backend keeps a plain `asyncio.Protocol` reading continuously into a buffer,
or, while a `Sink` is attached, handing each read to it in the callback.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections.abc import Iterable
from typing import Any, Protocol, cast

import httpcore
import httpx

from conversations.llm.pool import LinearConnectionPool

HIGH_WATER = 256 * 1024  # pause reading above this much unread data
LOW_WATER = 64 * 1024


class Sink(Protocol):
    """Takes a connection's bytes as they arrive, in the event loop's callback, instead of a
    reader task waking for each (`AsyncioStream.attach_sink`)."""

    def data(self, data: bytes) -> bool:
        """Take `data`; False when it wants nothing after it (later bytes are buffered)."""

    def ended(self) -> None:
        """The connection ended (closed, or broke): what is left is for a reader to find."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.paused = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.writing_paused = False
        # One timer per connection for read deadlines, re-armed only when it fires early: a
        # timer per read (asyncio.timeout) was a measurable cost with a read per token.
        self.read_deadline = 0.0
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.sink: Sink | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is not None:
            if not sink.data(data):
                self.sink = None  # it has taken these bytes, and wants none after them
            return
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._end_sink()
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        self.eof = True
        self.error = exc
        self._end_sink()
        self._wake_reader()
        self.resume_writing()

    def _end_sink(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.ended()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        waiter, self.write_waiter = self.write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wait_for_data(self, timeout: float | None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        waiter = self.read_waiter = loop.create_future()
        if timeout is None:
            self.read_deadline = math.inf  # a timer armed by an earlier read finds nothing due
        else:
            self.read_deadline = loop.time() + timeout
            timer = self.deadline_timer
            if timer is None or timer.when() > self.read_deadline:
                if timer is not None:
                    timer.cancel()
                self.deadline_timer = loop.call_at(self.read_deadline, self._check_deadline)
        return waiter

    def _check_deadline(self) -> None:
        self.deadline_timer = None
        waiter = self.read_waiter
        if waiter is None or waiter.done():
            return  # nobody is waiting; the next read arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self.read_deadline:
            self.read_waiter = None
            waiter.set_exception(httpcore.ReadTimeout("timed out reading from the server"))
        elif self.read_deadline != math.inf:
            self.deadline_timer = loop.call_at(self.read_deadline, self._check_deadline)

    def _wake_reader(self) -> None:
        waiter, self.read_waiter = self.read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def attach_sink(self, sink: Sink) -> bool:
        """Hand bytes to `sink` as they arrive; False (and nothing changed) while bytes are
        buffered for a reader or the connection has ended: those are read first."""
        protocol = self._protocol
        if protocol.buffer or protocol.eof or protocol.read_waiter is not None:
            return False
        protocol.sink = sink
        return True

    def detach_sink(self, sink: Sink) -> None:
        if self._protocol.sink is sink:
            self._protocol.sink = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            await protocol.wait_for_data(timeout)
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            if protocol.paused and len(protocol.buffer) < LOW_WATER:
                protocol.paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error))
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        protocol = self._protocol
        if protocol.writing_paused:
            waiter = asyncio.get_running_loop().create_future()
            protocol.write_waiter = waiter
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out writing to the server") from None

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks before reusing a kept-alive connection: data or EOF means stale.
            return bool(self._protocol.buffer) or self._protocol.eof
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=local
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {path}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def asyncio_transport(
    *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections use `AsyncioBackend`."""
    # Made once and given to both: loading the certificate store takes ~20 ms, on the first reply.
    ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=ssl_context)
    # httpx builds its pool privately; this one differs in the network backend and the pool's
    # assignment pass (`LinearConnectionPool`).
    transport._pool = LinearConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=AsyncioBackend(),
    )
    return transport

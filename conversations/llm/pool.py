"""httpcore's connection pool with a linear assignment pass.

The pool re-plans after every request and every response it releases. httpcore 1.0.9 walks its
connections once per idle connection in that plan, and once more per queued request; a server
streaming hundreds of replies holds hundreds of upstream connections, so each plan grew with the
square of the load (encode/httpcore#1035). Its idle limit also counted every connection, idle or
not: beyond `max_keepalive_connections` open at once, each finished reply's connection was closed
and the next reply connected anew.

This pass keeps the plan's rules and order, in one walk: closed connections are dropped, expired
ones closed, the oldest idle ones closed beyond the keep-alive limit, and each queued request takes
the oldest idle connection to its origin, a new connection while under `max_connections`, or the
place of an idle one. A connection handed to a request that has not started on it yet stays
that request's: it is neither closed as surplus nor handed to a second request (which would only
fail over to the next pass). HTTP/1.1 only: a connection serves one request at a time.

Its connections are `AsyncioHTTPConnection`s (`conversations.llm.connection`), and a plan that
closes nothing returns at once: httpcore enters a shielded anyio cancel scope around closing
even no connection, twice a request.
"""

from __future__ import annotations

from typing import Any

import httpcore
from httpcore._async.connection_pool import AsyncPoolRequest
from httpcore._async.interfaces import AsyncConnectionInterface

from conversations.llm.connection import AsyncioHTTPConnection


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("http2"):
            raise ValueError("LinearConnectionPool serves HTTP/1.1 only")
        super().__init__(**kwargs)

    def create_connection(self, origin: httpcore.Origin) -> AsyncConnectionInterface:
        if self._proxy is not None:
            return super().create_connection(origin)
        return AsyncioHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=self._http1,
            http2=self._http2,
            retries=self._retries,
            local_address=self._local_address,
            uds=self._uds,
            network_backend=self._network_backend,
            socket_options=self._socket_options,
        )

    async def _close_connections(self, closing: list[AsyncConnectionInterface]) -> None:
        if closing:
            await super()._close_connections(closing)

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        queued: list[AsyncPoolRequest] = []
        reserved: set[AsyncConnectionInterface] = set()
        for pool_request in self._requests:
            if pool_request.connection is None:
                queued.append(pool_request)
            else:
                reserved.add(pool_request.connection)

        kept: list[AsyncConnectionInterface] = []
        idle: list[AsyncConnectionInterface] = []
        for connection in self._connections:
            # Most connections are serving a request, the rest idle: only the idle ones can have
            # closed or run out of keep-alive meanwhile, so only they are asked (a connection
            # that breaks mid-request leaves with its request).
            if connection in reserved:
                kept.append(connection)
            elif connection.is_closed():
                continue
            elif connection.has_expired():
                closing.append(connection)
            else:
                kept.append(connection)
                if connection.is_idle():
                    idle.append(connection)

        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            dropped = set(idle[:surplus])
            closing.extend(idle[:surplus])
            idle = idle[surplus:]
            kept = [connection for connection in kept if connection not in dropped]
        self._connections = kept

        # HTTP/1.1: an idle connection is an available one, for one request.
        for pool_request in queued:
            origin = pool_request.request.url.origin
            reusable = next((c for c in idle if c.can_handle_request(origin)), None)
            if reusable is not None:
                connection = reusable
                idle.remove(connection)
            elif len(self._connections) < self._max_connections:
                connection = self.create_connection(origin)
                self._connections.append(connection)
            elif idle:
                victim = idle.pop(0)
                self._connections.remove(victim)
                closing.append(victim)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            else:
                continue  # every connection is busy: it waits for one to be released
            pool_request.assign_to_connection(connection)
        return closing

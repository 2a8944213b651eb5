"""daphne's server, with a lighter queue between each connection and its application.

daphne gives every connection an `asyncio.Queue` for the ASGI messages its application will
`receive`: four deques (~3 KiB) for as long as the connection is open, though an open websocket
has a message waiting in it only for the moment between a frame's arrival and its consumer
taking it. `ApplicationQueue` holds no deque while nothing waits in it; an application waiting
to receive waits on a future, and the next message is handed to it directly.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

import daphne.cli
import daphne.server  # first: it installs Twisted's asyncio reactor

from companion.handoff import hand_over


class ApplicationQueue:
    """First in, first out, unbounded, as daphne uses its queue: `put_nowait` and `get`.

    It has no length: daphne tests a connection's queue for truth to mean "it was made".
    """

    __slots__ = ("_getters", "_messages")

    def __init__(self) -> None:
        self._messages: deque[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None

    def put_nowait(self, message: Any) -> None:
        if not self._messages and hand_over(self._getters, message):
            return
        if self._messages is None:
            self._messages = deque()
        self._messages.append(message)

    async def get(self) -> Any:
        messages = self._messages
        if messages:
            message = messages.popleft()
            if not messages:
                self._messages = None
            return message
        getter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._getters is None:
            self._getters = []
        self._getters.append(getter)
        try:
            return await getter
        except asyncio.CancelledError:
            if getter.done() and not getter.cancelled():
                # Handed a message just as it was cancelled: the message is not lost.
                self._put_back(getter.result())
            raise
        finally:
            getters = self._getters
            if getters is not None:
                if getter in getters:
                    getters.remove(getter)
                if not getters:
                    self._getters = None

    def _put_back(self, message: Any) -> None:
        """Return a message a cancelled getter was handed: first in line again."""
        if hand_over(self._getters, message):
            return
        if self._messages is None:
            self._messages = deque()
        self._messages.appendleft(message)


class Server(daphne.server.Server):  # type: ignore[misc]  # daphne is untyped
    def create_application(self, protocol: Any, scope: dict[str, Any]) -> ApplicationQueue | None:
        """daphne's own (daphne is pinned), with `ApplicationQueue` for `asyncio.Queue`."""
        if "application_instance" in self.connections[protocol]:
            raise RuntimeError(f"{protocol!r} already has an application")
        queue = ApplicationQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=queue.get,
            send=functools.partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return queue


def install() -> None:
    """Make daphne's command line run this server."""
    daphne.cli.CommandLineInterface.server_class = Server

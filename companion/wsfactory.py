"""daphne's websocket factory, with its protocol settings kept once for all its connections, and
connections that let go of the HTTP request they were upgraded from and are freed as soon as
they close.

autobahn copies a factory's 29 protocol settings onto each new connection object, unless the
connection's class already has them. With them, a connection object's attributes outgrow their
table: ~2 KiB more for every open socket, and 29 copies in every handshake. This factory gives
its connections a class of their own (a subclass of `WebSocketProtocol`) holding its settings,
updated whenever daphne sets them.
"""

from __future__ import annotations

from typing import Any

import daphne.server  # first: it installs Twisted's asyncio reactor
from daphne import ws_protocol
from twisted.internet import defer
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel


class WebSocketProtocol(ws_protocol.WebSocketProtocol):  # type: ignore[misc]  # daphne is untyped
    is_closed: defer.Deferred[Any]  # autobahn's, set when the connection is made

    def connectionMade(self) -> None:
        """daphne upgrades a connection by moving its transport from Twisted's HTTP channel to
        this protocol, but the channel stays registered as the transport's producer, and keeps
        its request (with the request's headers) alive as long as the socket: ~3.6 KiB an open
        socket. As a producer it does nothing more: while a request of its own is unfinished (an
        upgraded one never finishes) its `pauseProducing` and `resumeProducing` do nothing, and
        its `stopProducing` stops only a request's producer, which it has none of. So it is
        unregistered here. The channel and its request also hold each other (the channel keeps a
        request in its list until it finishes, which an upgraded one never does); taken off that
        list, both are freed as soon as daphne lets go of the request, rather than left to the
        garbage collector. The channel receives nothing more: the transport's protocol is this
        one now."""
        transport = self.transport
        producer = getattr(transport, "producer", None)
        if isinstance(producer, HTTPChannel):
            transport.unregisterProducer()
            producer.requests.clear()
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """autobahn resolves `is_closed` with the connection itself, so every closed socket is a
        reference cycle (the connection holds the Deferred, the Deferred the connection). The
        connection, its transport and autobahn's per-socket helpers then wait for the garbage
        collector's full pass, which walks all of them, for every socket closed since the last
        one: a pause of every stream at once, longer the more sockets came and went. Nothing
        in this server waits on `is_closed`; once it has fired it is replaced by one fired with
        nothing, and a closed connection is freed as soon as daphne lets go of it."""
        super().connectionLost(reason)
        if self.is_closed.called:
            self.is_closed = defer.succeed(None)


class WebSocketFactory(ws_protocol.WebSocketFactory):  # type: ignore[misc]  # daphne is untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before the base's __init__, which sets the settings a first time.
        self.protocol: Any = type("WebSocketProtocol", (WebSocketProtocol,), {})
        super().__init__(*args, **kwargs)

    def resetProtocolOptions(self) -> None:
        super().resetProtocolOptions()
        self._share_settings()

    def setProtocolOptions(self, **options: Any) -> None:
        super().setProtocolOptions(**options)
        self._share_settings()

    def _share_settings(self) -> None:
        for name in self.protocol.CONFIG_ATTRS:
            value = getattr(self, name)
            # A function kept as a setting (an extension's accept hook) must not become a method.
            setattr(self.protocol, name, staticmethod(value) if callable(value) else value)


def install() -> None:
    """Make daphne's server build its websocket factory from this class."""
    daphne.server.WebSocketFactory = WebSocketFactory

"""daphne's websocket connections read their settings from their factory's own protocol class,
not from copies made on every connection, let go of the HTTP channel they were upgraded from,
and are freed when they close without waiting for the garbage collector."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory as DaphneFactory
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from companion.wsfactory import WebSocketFactory


def connection(factory: Any) -> Any:
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())  # where autobahn copies what the class lacks
    return protocol


def test_a_connection_reads_the_settings_daphne_set_without_copies_of_its_own():
    factory = WebSocketFactory(object(), server="test")
    factory.setProtocolOptions(autoPingTimeout=7, openHandshakeTimeout=3, allowNullOrigin=True)

    protocol = connection(factory)

    assert (protocol.autoPingTimeout, protocol.openHandshakeTimeout) == (7, 3)
    assert protocol.allowNullOrigin is True
    assert protocol.utf8validateIncoming is True  # one of autobahn's defaults
    assert not set(vars(protocol)) & set(WebSocketServerProtocol.CONFIG_ATTRS)
    # daphne's own factory leaves every setting copied on the connection.
    plain = connection(DaphneFactory(object(), server="test"))
    assert set(WebSocketServerProtocol.CONFIG_ATTRS) <= set(vars(plain))
    assert len(vars(protocol)) < len(vars(plain))


def test_a_function_kept_as_a_setting_is_called_as_one():
    factory = WebSocketFactory(object(), server="test")
    offers: list[object] = []
    factory.setProtocolOptions(perMessageCompressionAccept=lambda offer: offers.append(offer))

    connection(factory).perMessageCompressionAccept("offer")

    assert offers == ["offer"]


def test_each_factory_keeps_its_own_settings():
    first, second = WebSocketFactory(object()), WebSocketFactory(object())
    first.setProtocolOptions(autoPingTimeout=7)
    second.setProtocolOptions(autoPingTimeout=9)

    assert connection(first).autoPingTimeout == 7
    assert connection(second).autoPingTimeout == 9


UPGRADE = (
    b"GET /ws/echo/ HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Origin: http://127.0.0.1\r\n\r\n"
)


async def upgraded(factory_class: Any) -> tuple[Any, Any, weakref.ref[HTTPChannel]]:
    """An HTTP connection to daphne's server upgraded to a websocket its application accepts,
    over Twisted's in-memory transport: the transport, the websocket protocol, and the HTTP
    channel the connection began with (weakly)."""
    accepted = asyncio.get_running_loop().create_future()

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        accepted.set_result(None)
        await receive()  # held open, as a socket is

    # Never run: what `Server.run` sets up for connections is set up here as it does it.
    server = Server(application=application, endpoints=["tcp:port=0:interface=lo"])
    server.connections = {}
    server.ws_factory = factory_class(server, server=server.server_name)
    server.ws_factory.setProtocolOptions(allowNullOrigin=True, openHandshakeTimeout=5)
    connection = HTTPFactory(server).buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 8000),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
    )
    connection.makeConnection(transport)
    # Twisted's factory gives a wrapper; the channel inside it registers as the producer.
    channel = transport.producer
    assert isinstance(channel, HTTPChannel)
    connection.dataReceived(UPGRADE)
    del connection
    await asyncio.wait_for(accepted, 5)
    # As daphne's check does once a second: the upgraded request (no application) is forgotten.
    for key, details in list(server.connections.items()):
        if "disconnected" in details and "application_instance" not in details:
            del server.connections[key]
    protocol = transport.protocol
    if protocol.openHandshakeTimeoutCall is not None:  # on a reactor these tests never run
        protocol.openHandshakeTimeoutCall.cancel()
    return transport, protocol, weakref.ref(channel)


async def test_an_upgraded_connection_lets_go_of_the_http_channel_and_request_it_came_from():
    gc.collect()
    gc.disable()
    try:
        transport, protocol, channel = await upgraded(WebSocketFactory)
    finally:
        gc.enable()

    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert transport.producer is None
    # Nothing holds it, nor its request, any more: freed as their last references went, with
    # the garbage collector off.
    assert channel() is None
    # The socket works as before: a frame from the client reaches the application.
    received = []
    protocol.onMessage = lambda payload, binary: received.append(payload)
    protocol.dataReceived(client_frame(b"hello"))
    assert received == [b"hello"]


async def test_daphnes_own_factory_keeps_the_channel_for_as_long_as_the_socket():
    transport, _, channel = await upgraded(DaphneFactory)
    gc.collect()

    assert isinstance(transport.producer, HTTPChannel)
    assert channel() is transport.producer


def client_frame(payload: bytes) -> bytes:
    """One masked text frame, as a browser sends it (a payload under 126 bytes)."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def test_a_closed_connection_is_freed_without_the_garbage_collector():
    transport, protocol, _ = await upgraded(WebSocketFactory)
    server = protocol.server
    closed = weakref.ref(protocol)
    gc.collect()
    gc.disable()
    try:
        del transport.protocol  # as Twisted's TCP transport lets go of it
        protocol.connectionLost(Failure(ConnectionDone()))
        application = server.connections[protocol]["application_instance"]
        await asyncio.wait_for(application, 5)  # it hears the disconnect and ends
        del server.connections[protocol]  # as daphne's check does, once the application ended
        del protocol, application

        assert closed() is None  # freed by its last reference going, not by a collection
    finally:
        gc.enable()

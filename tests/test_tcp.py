"""daphne's TCP transport sends a frame at once when nothing is queued, and otherwise queues it
behind what is, as Twisted's own transport does."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest
from twisted.internet import tcp
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from companion.tcp import PromptWriteServer, install


@pytest.fixture
def pair() -> Iterator[tuple[PromptWriteServer, socket.socket, MemoryReactorClock]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        accepted, address = listener.accept()
    accepted.setblocking(False)
    reactor = MemoryReactorClock()
    # Twisted's own stand-ins for a reactor and a protocol (zope interfaces, unknown to mypy);
    # no listening port: the transport is made as a port makes it after accept().
    protocol: Any = Protocol()
    fake_reactor: Any = reactor
    transport = PromptWriteServer(accepted, protocol, address, cast(Any, None), 1, fake_reactor)
    try:
        yield transport, peer, reactor
    finally:
        peer.close()
        accepted.close()


def receive(peer: socket.socket, count: int) -> bytes:
    peer.settimeout(5)
    data = b""
    while len(data) < count:
        chunk = peer.recv(count - len(data))
        assert chunk, "the connection closed early"
        data += chunk
    return data


def test_a_frame_is_sent_without_waiting_for_the_reactor(pair):
    transport, peer, reactor = pair
    transport.write(b"first frame")
    transport.write(b"second frame")
    assert receive(peer, 23) == b"first framesecond frame"
    assert transport not in reactor.writers  # no round through the reactor for either


def test_what_the_socket_cannot_take_yet_is_queued_and_keeps_its_order(pair):
    transport, peer, reactor = pair
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 40_000  # far more than the socket buffers hold
    transport.write(big)
    assert transport in reactor.writers  # the rest waits for the socket to be writable
    transport.write(b"next frame")  # must not overtake the queued bytes
    received = b""
    peer.setblocking(False)
    while transport in reactor.writers:
        with contextlib.suppress(BlockingIOError):
            received += peer.recv(1 << 20)
        # What the reactor does: call doWrite once the socket can take more.
        _, writable, _ = select.select([], [transport.socket], [], 5)
        if writable:
            transport.doWrite()
    peer.setblocking(True)
    received += receive(peer, len(big) + 10 - len(received))
    assert received == big + b"next frame"


def test_a_closed_connection_takes_no_more_bytes(pair):
    transport, peer, reactor = pair
    transport.connectionLost(Failure(ConnectionDone()))
    transport.write(b"late frame")  # dropped, as Twisted drops it, without an error
    peer.settimeout(1)
    assert peer.recv(100) == b""
    assert transport not in reactor.writers


def test_a_closing_connection_queues_its_last_bytes_for_the_reactor(pair):
    transport, peer, reactor = pair
    transport.loseConnection()
    transport.write(b"goodbye")
    assert transport in reactor.writers
    transport.doWrite()
    assert receive(peer, 7) == b"goodbye"


def test_an_aborted_connection_sends_nothing_more(pair):
    transport, peer, _reactor = pair
    transport.abortConnection()
    transport.write(b"late frame")
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):  # on loopback, bytes sent would be here already
        peer.recv(100)


class Chunks:
    """A pull producer: writes its next chunk each time the transport asks for more."""

    def __init__(self, transport: PromptWriteServer, chunks: list[bytes]) -> None:
        self.transport = transport
        self.chunks = chunks

    def resumeProducing(self) -> None:
        if self.chunks:
            self.transport.write(self.chunks.pop(0))
        else:
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.chunks = []


def test_a_pull_producer_is_asked_for_more_until_it_is_done(pair):
    transport, peer, reactor = pair
    transport.registerProducer(Chunks(transport, [b"one ", b"two ", b"three"]), False)
    for _ in range(10):  # the reactor's part: write whenever the transport asks to
        if transport not in reactor.writers:
            break
        transport.doWrite()
    assert receive(peer, 13) == b"one two three"


def test_install_makes_daphnes_tcp_ports_use_it():
    before = tcp.Port.transport
    try:
        install()
        assert tcp.Port.transport is PromptWriteServer
    finally:
        tcp.Port.transport = before

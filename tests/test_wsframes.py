"""Event frames written straight to daphne's websocket connection: the same bytes autobahn
writes, only when autobahn would do nothing more, and used by the chat socket under daphne."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from autobahn.websocket.compress_deflate import PerMessageDeflate
from autobahn.websocket.protocol import Timings
from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from companion.wsframes import text_writer
from conversations.llm.fake_server import FakeM2her
from conversations.services.conversations import conversation_create
from tests.conversations.chat_helpers import session_cookie
from tests.factories import make_character, make_user
from tests.servers import daphne_env, start_daphne, stop_process

# What daphne logs (at DEBUG) for every frame that comes through ASGI.
ASGI_FRAME_LOG = "Sent WebSocket packet to client"


class Connection:
    """A daphne websocket connection in its open state, over Twisted's in-memory transport."""

    def __init__(self) -> None:
        # Never run: the endpoint only satisfies the constructor. What `Server.run` sets up for
        # websockets is set up here as it does it.
        server = self.server = Server(application=None, endpoints=["tcp:port=0:interface=lo"])
        server.connections = {}
        factory = WebSocketFactory(server, server=server.server_name)
        factory.setProtocolOptions(
            autoPingTimeout=server.ping_timeout,
            allowNullOrigin=True,
            openHandshakeTimeout=server.websocket_handshake_timeout,
            maxMessagePayloadSize=server.websocket_max_message_size,
            maxFramePayloadSize=server.websocket_max_frame_size,
        )
        self.protocol: Any = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.protocol.state = AutobahnProtocol.STATE_OPEN  # as the opening handshake leaves it
        self.server.connections[self.protocol] = {"connected": 0.0}
        self.send = functools.partial(self.server.handle_reply, self.protocol)

    def written(self) -> bytes:
        data: bytes = self.transport.value()
        self.transport.clear()
        return data


@pytest.fixture
def connection() -> Iterator[Connection]:
    opened = Connection()
    yield opened
    # The one timer the opening of a connection sets (on a reactor these tests never run).
    if opened.protocol.openHandshakeTimeoutCall is not None:
        opened.protocol.openHandshakeTimeoutCall.cancel()


@pytest.mark.parametrize(
    "text",
    ["", "a", "a" * 125, "a" * 126, "a" * 0xFFFF, "a" * 0x10000, "é€😀" * 30_000],
    ids=["empty", "one", "125", "126", "65535", "65536", "non-ascii"],
)
def test_a_frame_is_the_bytes_autobahn_writes(connection, text):
    writer = text_writer(connection.send)
    assert writer is not None
    connection.protocol.sendMessage(text.encode())
    by_autobahn = connection.written()
    assert writer([text]) is True
    assert connection.written() == by_autobahn


def test_several_frames_are_written_at_once_in_order(connection):
    writer = text_writer(connection.send)
    assert writer is not None
    texts = ["first", "é" * 200, "a" * 0x10000, ""]
    for text in texts:
        connection.protocol.sendMessage(text.encode())
    by_autobahn = connection.written()
    writes: list[bytes] = []
    write = connection.transport.write

    def counted(data: bytes) -> None:
        writes.append(data)
        write(data)

    connection.transport.write = counted
    assert writer(texts) is True
    assert writes == [by_autobahn]


def test_frames_written_together_are_all_or_none(connection):
    writer = text_writer(connection.send)
    assert writer is not None
    _fragmenting(connection.protocol)
    # The first would be written as it is; the second autobahn fragments: neither is written
    # here, so that the caller sends both, in order, through autobahn.
    assert writer(["abc", "abcdef"]) is False
    assert connection.written() == b""


async def test_daphnes_own_send_gets_a_writer_and_others_do_not(connection):
    sends: list[Any] = []

    async def application(scope: Any, receive: Any, send: Any) -> None:
        sends.append(send)

    connection.server.application = application
    connection.server.create_application(connection.protocol, {"type": "websocket"})
    await asyncio.sleep(0)  # daphne schedules the application as a task
    writer = text_writer(sends[0])
    assert writer is not None
    assert writer(["hello"]) is True
    assert connection.written() == b"\x81\x05hello"

    async def other_server_send(message: Any) -> None:
        pass

    assert text_writer(other_server_send) is None
    assert text_writer(functools.partial(other_server_send)) is None
    assert text_writer(functools.partial(connection.server.handle_reply, object())) is None


def _closing(protocol: Any) -> None:
    protocol.state = AutobahnProtocol.STATE_CLOSING


def _connecting(protocol: Any) -> None:
    protocol.state = AutobahnProtocol.STATE_CONNECTING


def _compressing(protocol: Any) -> None:
    protocol._perMessageCompress = PerMessageDeflate(True, False, False, 15, 15, 8)


def _queued(protocol: Any) -> None:
    protocol.send_queue.append((b"\x81\x01q", True))


def _masking(protocol: Any) -> None:
    protocol.maskServerFrames = True


def _logging_frames(protocol: Any) -> None:
    protocol.logFrames = True


def _timing(protocol: Any) -> None:
    protocol.trackedTimings = Timings()


def _small_limit(protocol: Any) -> None:
    protocol.maxMessagePayloadSize = 4


def _fragmenting(protocol: Any) -> None:
    protocol.autoFragmentSize = 4


@pytest.mark.parametrize(
    "change",
    [
        _closing,
        _connecting,
        _compressing,
        _queued,
        _masking,
        _logging_frames,
        _timing,
        _small_limit,
        _fragmenting,
    ],
)
def test_anything_autobahn_would_do_more_for_is_left_to_it(connection, change):
    writer = text_writer(connection.send)
    assert writer is not None
    change(connection.protocol)
    assert writer(["hello"]) is False
    assert connection.written() == b""


@pytest.mark.parametrize("let_go", ["disconnected", "forgotten"])
def test_a_connection_daphne_has_let_go_of_is_left_to_daphne(connection, let_go):
    writer = text_writer(connection.send)
    assert writer is not None
    if let_go == "disconnected":
        connection.server.connections[connection.protocol]["disconnected"] = 1.0
    else:
        del connection.server.connections[connection.protocol]
    assert writer(["hello"]) is False
    assert connection.written() == b""


# --- The chat socket under daphne ---------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeM2her]:
    with FakeM2her.in_thread(tokens_per_second=400) as server:
        yield server


@pytest.fixture
def daphne(fake):
    # DEBUG: daphne logs each frame sent through ASGI. Room for a long message and its prompt.
    env = daphne_env(
        fake.base_url,
        LOG_LEVEL="DEBUG",
        CHAT_MAX_MESSAGE_CHARS="22000",
        M2HER_CONTEXT_TOKENS="200000",
    )
    server = start_daphne(env)
    try:
        yield server
    finally:
        stop_process(server)


async def _events_until_completed(ws: Any, sizes: list[int]) -> list[dict[str, Any]]:
    """The events up to `reply.completed`; each frame's payload size is added to `sizes`."""
    events = []
    while True:
        raw = await asyncio.wait_for(ws.recv(), 20)
        sizes.append(len(raw.encode()))
        event = json.loads(raw)
        events.append(event)
        assert event["type"] not in ("reply.failed", "error"), event
        if event["type"] == "reply.completed":
            return events


async def _socket_url(daphne: Any, owner: Any) -> str:
    """The websocket address of a new conversation of `owner` on the test daphne."""
    character = await asyncio.to_thread(make_character, name="Aria")
    conversation = await asyncio.to_thread(conversation_create, owner=owner, character=character)
    return f"ws://127.0.0.1:{daphne.port}/ws/conversations/{conversation.pk}/"


def _connect(daphne: Any, url: str, cookie: str) -> Any:
    return websockets.connect(
        url, origin=daphne.url, additional_headers={"Cookie": cookie}, max_size=2**22
    )


@pytest.mark.django_db(transaction=True)
async def test_a_chat_socket_under_daphne_gets_its_events_as_direct_frames(daphne):
    owner = await asyncio.to_thread(make_user, "framed")
    url = await _socket_url(daphne, owner)
    async with _connect(daphne, url, await session_cookie(owner)) as ws:
        await ws.send(json.dumps({"type": "sync", "after_seq": 0}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "sync.state"
        await asyncio.sleep(0.2)  # daphne's log line for the sync.state is written
        daphne.mark()
        sizes: list[int] = []
        # Frames with a 7-bit, a 16-bit and a 64-bit length: each "€" is three bytes of UTF-8,
        # and the fake model's reply echoes the message. The longest message's own frame stays
        # within the frame limit (64 KiB); its turn's event, with the turn's other fields, and
        # the completed reply go past 65,535 bytes.
        for text in ("[[words=40]] go", "€" * 2000, "€" * 21_800):
            frame = {"type": "message.send", "client_id": str(uuid.uuid4()), "text": text}
            await ws.send(json.dumps(frame, ensure_ascii=False))
            events = await _events_until_completed(ws, sizes)
            created = [e["turn"] for e in events if e["type"] == "turn.created"]
            assert created[0]["content"] == text
            streamed = "".join(e["text"] for e in events if e["type"] == "reply.delta")
            completed = events[-1]["content"]
            assert streamed == completed
            if text.startswith("[[words"):
                assert completed == " ".join(f"word{i}" for i in range(1, 41))
            else:
                assert completed == f"You said: {text}"
        assert min(sizes) <= 125
        assert max(sizes) > 0xFFFF
        assert any(125 < size <= 0xFFFF for size in sizes)
        # An answer that is not an event still goes through ASGI: the log counts it.
        await ws.send(json.dumps({"type": "no.such.type"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "error"
        await asyncio.sleep(0.2)
    # Of all those frames, only the error went through ASGI.
    assert daphne.log_since_mark().count(ASGI_FRAME_LOG) == 1


@pytest.mark.django_db(transaction=True)
async def test_another_users_socket_under_daphne_is_refused(daphne):
    url = await _socket_url(daphne, await asyncio.to_thread(make_user, "framed-owner"))
    other = await asyncio.to_thread(make_user, "framed-other")
    async with _connect(daphne, url, await session_cookie(other)) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404

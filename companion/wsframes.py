"""Text frames written straight to daphne's websocket connection.

A frame sent through ASGI passes Channels' two `send` layers, daphne's `handle_reply` coroutine
and its protocol's, then autobahn's `sendMessage`, `sendFrame` and `sendData`, which re-check
their arguments, keep traffic counters and format a debug log record's arguments for every
frame; on the benchmark those layers cost as much as the socket's `send` itself (~19 of ~43 µs
a frame). A streamed reply is one frame per two or three words to every open tab, so the
conversation consumer sends its events here: when the connection is open and nothing would make
autobahn do more than frame the bytes (no compression, masking, fragmenting, frame logging,
timing, nothing queued before it, within the size limit), the frame is built here and handed to
the transport, exactly the bytes autobahn would write. Otherwise the caller sends through ASGI
as before, so every other case (a closing socket included) behaves as it always did. Autobahn's
traffic counters do not count these frames; neither daphne nor this project reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

TextWriter = Callable[[Sequence[str]], bool]

_FIN_TEXT = 0x81  # FIN set, opcode 1 (text)
_OPEN = AutobahnProtocol.STATE_OPEN


def frame_header(length: int) -> bytes:
    """An unmasked, final text frame's header for a payload of `length` bytes (RFC 6455 5.2)."""
    if length <= 125:
        return bytes((_FIN_TEXT, length))
    if length <= 0xFFFF:
        return bytes((_FIN_TEXT, 126)) + length.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + length.to_bytes(8, "big")


def text_writer(send: Any) -> TextWriter | None:
    """For an ASGI `send` that is daphne's for a websocket, a function that writes text frames
    directly, all of them in one write to the socket, and returns whether it did (it writes all
    or none); None for any other server (a test's, say)."""
    if not (
        isinstance(send, functools.partial)
        and getattr(send.func, "__func__", None) is Server.handle_reply
        and len(send.args) == 1
        and isinstance(send.args[0], WebSocketProtocol)
        and not send.keywords
    ):
        return None
    handle_reply: Any = send.func
    connections: dict[Any, dict[str, Any]] = handle_reply.__self__.connections
    protocol: Any = send.args[0]

    def write_texts(texts: Sequence[str]) -> bool:
        connection = connections.get(protocol)
        # As daphne's `handle_reply`: nothing for a connection it has let go of. The ASGI path
        # decides (it drops the frame silently).
        if connection is None or connection.get("disconnected"):
            return False
        if not _plain(protocol):
            return False
        limit, fragment = protocol.maxMessagePayloadSize, protocol.autoFragmentSize
        parts: list[bytes] = []
        for text in texts:
            payload = text.encode()
            if 0 < limit < len(payload) or 0 < fragment < len(payload):
                return False  # autobahn refuses or fragments it: left to autobahn
            parts += (frame_header(len(payload)), payload)
        protocol.transport.write(b"".join(parts))
        return True

    return write_texts


def _plain(protocol: Any) -> bool:
    """Whether autobahn would do no more than frame a message and write it to the transport."""
    return bool(
        protocol.state == _OPEN
        and protocol._perMessageCompress is None
        and not protocol.send_queue
        and not protocol.maskServerFrames
        and not protocol.logFrames
        and not protocol.trackedTimings
    )

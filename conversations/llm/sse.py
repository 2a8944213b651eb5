"""An incremental Server-Sent Events parser over raw bytes.

It is on the hot path of every streamed reply, so it splits whole chunks at once instead of
handling one line per call, and it keeps only the incomplete tail between feeds.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
# No event of a model stream comes near this (a final frame repeating a long reply is tens of
# KiB). Beyond it the stream is garbage, and holding and rescanning it would stall the loop.
MAX_EVENT_BYTES = 1024 * 1024


class SSEError(ValueError):
    """The stream is not one a model service sends."""


class SSEEvent(NamedTuple):
    event: str
    data: str


class SSEParser:
    """Feed it byte chunks split anywhere; it returns the events completed so far."""

    __slots__ = ("_cr", "_data", "_event", "_size", "_started", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._event = ""
        self._data: list[str] = []
        self._size = 0  # the bytes of data lines in `_data`
        self._started = False
        # The last chunk ended with a CR: it ended a line (a stream may use CR alone), and a LF
        # opening the next chunk is the rest of that CRLF, not a blank line.
        self._cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._cr and chunk:
            self._cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._tail + chunk if self._tail else chunk
        if not self._started:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._tail = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
        # CR looked for as an int: with a bytes operand (`b"\r" in buf`) CPython first tries it
        # as an int, raising, formatting and clearing a TypeError that costs ten times the search
        # (0.7 % of the server's CPU at 400 streams, where every read of a reply comes here).
        if _CR in buf:
            self._cr = buf.endswith(b"\r")
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if (
            not self._data
            and buf.endswith(b"\n\n")
            and buf.find(b"\n") == len(buf) - 2
            and buf.startswith(b"data:")
        ):
            # Nearly every read of a model's stream is one whole event of one data line: taken
            # at once, as the walk over its lines below would take it.
            return [self._single(buf)]
        lines = buf.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > MAX_EVENT_BYTES:
            raise SSEError(f"a line of the stream is over {MAX_EVENT_BYTES} bytes")
        return self._lines(lines)

    def flush(self) -> list[SSEEvent]:
        """End of stream: an event not closed by a blank line is dropped, as the spec says."""
        self._tail = b""
        self._event = ""
        self._data = []
        self._size = 0
        self._cr = False
        return []

    def _single(self, buf: bytes) -> SSEEvent:
        """The event of `buf`, a data line and the blank line after it, with no data before."""
        self._tail = b""
        value = buf[6:-2] if buf[5:6] == b" " else buf[5:-2]
        if len(value) > MAX_EVENT_BYTES:
            raise SSEError(f"an event of the stream is over {MAX_EVENT_BYTES} bytes")
        event = SSEEvent(self._event, value.decode("utf-8", "replace"))
        self._event = ""
        return event

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(SSEEvent(self._event, "\n".join(data)))
                    data = self._data = []
                    self._size = 0
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[6:] if line[5:6] == b" " else line[5:]
                self._grow(len(value))
                data.append(value.decode("utf-8", "replace"))
            elif line[0] == 0x3A:  # ":" starts a comment (keep-alive pings)
                continue
            else:
                self._field(line, data)
        return events

    def _field(self, line: bytes, data: list[str]) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":
            self._grow(len(value))
            data.append(value.decode("utf-8", "replace"))
        # `id` and `retry` mean nothing to a one-shot model stream; unknown fields are ignored.

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > MAX_EVENT_BYTES:
            raise SSEError(f"an event of the stream is over {MAX_EVENT_BYTES} bytes")

"""daphne's TCP connections, writing to the socket at once when nothing is waiting to be sent.

Twisted's transport never writes in `write()`: it queues the bytes, registers the socket with the
reactor for writability and sends on the next turn of the loop, then unregisters it. On daphne's
asyncio reactor that is two `epoll_ctl` calls, a loop callback and Twisted's log context per
websocket frame, and a streamed reply is one frame per two or three words. asyncio's own
transports try the socket first; this does the same, and falls back to Twisted's queue whenever
anything is already queued (so bytes keep their order), the socket takes only part of the bytes,
the connection is closing or aborted or uses TLS started on it, or a pull producer feeds it.
"""

from __future__ import annotations

from twisted.internet import tcp


class PromptWriteServer(tcp.Server):
    def write(self, data: bytes) -> None:
        if (
            type(data) is bytes
            and data
            and self.connected
            and not self.TLS
            and not self.disconnecting
            and not self._aborting
            and not self._writeDisconnecting
            and not self._writeDisconnected
            and not self._tempDataBuffer
            and self.offset == len(self.dataBuffer)
            # A pull producer is asked for more only when the reactor writes.
            and (self.producer is None or self.streamingProducer)
        ):
            sent = self.writeSomeData(data)
            # An error (returned, not raised) is left to the queue: the reactor's write then
            # meets it again and closes the connection the usual way.
            if isinstance(sent, int):
                if sent == len(data):
                    return
                data = data[sent:]
        super().write(data)  # type: ignore[no-untyped-call]  # Twisted's TLS mixin is untyped


def install() -> None:
    """Make the TCP servers that daphne listens with use `PromptWriteServer`."""
    tcp.Port.transport = PromptWriteServer

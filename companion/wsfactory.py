"""daphne's websocket factory, with its protocol settings kept once for all its connections.

autobahn copies a factory's 29 protocol settings onto each new connection object, unless the
connection's class already has them. With them, a connection object's attributes outgrow their
table: ~2 KiB more for every open socket, and 29 copies in every handshake. This factory gives
its connections a class of their own (a subclass of daphne's) holding its settings, updated
whenever daphne sets them.
"""

from __future__ import annotations

from typing import Any

import daphne.server  # first: it installs Twisted's asyncio reactor
from daphne import ws_protocol


class WebSocketFactory(ws_protocol.WebSocketFactory):  # type: ignore[misc]  # daphne is untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before the base's __init__, which sets the settings a first time.
        self.protocol: Any = type("WebSocketProtocol", (ws_protocol.WebSocketProtocol,), {})
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

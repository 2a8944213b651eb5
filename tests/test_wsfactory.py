"""daphne's websocket connections read their settings from their factory's own protocol class,
not from copies made on every connection."""

from __future__ import annotations

from typing import Any

from autobahn.websocket.protocol import WebSocketServerProtocol
from daphne.ws_protocol import WebSocketFactory as DaphneFactory
from twisted.internet.testing import StringTransport

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

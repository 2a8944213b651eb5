"""autobahn's per-connection settings line is formatted only when debug messages are logged,
and then reads as before."""

from __future__ import annotations

import pprint
from collections.abc import Iterator
from typing import Any, cast

import pytest
import txaio
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import Timings
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from companion import lazyformat

# txaio sets up its functions for the framework at run time; mypy sees none of them.
TXAIO: Any = txaio


class CountedRepr:
    """A setting whose text counts how often it is made."""

    def __init__(self) -> None:
        self.made = 0

    def __repr__(self) -> str:
        self.made += 1
        return "<counted>"


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    lazyformat.install()
    seen: list[dict[str, Any]] = []
    # A plain callable is a log observer (a zope interface, unknown to mypy).
    observer = cast(Any, seen.append)
    globalLogPublisher.addObserver(observer)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observer)
        TXAIO.set_global_log_level("info")


def connect(setting: CountedRepr) -> None:
    factory: Any = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol  # daphne's protocol is one of these
    # Read only when a Flash client asks: its text shows whether the settings were formatted.
    factory.flashSocketPolicy = setting
    protocol: Any = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())


def settings_line(events: list[dict[str, Any]]) -> dict[str, Any]:
    (event,) = [e for e in events if e.get("log_format") == "\n{attrs}"]
    return event


def test_a_connection_formats_nothing_when_debug_is_not_logged(events):
    setting = CountedRepr()
    connect(setting)
    assert setting.made == 0


def test_the_debug_line_reads_as_autobahn_writes_it(events):
    TXAIO.set_global_log_level("debug")
    setting = CountedRepr()
    connect(setting)

    text = formatEvent(settings_line(events))
    attrs = settings_line(events)["attrs"]
    assert text == "\n" + pprint.pformat(attrs._value)
    assert "('flashSocketPolicy', <counted>, 'WebSocketServerFactory')" in text
    assert "('utf8validateIncoming', True, 'WebSocketServerFactory')" in text


def test_autobahns_other_texts_are_still_strings(events):
    timings = Timings()
    timings.track("opened")
    assert isinstance(str(timings), str)
    assert "'opened'" in str(timings)

"""autobahn's per-connection debug line, formatted only when it is logged.

Every websocket connection's `_connectionMade` pretty-prints its 29 settings (a list of tuples)
for a debug message, whether or not debug messages are logged: ~0.1 ms of CPU a connection,
about one part in seventy of a whole short reply on a new socket. With `install()`, autobahn's
`pformat` hands a list back as a `LazyPformat`: the message keeps the same text, and the work
happens only when the logger renders it. autobahn's other uses (a dict, whose text is returned
as a `str` by `Timings.__str__`) still get the text at once.
"""

from __future__ import annotations

import pprint
from typing import Any

from autobahn.websocket import protocol


class LazyPformat:
    """`pprint.pformat(value)` when formatted or turned into a string, not before."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return pprint.pformat(self._value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __repr__(self) -> str:
        return str(self)


def pformat(value: Any) -> Any:
    """autobahn's `pformat`: lazy for a list (the per-connection settings), at once otherwise."""
    return LazyPformat(value) if type(value) is list else pprint.pformat(value)


def install() -> None:
    """Make autobahn's websocket protocol format its per-connection settings lazily."""
    # The module's own import of `pprint.pformat`, typed as that function and not re-exported.
    protocol.pformat = pformat  # type: ignore[attr-defined,assignment]

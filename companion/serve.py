"""`python -m companion.serve [daphne's arguments]`: daphne, on uvloop's event loop, with TCP
connections that write at once (`companion.tcp`).

daphne runs Twisted on an asyncio loop that it creates when `daphne.server` is first imported,
so the loop policy is set before that import. Every wake-up of a streaming reply (a token from the
model, a frame to a socket) goes through that loop; uvloop's is several times cheaper than the
standard library's.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvloop
from twisted.internet.defer import Deferred

from companion import lazyformat, tcp


def install() -> None:
    """Make new event loops uvloop's, TCP connections write at once, new websockets share their
    settings, let go of their HTTP request and skip formatting a debug line nobody reads, and
    connections' applications receive through a lighter queue; call before anything imports
    `daphne.server`."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tcp.install()
    lazyformat.install()
    # These import `daphne.server`: after the loop policy.
    from companion import appqueue, wsfactory

    wsfactory.install()
    appqueue.install()


# How long a stopping server waits for its replies to be stored as interrupted.
SHUTDOWN_GRACE_SECONDS = 5.0


def main() -> None:
    install()
    from daphne.cli import CommandLineInterface
    from twisted.internet import reactor  # daphne's import above installed its reactor

    # Typed through its zope interface, whose signature mypy reads one argument off.
    core: Any = reactor
    core.addSystemEventTrigger("before", "shutdown", _interrupt_replies)
    CommandLineInterface.entrypoint()


def _interrupt_replies() -> Deferred[None]:
    """Twisted waits for the Deferred before it stops: replies end stored, not "streaming"."""
    from conversations import streaming  # the application, and so Django, is loaded by now

    work = asyncio.ensure_future(streaming.interrupt_replies(SHUTDOWN_GRACE_SECONDS))
    return Deferred.fromFuture(work)


if __name__ == "__main__":
    main()

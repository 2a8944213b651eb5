"""`python -m companion.serve [daphne's arguments]`: daphne, on uvloop's event loop, with TCP
connections that write at once (`companion.tcp`).

daphne runs Twisted on an asyncio loop that it creates when `daphne.server` is first imported,
so the loop policy is set before that import. Every wake-up of a streaming reply (a token from the
model, a frame to a socket) goes through that loop; uvloop's is several times cheaper than the
standard library's.
"""

from __future__ import annotations

import asyncio
import logging
import os
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

log = logging.getLogger(__name__)


def main() -> None:
    install()
    from daphne.cli import CommandLineInterface
    from twisted.internet import reactor  # daphne's import above installed its reactor

    # Typed through its zope interface, whose signature mypy reads one argument off.
    core: Any = reactor
    core.addSystemEventTrigger("before", "shutdown", _interrupt_replies)
    # The application, and so Django's settings, is loaded by the time the reactor runs.
    core.callWhenRunning(batch_scheduling)
    CommandLineInterface.entrypoint()


def batch_scheduling() -> None:
    """Put this thread, and the threads it starts from now on (the database's, Django's
    views', the local model's), under Linux's SCHED_BATCH policy, unless `SERVER_SCHED_BATCH`
    is off.

    A thread under it is never run ahead of the thread running on its core just because it
    woke up: it waits for that thread to block or for its turn on the next scheduler tick.
    Under the default policy the event loop's thread and the database thread, sharing one
    core, cut into each other at every hand-over (the loop woken by a step's result before the
    database thread is back to waiting, the database thread woken by the next step): about 40
    context switches a reply, 17 under SCHED_BATCH. `make bench-ab` against the default policy,
    three runs of eight rounds: server CPU per reply in the singles and bursts 6.45 → 5.17,
    5.28 → 4.00 and 6.54 → 5.61 ms (lower in 8, 6 and 6 rounds), per delta at 300 streams
    96.8 → 91.3, 82.7 → 78.2 and 98.1 → 94.8 µs (8, 5 and 5). The cost is that a wake-up waits
    for the thread running before it on a busy core: on a machine shared with other work, at
    most a scheduler slice (a few ms).
    """
    from django.conf import settings

    if not settings.SERVER_SCHED_BATCH or not hasattr(os, "sched_setscheduler"):
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:  # a sandbox may forbid it: the server runs all the same
        log.warning("could not run the server under SCHED_BATCH: %s", exc)


def _interrupt_replies() -> Deferred[None]:
    """Twisted waits for the Deferred before it stops: replies end stored, not "streaming"."""
    from conversations import streaming  # the application, and so Django, is loaded by now

    work = asyncio.ensure_future(streaming.interrupt_replies(SHUTDOWN_GRACE_SECONDS))
    return Deferred.fromFuture(work)


if __name__ == "__main__":
    main()

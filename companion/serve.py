"""`python -m companion.serve [daphne's arguments]`: daphne, on uvloop's event loop, with TCP
connections that write at once (`companion.tcp`).

daphne runs Twisted on an asyncio loop that it creates when `daphne.server` is first imported,
so the loop policy is set before that import. Every wake-up of a streaming reply (a token from the
model, a frame to a socket) goes through that loop; uvloop's is several times cheaper than the
standard library's.
"""

from __future__ import annotations

import asyncio

import uvloop

from companion import tcp


def install() -> None:
    """Make new event loops uvloop's and TCP connections write at once; call before anything
    imports `daphne.server`."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    tcp.install()


def main() -> None:
    install()
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()

"""The project's fake M2-her server on uvloop, so the load side of the benchmark (this server
and the clients share one core) does not run out of CPU before the server under test does."""

from __future__ import annotations

import argparse

import uvloop

from conversations.llm.fake_server import FakeM2her


async def serve(port: int, tokens_per_second: float) -> None:
    server = FakeM2her(port=port, tokens_per_second=tokens_per_second, keep_requests=10)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.tokens_per_second))


if __name__ == "__main__":
    main()

"""Serve the fake M2-her API (all three wire styles) for local runs and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.llm.fake_replies import FAULTS
from conversations.llm.fake_server import FakeM2her


class Command(BaseCommand):
    help = (
        "Serve a fake M2-her API. Replies echo the last user message; markers such as "
        "[[rate_limit]] in it script faults: " + ", ".join(sorted(FAULTS))
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument(
            "--tokens-per-second", type=float, default=0.0, help="Delta pacing; 0 is unpaced."
        )
        parser.add_argument("--api-key", default="", help="Require this bearer key.")

    def handle(self, *args: Any, **options: Any) -> None:
        server = FakeM2her(
            host=options["host"],
            port=options["port"],
            tokens_per_second=options["tokens_per_second"],
            api_key=options["api_key"],
            keep_requests=100,
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(server))

    async def _serve(self, server: FakeM2her) -> None:
        await server.start()
        self.stdout.write(f"Fake M2-her listening on {server.base_url}", ending="\n")
        self.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

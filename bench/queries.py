"""Database queries and writes of one whole reply, counted in-process (prints JSON)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any


async def measure() -> dict[str, Any]:
    from channels.db import database_sync_to_async
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from characters.models import Character
    from conversations.llm.fake_server import FakeM2her
    from conversations.services.conversations import conversation_create
    from tests.conversations.chat_helpers import collect_until, send_message, synced

    async with FakeM2her() as fake:
        settings.M2HER_BASE_URL = fake.base_url

        def prepare() -> tuple[Any, Any]:
            user = User.objects.get(username="bench0")
            character = Character.objects.get(slug="bench-echo")
            return user, conversation_create(owner=user, character=character)

        user, conversation = await database_sync_to_async(prepare)()
        ws, _ = await synced(conversation.pk, user)
        capture = CaptureQueriesContext(connection)
        await database_sync_to_async(capture.__enter__)()
        await send_message(ws, "[[words=200]] count")
        await collect_until(ws, "reply.completed", timeout=30)

        def finish() -> list[str]:
            capture.__exit__(None, None, None)
            return [q["sql"].lstrip().upper() for q in capture.captured_queries]

        sql = await database_sync_to_async(finish)()
        await ws.disconnect()
    writes = [q for q in sql if q.startswith(("INSERT", "UPDATE", "DELETE"))]
    return {"queries": len(sql), "writes": len(writes), "deltas": 200}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
    import django

    django.setup()
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()

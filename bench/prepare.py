"""Create the benchmark's users, sessions and conversations in the bench database.

Run with the bench environment (`python -m bench.prepare N`); prints JSON for the load clients.
"""

from __future__ import annotations

import json
import os
import sys


def main(count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.utils import timezone

    from characters.models import Character
    from conversations.models import Conversation, Role, Turn
    from conversations.services.conversations import conversation_create
    from tests.factories import make_session_cookie

    owner, _ = User.objects.get_or_create(username="bench-owner")
    character, _ = Character.objects.get_or_create(
        slug="bench-echo",
        defaults={
            "owner": owner,
            "name": "Echo",
            "description": "A benchmark character.",
            "greeting": "Hello.",
            "visibility": "public",
            "default_max_tokens": 2048,
        },
    )
    clients = []
    for i in range(count):
        user, _ = User.objects.get_or_create(username=f"bench{i}")
        conversation = conversation_create(owner=user, character=character)
        clients.append(
            {
                "cookie": make_session_cookie(user),
                "conversation": str(conversation.pk),
            }
        )
    long_conversation = conversation_create(
        owner=User.objects.get(username="bench0"), character=character
    )
    now = timezone.now()
    Turn.objects.bulk_create(
        Turn(
            conversation=long_conversation,
            seq=100 + i,
            updated_seq=100 + i,
            role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
            name="bench0" if i % 2 == 0 else "Echo",
            content=f"Turn {i}: " + "a few words of role-play text " * 6,
            created_at=now,
        )
        for i in range(5000)
    )
    Conversation.objects.filter(pk=long_conversation.pk).update(last_seq=5100)
    json.dump({"clients": clients, "long_conversation": str(long_conversation.pk)}, sys.stdout)


if __name__ == "__main__":
    main(int(sys.argv[1]))

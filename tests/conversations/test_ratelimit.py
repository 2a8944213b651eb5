"""The per-user reply budget, and the in-memory storage behind it when there is no Redis."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from conversations.ratelimit import SweepingMemoryStorage, replies_check_rate
from conversations.services.replies import ChatActionError


async def test_one_users_spent_budget_leaves_anothers_alone(settings):
    settings.CHAT_MESSAGES_PER_MINUTE = 2
    # Ids no other test (or earlier run, with Redis) has spent a budget under.
    first, second = random.sample(range(10**9, 2 * 10**9), 2)
    await replies_check_rate(user_id=first)
    await replies_check_rate(user_id=first)
    with pytest.raises(ChatActionError) as refused:
        await replies_check_rate(user_id=first)

    assert refused.value.code == "rate_limited"
    await replies_check_rate(user_id=second)  # the second user's own budget


async def test_hits_in_a_row_start_one_sweep_not_one_each():
    storage = SweepingMemoryStorage()
    for user in range(500):
        await storage.incr(f"user-{user}", 120)
    sweeps = set()
    for user in range(50):
        await storage.incr(f"user-{user}", 120)
        sweeps.add(id(storage.timer))
        await asyncio.sleep(0)  # the sweep a hit started has run: the parent would start another

    assert len(sweeps) == 1


async def test_expired_counters_are_still_swept():
    storage = SweepingMemoryStorage()
    await storage.incr("gone", 120)
    for _ in range(3):
        await asyncio.sleep(0)  # the sweep this hit started is over
    storage.expirations["gone"] = time.time() - 1  # its window ended
    storage._next_sweep = 0.0  # and a second later, the next hit sweeps again

    await storage.incr("active", 120)
    for _ in range(3):
        await asyncio.sleep(0)

    assert "gone" not in storage.storage
    assert "gone" not in storage.expirations
    assert storage.storage["active"] == 1

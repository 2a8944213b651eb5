"""Per-user limits on starting replies (shared across processes when Redis is configured)."""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from conversations.services.replies import ChatActionError

_Limiter = tuple[SlidingWindowCounterRateLimiter, RateLimitItemPerMinute]
# Async storages hold connections bound to the loop that made them: one per event loop.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Limiter] = (
    weakref.WeakKeyDictionary()
)


def _limiter() -> _Limiter:
    loop = asyncio.get_running_loop()
    if loop not in _limiters:
        _limiters[loop] = _make_limiter()
    return _limiters[loop]


def _make_limiter() -> _Limiter:
    storage: Storage
    if settings.REDIS_URL:
        url = settings.REDIS_URL.replace("redis://", "async+redis://", 1)
        storage = RedisStorage(url, implementation="redispy", key_prefix="companion-rl")
    else:
        storage = MemoryStorage()
    # A sliding window of two counters rather than a moving window of timestamps: the in-memory
    # storage expires moving-window entries with a thread hop per user, every few milliseconds
    # while anyone chats (a tenth of the server's CPU at 100 users starting replies).
    return SlidingWindowCounterRateLimiter(storage), RateLimitItemPerMinute(
        settings.CHAT_MESSAGES_PER_MINUTE
    )


async def replies_check_rate(*, user_id: int) -> None:
    """Count one reply request against the user's per-minute budget, or refuse it."""
    limiter, item = _limiter()
    if not await limiter.hit(item, "replies", str(user_id)):
        raise ChatActionError(
            "rate_limited",
            f"You can ask for {settings.CHAT_MESSAGES_PER_MINUTE} replies a minute. "
            "Wait a moment and try again.",
        )

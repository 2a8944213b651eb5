"""The session and user of a websocket, as Channels' `AuthMiddlewareStack` resolves them, with
frames sent straight to the server.

Channels' `SessionMiddleware` wraps `send` so that a modified session is saved when an HTTP
response starts. A websocket never sends one, so for a socket the wrapper only looks at the
session (through a lazy object) on every frame and passes it on, ~7 µs a frame on the benchmark's
machine (a streamed reply sends one frame per two or three words).

The user is resolved once, at the handshake; `session_signs_in` asks again later, of the stored
session rather than the handshake's copy of it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.utils.crypto import constant_time_compare


class WebsocketSessionMiddleware(SessionMiddleware):  # type: ignore[misc]
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def websocket_auth_stack(inner: Any) -> CookieMiddleware:
    """`channels.auth.AuthMiddlewareStack` for websockets: cookies, session, user."""
    return CookieMiddleware(WebsocketSessionMiddleware(AuthMiddleware(inner)))


def session_signs_in(*, session_key: str | None, user: AbstractBaseUser) -> bool:
    """Whether the stored session still signs `user` in, as `django.contrib.auth.get_user` decides.

    Read-only: `get_user` also repairs what it reads (it flushes a session that no longer
    verifies, and re-keys one signed with a fallback secret); those writes are left to the
    browser's next request, which makes them anyway.
    """
    if not session_key:
        return False
    # Loaded afresh by its key: a session signed out since is gone from the store, and its
    # cache entry with it. Through the configured engine, so it is the cache the handshake
    # just filled that answers, without a query.
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        # Stored as a string, as `_get_user_session_key` reads it.
        user_id = user._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return False
    if user_id != user.pk or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return False
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    return constant_time_compare(session_hash, user.get_session_auth_hash()) or any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )

"""The cookies, session and user of a websocket (what Channels' `AuthMiddlewareStack` gives a
socket), in one layer, with frames sent straight to the server.

Channels' stack is three middlewares, each copying the scope and staying suspended, with its own
copy, for as long as the socket is open (~3 KiB a socket on the benchmark's server). Its
`SessionMiddleware` also wraps `send` so that a modified session is saved when an HTTP response
starts; a websocket never sends one, so for a socket the wrapper only looks at the session
(through a lazy object) on every frame and passes it on, ~7 µs a frame on the benchmark's
machine (a streamed reply sends one frame per two or three words). It serves websockets only
(`companion.asgi` routes nothing else through it).

The user is resolved once, at the handshake, and `session_signs_in` asks again later, of the
stored session rather than the handshake's copy of it. Both decide as `django.contrib.auth.get_user`
does, a session signed with a secret of `SECRET_KEY_FALLBACKS` included, but only read: a socket
has no response to carry a re-keyed session's new cookie, so the repairs `get_user` makes (a
flush, a new key) are left to the browser's next request, which makes them anyway. (Channels'
own resolver flushes a session signed with a fallback secret: after a secret rotation, a chat
page reconnecting its socket would have signed its browser out.)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.http.cookie import parse_cookie
from django.utils.crypto import constant_time_compare

from companion import dbthread
from companion.compiled import Compiled, columns, instance


class WebsocketAuthMiddleware:
    """Puts `cookies`, `session` and `user` in a websocket's scope, as Channels' stack does (the
    user itself rather than a lazy object standing for it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(f"WebsocketAuthMiddleware serves websockets, not {scope['type']!r}")
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                cookies = parse_cookie(value.decode("latin1"))
                break
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session = store(cookies.get(settings.SESSION_COOKIE_NAME))
        user = await dbthread.run(session_user, session)
        scope = dict(scope, cookies=cookies, session=session, user=user)
        return await self.inner(scope, receive, send)


def websocket_auth_stack(inner: Any) -> WebsocketAuthMiddleware:
    """Cookies, session and user, as `channels.auth.AuthMiddlewareStack` gives them."""
    return WebsocketAuthMiddleware(inner)


def session_user(session: SessionBase) -> AbstractBaseUser | AnonymousUser:
    """The user `session` signs in, or an anonymous one."""
    signed_in = _signed_in(session)
    if signed_in is None:
        return AnonymousUser()
    user_id, backend_path = signed_in
    user = _backend_user(load_backend(backend_path), user_id)
    if user is None or not _hash_verifies(session, user):
        return AnonymousUser()
    return user


def _backend_user(backend: Any, user_id: Any) -> AbstractBaseUser | None:
    """`backend.get_user(user_id)`. Django's own, which allauth's backend keeps, is run as one
    compiled statement: built by the ORM for every handshake, its query cost more than the rest
    of reading the session."""
    if type(backend).get_user is not ModelBackend.get_user:
        found: AbstractBaseUser | None = backend.get_user(user_id)
        return found
    rows = _user_row.rows(user_id=user_id)
    user = instance(get_user_model(), rows[0]) if rows else None
    return user if user is not None and backend.user_can_authenticate(user) else None


_user_row = Compiled(
    lambda user_id: (
        get_user_model()
        ._default_manager.filter(pk=user_id)
        .values_list(*columns(get_user_model()))
        .query
    ),
    user_id=918_273_661,
)


def session_signs_in(*, session_key: str | None, user: AbstractBaseUser) -> bool:
    """Whether the stored session still signs `user` in."""
    if not session_key:
        return False
    # Loaded afresh by its key: a session signed out since is gone from the store, and its
    # cache entry with it (the stores this project configures can revoke a session; a signed
    # cookie could not). With `cached_db`, the cache the handshake just filled answers.
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    signed_in = _signed_in(session)
    return signed_in is not None and signed_in[0] == user.pk and _hash_verifies(session, user)


def _signed_in(session: SessionBase) -> tuple[Any, str] | None:
    """The user id and authentication backend a session names, if it names a usable pair."""
    try:
        # Stored as a string, as `_get_user_session_key` reads it.
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except (KeyError, TypeError, ValueError, ValidationError):
        return None  # not signed in, or not by this server: no crash over a session's contents
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    return user_id, backend_path


def _hash_verifies(session: SessionBase, user: AbstractBaseUser) -> bool:
    """The session was made with the user's current password, under the secret or a fallback."""
    if not hasattr(user, "get_session_auth_hash"):
        return True  # as Django: a backend's user without passwords has no hash to compare
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    return constant_time_compare(session_hash, user.get_session_auth_hash()) or any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )

"""A websocket's session and user, resolved without wrapping the socket's frames; and asked
again, of the stored session, when the socket connects."""

import asyncio
import gc
import tracemalloc
from importlib import import_module
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.urls import reverse

from companion.wsauth import session_signs_in, session_user, websocket_auth_stack
from tests.admin_pages import logged_in
from tests.factories import make_session, make_session_cookie, make_user, session_key_of

pytestmark = pytest.mark.django_db(transaction=True)


async def through_the_stack(cookie: str | None, kind: str = "websocket") -> dict[str, Any]:
    """Call the stack around an app that keeps what it was given."""
    seen: dict[str, Any] = {}

    async def app(scope, receive, send):
        seen["user"] = scope["user"]  # the user itself, not a lazy object standing for it
        seen["session"] = scope["session"]
        seen["send"] = send

    async def server_send(message):  # pragma: no cover - never called
        raise AssertionError(message)

    headers = [(b"cookie", cookie.encode())] if cookie else []
    scope = {"type": kind, "path": "/ws/", "headers": headers}
    await websocket_auth_stack(app)(scope, None, server_send)
    seen["server_send"] = server_send
    return seen


async def test_each_session_resolves_to_its_own_user_and_frames_go_straight_out():
    owner, other = [await database_sync_to_async(make_user)(name) for name in ("owner", "other")]
    for user in (owner, other):
        cookie = await database_sync_to_async(make_session_cookie)(user)
        seen = await through_the_stack(cookie)
        assert seen["user"].pk == user.pk
        assert seen["session"].session_key == cookie.split("=", 1)[1]
        assert seen["send"] is seen["server_send"]


async def test_no_or_a_forged_session_is_anonymous():
    for cookie in (None, "sessionid=forged"):
        seen = await through_the_stack(cookie)
        assert isinstance(seen["user"], AnonymousUser)


async def test_a_handshake_after_a_secret_rotation_signs_in_and_signs_no_one_out(settings):
    owner = await database_sync_to_async(make_user)("owner")
    cookie = await database_sync_to_async(make_session_cookie)(owner)
    key = cookie.split("=", 1)[1]
    retired = settings.SECRET_KEY
    settings.SECRET_KEY = "a-new-secret-" + "x" * 50

    # The retired secret is not a fallback: nobody is signed in, and the session is kept (a
    # socket has no response to carry what a repair of it would change).
    assert isinstance((await through_the_stack(cookie))["user"], AnonymousUser)
    assert await database_sync_to_async(stored_session_exists)(key)

    settings.SECRET_KEY_FALLBACKS = [retired]
    seen = await through_the_stack(cookie)
    assert seen["user"].pk == owner.pk
    assert await database_sync_to_async(stored_session_exists)(key)


def stored_session_exists(key: str) -> bool:
    return bool(import_module(django_settings.SESSION_ENGINE).SessionStore().exists(key))


async def test_a_session_naming_no_user_of_this_server_is_anonymous():
    @database_sync_to_async
    def cookie_naming(user_id: str) -> str:
        session = import_module(django_settings.SESSION_ENGINE).SessionStore()
        session[SESSION_KEY] = user_id
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = "whatever"
        session.save()
        return f"{django_settings.SESSION_COOKIE_NAME}={session.session_key}"

    for user_id in ("not-a-number", "987654"):
        seen = await through_the_stack(await cookie_naming(user_id))
        assert isinstance(seen["user"], AnonymousUser)


async def test_a_connection_that_is_not_a_websocket_is_refused_loudly():
    owner = await database_sync_to_async(make_user)("owner")
    cookie = await database_sync_to_async(make_session_cookie)(owner)
    with pytest.raises(ValueError, match="serves websockets"):
        await through_the_stack(cookie, "http")


def test_a_stored_session_signs_in_its_own_user_and_no_other(django_assert_num_queries):
    owner, other = make_user("owner"), make_user("other")
    key = session_key_of(owner)

    with django_assert_num_queries(0):  # read from the cache its save filled
        assert session_signs_in(session_key=key, user=owner)
    assert not session_signs_in(session_key=key, user=other)
    assert not session_signs_in(session_key=session_key_of(other), user=owner)
    cache.clear()
    with django_assert_num_queries(1):
        assert session_signs_in(session_key=key, user=owner)


def test_a_signed_out_missing_or_forged_session_signs_in_no_one():
    owner = make_user("owner")
    browser = logged_in(owner)
    key = browser.session.session_key

    assert browser.post(reverse("account_logout")).status_code == 302

    for gone in (key, "forged", "", None):
        assert not session_signs_in(session_key=gone, user=owner)


def test_a_password_change_signs_the_session_out_until_its_hash_is_brought_along():
    owner = make_user("owner")
    key = session_key_of(owner)

    owner.set_password("brand-new-phrase-77")
    owner.save()

    assert not session_signs_in(session_key=key, user=owner)
    session = import_module(django_settings.SESSION_ENGINE).SessionStore(key)
    session[HASH_SESSION_KEY] = owner.get_session_auth_hash()  # as `update_session_auth_hash`
    session.save()
    assert session_signs_in(session_key=key, user=owner)


def test_a_session_of_a_retired_secret_signs_in_while_that_secret_is_a_fallback(settings):
    owner = make_user("owner")
    key = session_key_of(owner)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-" + "x" * 50

    assert session_signs_in(session_key=key, user=owner)
    settings.SECRET_KEY_FALLBACKS = []
    assert not session_signs_in(session_key=key, user=owner)


def test_a_session_of_a_backend_no_longer_configured_signs_in_no_one(settings):
    owner = make_user("owner")
    key = session_key_of(owner)  # signed in through ModelBackend
    settings.AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]

    assert not session_signs_in(session_key=key, user=owner)


class OneUserBackend(ModelBackend):
    """A backend with a `get_user` of its own: it knows only the user named "chosen"."""

    def get_user(self, user_id: Any) -> Any:
        user = super().get_user(user_id)
        return user if user is not None and user.get_username() == "chosen" else None


def test_the_handshakes_user_is_read_as_django_reads_it_for_either_configured_backend(
    django_assert_num_queries,
):
    owner, other = make_user("owner"), make_user("other")
    for backend in django_settings.AUTHENTICATION_BACKENDS:
        for user in (owner, other):
            session = make_session(user, backend)
            with django_assert_num_queries(1):  # the session is in the cache; the user is read
                found = session_user(session)
            assert isinstance(found, type(user))
            assert (found.pk, found.get_username(), found.password) == (
                user.pk,
                user.get_username(),
                user.password,
            )
    other.is_active = False
    other.save()
    assert isinstance(
        session_user(make_session(other, "django.contrib.auth.backends.ModelBackend")),
        AnonymousUser,
    )


def test_a_backend_with_its_own_get_user_is_asked(settings):
    backend = f"{__name__}.OneUserBackend"
    settings.AUTHENTICATION_BACKENDS = [backend]
    chosen, other = make_user("chosen"), make_user("other")

    assert session_user(make_session(chosen, backend)) == chosen
    assert isinstance(session_user(make_session(other, backend)), AnonymousUser)


async def held_by_open_sockets(stack: Any, cookie: str, count: int) -> int:
    """Bytes `count` sockets' handshakes through `stack` leave held while the sockets are open
    (their applications waiting, as an open socket's consumer waits)."""
    reached = 0
    closing = asyncio.Event()

    async def app(scope, receive, send):
        nonlocal reached
        reached += 1
        await closing.wait()

    async def send(message):  # pragma: no cover - never called
        raise AssertionError(message)

    application = stack(app)

    def scope() -> dict[str, Any]:
        return {"type": "websocket", "path": "/ws/", "headers": [(b"cookie", cookie.encode())]}

    async def until_reached(count: int, tasks: list[asyncio.Task[Any]]) -> None:
        async with asyncio.timeout(10):
            while reached < count:
                for task in tasks:
                    if task.done():
                        task.result()  # a stack that failed says why
                await asyncio.sleep(0.01)

    warm = asyncio.create_task(application(scope(), None, send))  # caches filled
    await until_reached(1, [warm])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sockets = [asyncio.create_task(application(scope(), None, send)) for _ in range(count)]
        await until_reached(count + 1, sockets)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        closing.set()
        await asyncio.gather(warm, *sockets)
    return held


async def test_an_open_socket_holds_less_than_under_channels_stack():
    owner = await database_sync_to_async(make_user)("owner")
    cookie = await database_sync_to_async(make_session_cookie)(owner)

    ours = await held_by_open_sockets(websocket_auth_stack, cookie, 100)
    channels = await held_by_open_sockets(AuthMiddlewareStack, cookie, 100)

    # One layer and one copy of the scope, against Channels' three of each (~2.1 KiB here).
    assert channels - ours > 100 * 1500, (ours, channels)

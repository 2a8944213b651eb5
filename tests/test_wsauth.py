"""A websocket's session and user, resolved without wrapping the socket's frames."""

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from companion.wsauth import websocket_auth_stack
from tests.factories import make_session_cookie, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def through_the_stack(cookie: str | None, kind: str = "websocket") -> dict[str, Any]:
    """Call the stack around an app that keeps what it was given."""
    seen: dict[str, Any] = {}

    async def app(scope, receive, send):
        seen["user"] = scope["user"]._wrapped
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
        assert seen["send"] is seen["server_send"]


async def test_no_or_a_forged_session_is_anonymous():
    for cookie in (None, "sessionid=forged"):
        seen = await through_the_stack(cookie)
        assert isinstance(seen["user"], AnonymousUser)


async def test_other_connections_keep_the_session_saving_wrapper():
    owner = await database_sync_to_async(make_user)("owner")
    seen = await through_the_stack(await database_sync_to_async(make_session_cookie)(owner), "http")
    assert seen["user"].pk == owner.pk
    assert seen["send"] is not seen["server_send"]

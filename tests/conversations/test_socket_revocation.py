"""Open sockets close when HTTP would refuse their browser: a password changed (by its owner, a
reset, an admin, a shell), an account deactivated, a conversation deleted; and so does a socket
whose user was revoked between its handshake and its joining the user's group."""

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.signals import user_logged_out
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse

from companion.asgi import application
from companion.layers import LocalChannelLayer
from conversations.models import Conversation
from conversations.services.conversations import conversation_create, conversation_delete
from conversations.signout import SESSION_ID_KEY, user_group
from tests.admin_pages import logged_in
from tests.conversations.chat_helpers import (
    ORIGIN,
    collect_until,
    send,
    send_message,
    synced,
)
from tests.factories import PASSWORD, make_character, make_user

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "brand-new-phrase-77"


# A browser that signed in, with its session cookie.
signed_in_client = database_sync_to_async(logged_in)


def cookie_of(client):
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


async def socket_with_cookie(client, conversation):
    """A socket opened with that browser's cookie, accepted (what follows is its own)."""
    headers = [
        (b"origin", ORIGIN),
        (b"host", b"127.0.0.1"),
        (b"cookie", cookie_of(client).encode()),
    ]
    ws = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/", headers=headers
    )
    assert (await ws.connect(timeout=5))[0]
    return ws


async def socket_of(client, conversation):
    """A synced socket opened with that browser's cookie."""
    ws = await socket_with_cookie(client, conversation)
    await send(ws, type="sync", after_seq=0)
    assert (await collect_until(ws, "sync.state"))[-1]["type"] == "sync.state"
    return ws


async def closed_with(ws, timeout=3):
    """The close code, skipping the events that came before it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        output = await ws.receive_output(timeout=max(deadline - loop.time(), 0.01))
        if output["type"] == "websocket.close":
            return output["code"]


async def still_chatting(ws):
    await send_message(ws, "[[words=2]] still here")
    assert (await collect_until(ws, "reply.completed"))[-1]["content"] == "word1 word2"


@database_sync_to_async
def new_conversation(owner):
    return conversation_create(owner=owner, character=make_character(name="Aria"))


@database_sync_to_async
def change_password(client):
    return client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )


async def test_a_password_change_closes_the_other_sessions_sockets_and_keeps_its_own(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    changing = await signed_in_client(owner)
    mine = await socket_of(changing, conversation)
    stolen, _ = await synced(conversation.pk, owner)  # a session made elsewhere (a thief's)

    assert (await change_password(changing)).status_code == 302

    assert await closed_with(stolen) == 4401
    await still_chatting(mine)
    # The change gave that browser a new session key; its socket is still that session's.
    assert (await sync_to_async(changing.post)(reverse("account_logout"))).status_code == 302
    assert await closed_with(mine) == 4401


@database_sync_to_async
def forget_session_id(client):
    """As a session signed in before sessions carried an id."""
    session = client.session
    del session[SESSION_ID_KEY]
    session.save()


async def test_a_session_older_than_its_id_keeps_its_sockets_through_a_password_change(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    changing = await signed_in_client(owner)
    await forget_session_id(changing)
    mine = await socket_of(changing, conversation)

    assert (await change_password(changing)).status_code == 302

    await still_chatting(mine)
    assert (await sync_to_async(changing.post)(reverse("account_logout"))).status_code == 302
    assert await closed_with(mine) == 4401


async def test_another_users_password_change_leaves_my_sockets_open(m2her):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    alices = await new_conversation(alice)
    bobs = await new_conversation(bob)
    alice_ws, _ = await synced(alices.pk, alice)
    bob_ws, _ = await synced(bobs.pk, bob)

    assert (await change_password(await signed_in_client(bob))).status_code == 302

    assert await closed_with(bob_ws) == 4401
    assert await alice_ws.receive_nothing(timeout=0.2)
    await still_chatting(alice_ws)
    await alice_ws.disconnect()


async def test_a_password_set_outside_allauth_closes_every_socket_of_the_user(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    one, _ = await synced(conversation.pk, owner)
    signed_in = await signed_in_client(owner)
    two = await socket_of(signed_in, conversation)

    def set_password():  # as `changepassword` and the admin's password form do
        owner.set_password(NEW_PASSWORD)
        owner.save()

    await database_sync_to_async(set_password)()

    assert await closed_with(one) == 4401
    assert await closed_with(two) == 4401


async def test_an_admin_changing_a_users_password_closes_that_users_sockets(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    admin = await database_sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    conversation = await new_conversation(owner)
    admins_conversation = await new_conversation(admin)
    ws, _ = await synced(conversation.pk, owner)
    admin_client = await signed_in_client(admin)
    admin_ws = await socket_of(admin_client, admins_conversation)

    response = await sync_to_async(admin_client.post)(
        reverse("admin:auth_user_password_change", args=[owner.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )

    assert response.status_code == 302
    assert await closed_with(ws) == 4401
    assert await admin_ws.receive_nothing(timeout=0.2)
    await admin_ws.disconnect()


async def test_a_password_reset_closes_every_socket_of_the_user(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    ws, _ = await synced(conversation.pk, owner)

    def reset():
        client = Client()
        client.post(reverse("account_reset_password"), {"email": owner.email})
        link = re.search(
            r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", str(mail.outbox[-1].body)
        )
        assert link is not None
        form_page = client.get(link.group(1), follow=True)
        return client.post(
            form_page.redirect_chain[-1][0] if form_page.redirect_chain else link.group(1),
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )

    assert (await sync_to_async(reset)()).status_code == 302
    assert await closed_with(ws) == 4401


async def test_deactivating_an_account_closes_all_its_sockets_with_4403(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    other = await database_sync_to_async(make_user)("bob")
    conversation = await new_conversation(owner)
    others_conversation = await new_conversation(other)
    one, _ = await synced(conversation.pk, owner)
    two = await socket_of(await signed_in_client(owner), conversation)
    others, _ = await synced(others_conversation.pk, other)

    def deactivate():
        owner.is_active = False
        owner.save()

    await database_sync_to_async(deactivate)()

    assert await closed_with(one) == 4403
    assert await closed_with(two) == 4403
    await still_chatting(others)
    await others.disconnect()


async def test_a_password_change_goes_through_when_the_layer_is_unreachable(
    m2her, settings, caplog
):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.UnreachableSharedLayer"}
    }
    owner = await database_sync_to_async(make_user)("alice")
    client = await signed_in_client(owner)
    get_channel_layer().down = True

    assert (await change_password(client)).status_code == 302

    assert await database_sync_to_async(
        lambda: Client().login(username="alice", password=NEW_PASSWORD)
    )()
    assert "could not close the sockets of user" in caplog.text


async def model_stream_closed(request):
    """The fake model's stream was closed by the app, not read to its end."""
    for _ in range(50):
        if request.disconnected:
            break
        await asyncio.sleep(0.1)
    assert request.disconnected
    assert not request.completed


@database_sync_to_async
def delete_conversation(client, conversation):
    return client.post(reverse("conversations:list"), {"delete": str(conversation.pk)})


async def test_deleting_a_conversation_mid_reply_stops_the_model_and_closes_its_sockets(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    kept = await new_conversation(owner)
    client = await signed_in_client(owner)
    ws = await socket_of(client, conversation)
    other_tab, _ = await synced(conversation.pk, owner)
    on_kept = await socket_of(client, kept)
    await send_message(ws, "[[words=60]][[tps=20]] a long one")
    await collect_until(ws, "reply.delta")

    assert (await delete_conversation(client, conversation)).status_code == 302

    assert await closed_with(ws) == 4404
    assert await closed_with(other_tab) == 4404
    await model_stream_closed(m2her.requests[-1])
    assert not await database_sync_to_async(
        Conversation.objects.filter(pk=conversation.pk).exists
    )()
    await still_chatting(on_kept)
    await on_kept.disconnect()


async def test_deleting_a_conversation_goes_through_when_the_layer_is_unreachable(
    m2her, settings, caplog
):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_fanout.UnreachableSharedLayer"}
    }
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    client = await signed_in_client(owner)
    ws = await socket_of(client, conversation)
    await send_message(ws, "[[words=60]][[tps=20]] a long one")
    await collect_until(ws, "reply.delta")
    get_channel_layer().down = True

    assert (await delete_conversation(client, conversation)).status_code == 302

    # This process's reply is stopped directly; the socket finds out at its next frame.
    await model_stream_closed(m2her.requests[-1])
    assert "could not close the sockets of deleted conversation" in caplog.text
    await send(ws, type="sync", after_seq=0)
    assert await closed_with(ws) == 4404


async def test_an_admin_deleting_a_conversation_mid_reply_stops_it_and_closes_its_sockets(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    admin = await database_sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    conversation = await new_conversation(owner)
    ws, _ = await synced(conversation.pk, owner)
    await send_message(ws, "[[words=60]][[tps=20]] a long one")
    await collect_until(ws, "reply.delta")
    client = await signed_in_client(admin)

    url = reverse("admin:conversations_conversation_delete", args=[conversation.pk])
    response = await sync_to_async(client.post)(url, {"post": "yes"})

    assert response.status_code == 302
    assert await closed_with(ws) == 4404
    await model_stream_closed(m2her.requests[-1])


async def test_deleting_a_user_closes_the_sockets_of_their_conversations(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    other = await database_sync_to_async(make_user)("bob")
    admin = await database_sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    conversation = await new_conversation(owner)
    ws, _ = await synced(conversation.pk, owner)
    bobs, _ = await synced((await new_conversation(other)).pk, other)
    client = await signed_in_client(admin)

    url = reverse("admin:auth_user_delete", args=[owner.pk])
    response = await sync_to_async(client.post)(url, {"post": "yes"})

    assert response.status_code == 302
    assert await closed_with(ws) == 4404
    await still_chatting(bobs)
    await bobs.disconnect()


class JoinWindowLayer(LocalChannelLayer):
    """The in-process layer, with a hook in the window between the handshake that resolved a
    socket's user and the socket's joining that user's group: `in_window(group, step)` runs
    `step` (a coroutine function) there, once, when a socket next joins `group`; with
    `joined=True`, right after the join instead."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.windows = {}

    def in_window(self, group, step, *, joined=False):
        self.windows[group] = (step, joined)

    async def group_add(self, group, channel):
        step, joined = self.windows.pop(group, (None, False))
        if step is not None and not joined:
            await step()
        await super().group_add(group, channel)
        if step is not None and joined:
            await step()


@pytest.fixture
def join_window(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "tests.conversations.test_socket_revocation.JoinWindowLayer"}
    }
    return get_channel_layer()


@database_sync_to_async
def sign_out(client):
    return client.post(reverse("account_logout"))


@dataclass
class Chat:
    owner: Any
    conversation: Conversation
    browser: Client


@pytest.fixture
async def alices_chat(m2her):
    owner = await database_sync_to_async(make_user)("alice")
    return Chat(owner, await new_conversation(owner), await signed_in_client(owner))


async def closed_when_joining_after(join_window, chat, step):
    """The close code of a socket of `chat`'s browser whose joining its user's group comes just
    after `step`."""
    join_window.in_window(user_group(chat.owner.pk), step)
    return await closed_with(await socket_with_cookie(chat.browser, chat.conversation))


async def test_a_sign_out_before_the_socket_joins_its_group_closes_it(alices_chat, join_window):
    async def sign_that_browser_out():
        assert (await sign_out(alices_chat.browser)).status_code == 302

    assert await closed_when_joining_after(join_window, alices_chat, sign_that_browser_out) == 4401


async def test_a_password_change_before_the_socket_joins_its_group_closes_it(
    alices_chat, join_window
):
    elsewhere = await signed_in_client(alices_chat.owner)

    async def change_it_elsewhere():
        assert (await change_password(elsewhere)).status_code == 302

    assert await closed_when_joining_after(join_window, alices_chat, change_it_elsewhere) == 4401


async def test_a_password_set_outside_allauth_before_the_socket_joins_closes_it(
    alices_chat, join_window
):
    @database_sync_to_async
    def set_password():  # as `changepassword` and the admin's password form do
        alices_chat.owner.set_password(NEW_PASSWORD)
        alices_chat.owner.save()

    assert await closed_when_joining_after(join_window, alices_chat, set_password) == 4401


async def test_a_deactivation_before_the_socket_joins_its_group_closes_it_with_4403(
    alices_chat, join_window
):
    @database_sync_to_async
    def deactivate():
        alices_chat.owner.is_active = False
        alices_chat.owner.save()

    assert await closed_when_joining_after(join_window, alices_chat, deactivate) == 4403


async def test_a_deleted_conversation_before_the_socket_joins_its_group_closes_it_with_4404(
    alices_chat, join_window
):
    def delete():
        return database_sync_to_async(conversation_delete)(
            owner=alices_chat.owner, conversation=alices_chat.conversation
        )

    assert await closed_when_joining_after(join_window, alices_chat, delete) == 4404


async def test_a_deactivation_just_after_the_socket_joined_closes_it_once_and_quietly(
    m2her, join_window
):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)

    @database_sync_to_async
    def deactivate():
        owner.is_active = False
        owner.save()

    # Both reach the socket: its own read refuses it, and the close message follows.
    join_window.in_window(user_group(owner.pk), deactivate, joined=True)
    ws = await socket_with_cookie(await signed_in_client(owner), conversation)

    assert await closed_with(ws) == 4403
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()  # raises what the consumer raised, if anything


async def test_its_own_sessions_password_change_before_the_socket_joins_refuses_it_until_reload(
    m2her, join_window
):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    browser = await signed_in_client(owner)

    async def change_it_in_another_tab():
        assert (await change_password(browser)).status_code == 302

    join_window.in_window(user_group(owner.pk), change_it_in_another_tab)
    ws = await socket_with_cookie(browser, conversation)

    # The socket knows its session by the key the change retired: refused as signed out...
    assert await closed_with(ws) == 4401
    # ...and the reloaded page's socket, with the key the change gave that browser, gets in.
    await still_chatting(await socket_of(browser, conversation))


async def test_another_users_revocation_as_a_socket_joins_leaves_it_open(m2her, join_window):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    alices = await new_conversation(alice)
    bobs_browser = await signed_in_client(bob)

    async def bob_signs_out_and_loses_his_password():
        assert (await change_password(await signed_in_client(bob))).status_code == 302
        assert (await sign_out(bobs_browser)).status_code == 302

    join_window.in_window(user_group(alice.pk), bob_signs_out_and_loses_his_password)
    ws = await socket_of(await signed_in_client(alice), alices)
    await still_chatting(ws)
    # Bob, signed in again with his new password, is still refused Alice's conversation.
    await database_sync_to_async(bob.refresh_from_db)()
    bobs_ws = await socket_with_cookie(await signed_in_client(bob), alices)
    assert await closed_with(bobs_ws) == 4404
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_socket_that_joins_while_a_sign_out_is_telling_the_sockets_is_refused(
    m2her, join_window
):
    owner = await database_sync_to_async(make_user)("alice")
    conversation = await new_conversation(owner)
    browser = await signed_in_client(owner)
    may_join = asyncio.Event()
    join_window.in_window(user_group(owner.pk), may_join.wait)
    ws = await socket_with_cookie(browser, conversation)
    first = {}

    def join_now(sender, request, user=None, **kwargs):
        # Connected after the app's own receiver: its close message has gone out, and Django
        # has not yet flushed the session.
        async def let_it_join_and_settle():
            may_join.set()
            await send(ws, type="sync", after_seq=0)  # answered once `connect` is done
            return await ws.receive_output(timeout=5)

        first["output"] = async_to_sync(let_it_join_and_settle)()

    def sign_out_off_the_orm_thread():
        # The socket's own reads run on the ORM's thread meanwhile.
        try:
            return browser.post(reverse("account_logout"))
        finally:
            connection.close()  # this thread's

    user_logged_out.connect(join_now)
    try:
        response = await sync_to_async(sign_out_off_the_orm_thread, thread_sensitive=False)()
    finally:
        user_logged_out.disconnect(join_now)

    assert response.status_code == 302
    assert first["output"] == {"type": "websocket.close", "code": 4401}


async def test_a_refused_socket_leaves_its_users_group(m2her, join_window):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    alices = await new_conversation(alice)
    joined = asyncio.Event()

    async def note_the_join():
        joined.set()

    join_window.in_window(user_group(bob.pk), note_the_join, joined=True)
    ws = await socket_with_cookie(await signed_in_client(bob), alices)

    assert await closed_with(ws) == 4404
    assert joined.is_set()  # it was in the group before it was refused
    await ws.disconnect()
    assert not join_window.groups.get(user_group(bob.pk))

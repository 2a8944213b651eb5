"""Open sockets close when HTTP would refuse their browser: a password changed (by its owner, a
reset, an admin, a shell), an account deactivated, a conversation deleted."""

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from companion.asgi import application
from conversations.models import Conversation
from conversations.services.conversations import conversation_create
from conversations.signout import SESSION_ID_KEY
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


@database_sync_to_async
def signed_in_client(user):
    """A browser that signed in, and its session cookie."""
    client = Client()
    client.force_login(user)
    return client


def cookie_of(client):
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


async def socket_of(client, conversation):
    """A synced socket opened with that browser's cookie."""
    headers = [
        (b"origin", ORIGIN),
        (b"host", b"127.0.0.1"),
        (b"cookie", cookie_of(client).encode()),
    ]
    ws = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/", headers=headers
    )
    assert (await ws.connect(timeout=5))[0]
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

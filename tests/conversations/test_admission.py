"""What a socket is let in to when it connects: the user's conversation, while the user is
active and the socket's session still signs them in."""

import uuid

import pytest
from django.core.cache import cache
from django.urls import reverse

from conversations.admission import conversation_id_for_socket
from conversations.exceptions import SocketRefused
from conversations.signout import CLOSE_NOT_ALLOWED, CLOSE_NOT_FOUND, CLOSE_SIGNED_OUT
from tests.admin_pages import logged_in
from tests.factories import make_conversation, session_key_of

pytestmark = pytest.mark.django_db


def refusal(conversation_id, user_id, session_key):
    with pytest.raises(SocketRefused) as refused:
        conversation_id_for_socket(
            conversation_id=conversation_id, user_id=user_id, session_key=session_key
        )
    return refused.value.code


def test_my_conversation_is_let_in_with_one_query_while_my_session_is_cached(
    alice, django_assert_num_queries
):
    conversation = make_conversation(alice)
    key = session_key_of(alice)
    asked = {"conversation_id": conversation.pk, "user_id": alice.pk, "session_key": key}

    with django_assert_num_queries(1):
        assert conversation_id_for_socket(**asked) == conversation.pk
    cache.clear()
    with django_assert_num_queries(2):  # the session from the database
        assert conversation_id_for_socket(**asked) == conversation.pk


def test_another_users_or_a_missing_conversation_is_refused_as_not_found(alice, bob):
    conversation = make_conversation(alice)
    bobs_key = session_key_of(bob)

    for conversation_id in (conversation.pk, uuid.uuid4()):
        assert refusal(conversation_id, bob.pk, bobs_key) == CLOSE_NOT_FOUND
    # Bob's session does not sign Alice in, on her own conversation either.
    assert refusal(conversation.pk, alice.pk, bobs_key) == CLOSE_SIGNED_OUT


def test_a_deactivated_owner_is_refused_as_not_allowed(alice):
    conversation = make_conversation(alice)
    key = session_key_of(alice)
    alice.is_active = False
    alice.save()

    assert refusal(conversation.pk, alice.pk, key) == CLOSE_NOT_ALLOWED


def test_a_session_signed_out_or_behind_a_password_change_is_refused_as_signed_out(alice):
    conversation = make_conversation(alice)
    browser = logged_in(alice)
    signed_out = browser.session.session_key
    assert browser.post(reverse("account_logout")).status_code == 302
    outdated = session_key_of(alice)
    alice.set_password("brand-new-phrase-77")
    alice.save()

    for key in (signed_out, outdated, None):
        assert refusal(conversation.pk, alice.pk, key) == CLOSE_SIGNED_OUT

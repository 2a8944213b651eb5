from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from characters.management.roles import creator_grant
from conversations.models import Conversation, Role, Turn
from tests.factories import make_character, make_user

CHANGELIST = reverse("admin:conversations_conversation_changelist")
TURNS = reverse("admin:conversations_turn_changelist")


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def make_conversation(owner, *, title, usage=()):
    """A conversation whose assistant turns report the given (prompt, completion, cost) usage."""
    conversation = Conversation.objects.create(
        owner=owner, character=make_character(owner), title=title
    )
    for seq, (prompt, completion, cost) in enumerate(usage, start=1):
        Turn.objects.create(
            conversation=conversation,
            seq=seq,
            updated_seq=seq,
            role=Role.ASSISTANT,
            name="Aria",
            content=f"Reply {seq} of {title}",
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
        )
    return conversation


def operator(user):
    """A staff user allowed to view conversations and turns, but not a superuser."""
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_conversation", "change_conversation", "view_turn"]
        )
    )
    return user


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True, is_superuser=True)


def test_superuser_sees_every_conversation_with_its_usage(alice, bob, root):
    make_conversation(
        alice,
        title="Alice's chat",
        usage=[(1000, 200, Decimal("0.00054")), (1500, 100, Decimal("0.00057"))],
    )
    make_conversation(bob, title="Bob's chat", usage=[(800, 50, None)])

    response = logged_in(root).get(CHANGELIST)

    rows = {c.title: c for c in response.context["cl"].result_list}
    assert set(rows) == {"Alice's chat", "Bob's chat"}
    assert rows["Alice's chat"].prompt_tokens_total == 2500
    assert rows["Alice's chat"].completion_tokens_total == 300
    assert "$0.0011" in response.text
    assert "—" in response.text  # Bob's turns carry no cost yet


def test_staff_operator_sees_only_their_own_conversations(alice, bob):
    mine = make_conversation(operator(alice), title="Alice's chat", usage=[(10, 5, None)])
    theirs = make_conversation(bob, title="Bob's chat", usage=[(10, 5, None)])
    client = logged_in(alice)

    listed = client.get(CHANGELIST)
    other = client.get(
        reverse("admin:conversations_conversation_change", args=[theirs.pk]), follow=True
    )
    turns = client.get(TURNS)
    their_turn = theirs.turns.get()
    other_turn = client.get(
        reverse("admin:conversations_turn_change", args=[their_turn.pk]), follow=True
    )

    assert list(listed.context["cl"].result_list) == [mine]
    assert other.redirect_chain[0] == (reverse("admin:index"), 302)
    assert "Bob&#x27;s chat" not in other.text
    assert [t.conversation_id for t in turns.context["cl"].result_list] == [mine.pk]
    assert other_turn.redirect_chain[0] == (reverse("admin:index"), 302)
    assert "Reply 1 of Bob" not in other_turn.text


def test_staff_operator_cannot_rename_another_users_conversation(alice, bob):
    operator(alice)
    theirs = make_conversation(bob, title="Bob's chat")

    logged_in(alice).post(
        reverse("admin:conversations_conversation_change", args=[theirs.pk]), {"title": "Mine"}
    )

    theirs.refresh_from_db()
    assert theirs.title == "Bob's chat"


def test_creators_have_no_conversation_admin(alice, bob):
    creator_grant(username="alice")
    make_conversation(bob, title="Bob's chat")

    client = logged_in(alice)

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(TURNS).status_code == 403


def test_conversations_are_read_mostly_even_for_superusers(alice, root):
    conversation = make_conversation(alice, title="Alice's chat", usage=[(10, 5, None)])
    turn = conversation.turns.get()
    client = logged_in(root)

    assert client.get(reverse("admin:conversations_conversation_add")).status_code == 403
    response = client.post(
        reverse("admin:conversations_turn_change", args=[turn.pk]), {"content": "Rewritten"}
    )
    assert response.status_code == 403
    turn.refresh_from_db()
    assert turn.content == "Reply 1 of Alice's chat"


def test_conversation_page_links_to_its_turns(alice, bob, root):
    conversation = make_conversation(alice, title="Alice's chat", usage=[(1, 1, None)] * 2)
    make_conversation(bob, title="Bob's chat", usage=[(1, 1, None)])
    client = logged_in(root)

    page = client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))
    link = f"{TURNS}?conversation__id__exact={conversation.pk}"
    turns = client.get(link)

    assert link in page.text
    assert "2 turns" in page.text
    assert turns.status_code == 200
    assert {t.conversation_id for t in turns.context["cl"].result_list} == {conversation.pk}

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from characters.management.roles import creator_grant
from conversations.models import Conversation, Role, Turn
from tests.admin_pages import logged_in, view_on_site_url
from tests.factories import make_character, make_user

CHANGELIST = reverse("admin:conversations_conversation_changelist")
TURNS = reverse("admin:conversations_turn_changelist")


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


def test_the_changelist_counts_replies_that_reported_only_a_total(alice, bob, root):
    chat = make_conversation(alice, title="Native chat", usage=[(None, None, None)])
    Turn.objects.filter(conversation=chat).update(total_tokens=321)
    make_conversation(bob, title="Bob's chat", usage=[(800, 50, None)])
    Turn.objects.filter(conversation__title="Bob's chat").update(total_tokens=850)

    response = logged_in(root).get(CHANGELIST)

    rows = {c.title: c for c in response.context["cl"].result_list}
    assert rows["Native chat"].total_tokens_total == 321
    assert rows["Bob's chat"].total_tokens_total == 850
    assert "Total tokens" in response.text


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


def delete_url(conversation):
    return reverse("admin:conversations_conversation_delete", args=[conversation.pk])


def test_superuser_deletes_a_conversation_with_its_turns(alice, root):
    conversation = make_conversation(alice, title="Alice's chat", usage=[(1, 1, None)] * 2)
    client = logged_in(root)

    page = client.get(delete_url(conversation))
    response = client.post(delete_url(conversation), {"post": "yes"})

    assert page.status_code == 200
    assert not page.context["perms_lacking"]
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Turn.objects.filter(conversation_id=conversation.pk).exists()


def test_superuser_deletes_conversations_with_the_bulk_action(alice, bob, root):
    first = make_conversation(alice, title="Alice's chat", usage=[(1, 1, None)])
    second = make_conversation(bob, title="Bob's chat", usage=[(1, 1, None)])
    kept = make_conversation(bob, title="Bob's other chat", usage=[(1, 1, None)])
    selected = {"action": "delete_selected", "_selected_action": [first.pk, second.pk]}
    client = logged_in(root)

    confirm = client.post(CHANGELIST, selected)
    response = client.post(CHANGELIST, {**selected, "post": "yes"})

    assert confirm.status_code == 200
    assert not confirm.context["perms_lacking"]
    assert response.status_code == 302
    assert list(Conversation.objects.all()) == [kept]
    assert list(Turn.objects.values_list("conversation_id", flat=True)) == [kept.pk]


def test_superuser_deletes_a_user_with_their_conversations(alice, bob, root):
    bobs_character = make_character(bob)
    hers = Conversation.objects.create(owner=alice, character=bobs_character, title="Hers")
    Turn.objects.create(conversation=hers, seq=1, updated_seq=1, role=Role.USER, name="Al")
    his = make_conversation(bob, title="His", usage=[(1, 1, None)])
    url = reverse("admin:auth_user_delete", args=[alice.pk])
    client = logged_in(root)

    page = client.get(url)
    response = client.post(url, {"post": "yes"})

    assert not page.context["perms_lacking"]
    assert response.status_code == 302
    assert not get_user_model().objects.filter(pk=alice.pk).exists()
    assert not Turn.objects.filter(conversation_id=hers.pk).exists()
    assert list(Conversation.objects.all()) == [his]
    assert his.turns.count() == 1


def test_staff_operator_deletes_only_their_own_conversations(alice, bob):
    operator(alice).user_permissions.add(Permission.objects.get(codename="delete_conversation"))
    mine = make_conversation(alice, title="Alice's chat", usage=[(1, 1, None)])
    theirs = make_conversation(bob, title="Bob's chat", usage=[(1, 1, None)])
    client = logged_in(alice)

    refused = client.post(delete_url(theirs), {"post": "yes"}, follow=True)
    client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [theirs.pk], "post": "yes"},
    )
    deleted = client.post(delete_url(mine), {"post": "yes"})

    assert refused.redirect_chain[0] == (reverse("admin:index"), 302)
    assert "Bob&#x27;s chat" not in refused.text
    assert deleted.status_code == 302
    assert list(Conversation.objects.all()) == [theirs]
    assert theirs.turns.count() == 1


def test_a_turn_cannot_be_deleted_from_the_admin_even_by_a_superuser(alice, root):
    conversation = make_conversation(alice, title="Alice's chat", usage=[(1, 1, None)])
    turn = conversation.turns.get()
    turn_delete = reverse("admin:conversations_turn_delete", args=[turn.pk])
    client = logged_in(root)

    change_page = client.get(reverse("admin:conversations_turn_change", args=[turn.pk]))
    changelist = client.get(TURNS)
    page = client.get(turn_delete)
    posted = client.post(turn_delete, {"post": "yes"})
    client.post(TURNS, {"action": "delete_selected", "_selected_action": [turn.pk], "post": "yes"})

    assert change_page.status_code == 200
    assert turn_delete not in change_page.text
    assert "delete_selected" not in changelist.text
    assert page.status_code == 403
    assert posted.status_code == 403
    assert Turn.objects.filter(pk=turn.pk).exists()


def test_view_on_site_redirects_only_for_conversations_the_user_may_see(alice, bob, root):
    operator(alice)
    mine = make_conversation(alice, title="Alice's chat")
    theirs = make_conversation(bob, title="Bob's chat")
    content_type = ContentType.objects.get_for_model(Conversation).pk
    client = logged_in(alice)

    change_page = client.get(reverse("admin:conversations_conversation_change", args=[mine.pk]))
    own = client.get(view_on_site_url(mine))
    other = client.get(view_on_site_url(theirs))
    missing = client.get(f"/admin/r/{content_type}/{uuid.uuid4()}/")
    malformed = client.get(f"/admin/r/{content_type}/not-a-uuid/")
    as_root = logged_in(root).get(view_on_site_url(theirs))

    assert view_on_site_url(mine) in change_page.text
    assert own.status_code == 302
    assert own["Location"] == mine.get_absolute_url()
    assert as_root.status_code == 302
    assert as_root["Location"] == theirs.get_absolute_url()
    for response in (other, missing, malformed):
        assert response.status_code == 404
        assert "Location" not in response


def test_view_on_site_needs_the_conversation_admin(alice):
    creator_grant(username="alice")
    own = make_conversation(alice, title="Alice's chat")

    response = logged_in(alice).get(view_on_site_url(own))

    assert response.status_code == 404

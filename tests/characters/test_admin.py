import io
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from characters.management.roles import CREATOR_MODELS, CREATORS_GROUP
from characters.models import Character, SampleDialogue, Scene, Visibility
from conversations.models import Conversation, Turn
from tests.admin_pages import logged_in, view_on_site_url
from tests.characters.cards import corpus
from tests.factories import make_character, make_conversation, make_persona, make_user

CHANGELIST = reverse("admin:characters_character_changelist")
ADD = reverse("admin:characters_character_add")


def change_url(character):
    return reverse("admin:characters_character_change", args=[character.pk])


def preview_url(character):
    return reverse("admin:characters_character_prompt_preview", args=[character.pk])


@pytest.fixture
def alice_admin(creators):
    return logged_in(creators[0])


@pytest.fixture
def root(db):
    return make_user("root", is_staff=True, is_superuser=True)


def inline_management(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def character_form(**overrides):
    data = {
        "name": "Nova",
        "slug": "nova",
        "nickname": "",
        "tagline": "A calm navigator",
        "tags": "space, calm",
        "visibility": "public",
        "description": "{{char}} charts routes between stars.",
        "personality": "Calm.",
        "scenario": "",
        "greeting": "Hello, {{user}}.",
        "alternate_greetings": "Hi again.\r\n---\r\nWelcome aboard.",
        "system_prompt": "",
        "post_history_instructions": "",
        "default_temperature": "1.0",
        "default_top_p": "0.95",
        "default_max_tokens": "400",
        "creator": "",
        "character_version": "",
        "creator_notes": "",
        **inline_management("sample_dialogues", 0),
        **inline_management("scenes", 0),
        **inline_management("lorebook", 0),
    }
    data.update(overrides)
    return data


def form_for_existing(character, **overrides):
    """The change form as the browser would post it, with the existing inline rows."""
    samples = list(character.sample_dialogues.order_by("position", "id"))
    scenes = list(character.scenes.order_by("position", "id"))
    data = character_form(
        name=character.name,
        slug=character.slug,
        **inline_management("sample_dialogues", len(samples), len(samples)),
        **inline_management("scenes", len(scenes), len(scenes)),
    )
    for i, sample in enumerate(samples):
        prefix = f"sample_dialogues-{i}"
        data[f"{prefix}-id"] = str(sample.pk)
        data[f"{prefix}-character"] = str(character.pk)
        data[f"{prefix}-position"] = str(sample.position)
        data[f"{prefix}-user_line"] = sample.user_line
        data[f"{prefix}-character_line"] = sample.character_line
    for i, scene in enumerate(scenes):
        prefix = f"scenes-{i}"
        data[f"{prefix}-id"] = str(scene.pk)
        data[f"{prefix}-character"] = str(character.pk)
        data[f"{prefix}-name"] = scene.name
        data[f"{prefix}-position"] = str(scene.position)
        data[f"{prefix}-description"] = scene.description
        data[f"{prefix}-opening_line"] = scene.opening_line
    data.update(overrides)
    return data


def test_creator_lists_only_their_own_characters(creators, alice_admin):
    alice, bob = creators
    mine = make_character(alice, name="Alpha")
    make_character(bob, name="Bravo")

    response = alice_admin.get(CHANGELIST)

    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [mine]
    assert "Bravo" not in response.text


def test_creator_search_finds_own_characters_by_tag(creators, alice_admin):
    alice, bob = creators
    tagged = make_character(alice, name="Alpha", tags=["noir"])
    make_character(alice, name="Plain", tags=["cozy"])
    make_character(bob, name="Bravo", tags=["noir"])

    response = alice_admin.get(CHANGELIST, {"q": "noir"})

    assert list(response.context["cl"].queryset) == [tagged]


def test_creator_cannot_open_another_creators_character(creators, alice_admin):
    _, bob = creators
    theirs = make_character(bob, name="Bravo", description="Bob's secret notes")

    for url in (
        change_url(theirs),
        reverse("admin:characters_character_delete", args=[theirs.pk]),
        reverse("admin:characters_character_history", args=[theirs.pk]),
    ):
        response = alice_admin.get(url, follow=True)
        assert response.redirect_chain[0] == (reverse("admin:index"), 302)
        assert "doesn’t exist" in response.text
        assert "Bob&#x27;s secret notes" not in response.text
    assert alice_admin.get(preview_url(theirs)).status_code == 404


def test_creator_cannot_edit_or_delete_another_creators_character_by_post(creators, alice_admin):
    _, bob = creators
    theirs = make_character(bob, name="Bravo")

    alice_admin.post(change_url(theirs), form_for_existing(theirs, name="Hijacked"))
    alice_admin.post(
        reverse("admin:characters_character_delete", args=[theirs.pk]), {"post": "yes"}
    )

    theirs.refresh_from_db()
    assert theirs.name == "Bravo"
    assert theirs.owner == bob


def test_superuser_sees_every_creators_characters(creators, root):
    alice, bob = creators
    make_character(alice, name="Alpha")
    make_character(bob, name="Bravo")

    response = logged_in(root).get(CHANGELIST)

    assert {c.name for c in response.context["cl"].queryset} == {"Alpha", "Bravo"}


def test_staff_outside_the_creators_group_gets_no_character_admin(db):
    staff = make_user("clerk", is_staff=True)

    assert logged_in(staff).get(CHANGELIST).status_code == 403


def test_creating_a_character_with_inlines_makes_the_creator_its_owner(creators, alice_admin):
    alice, bob = creators
    data = character_form(
        owner=str(bob.pk),  # not a field creators get: must be ignored
        **inline_management("sample_dialogues", 2),
        **inline_management("scenes", 1),
        **{
            "sample_dialogues-0-position": "0",
            "sample_dialogues-0-user_line": "Where are we?",
            "sample_dialogues-0-character_line": "Between two stars, {{user}}.",
            "sample_dialogues-1-position": "1",
            "sample_dialogues-1-user_line": "Are we lost?",
            "sample_dialogues-1-character_line": "Never.",
            "scenes-0-name": "The bridge",
            "scenes-0-position": "0",
            "scenes-0-description": "Screens glow blue.",
            "scenes-0-opening_line": "*Nova turns.* Course set.",
        },
    )

    response = alice_admin.post(ADD, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    nova = Character.objects.get(slug="nova")
    assert nova.owner == alice
    assert nova.tags == ["space", "calm"]
    assert nova.alternate_greetings == ["Hi again.", "Welcome aboard."]
    assert [s.user_line for s in nova.sample_dialogues.all()] == ["Where are we?", "Are we lost?"]
    assert [s.name for s in nova.scenes.all()] == ["The bridge"]


def png_upload(name):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "purple").save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


def test_an_uploaded_avatar_gets_a_random_name(creators, alice_admin, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    for name in ("Nova", "Vega"):
        data = character_form(name=name, slug=name.lower(), avatar=png_upload("avatar.png"))

        response = alice_admin.post(ADD, data)

        assert response.status_code == 302, response.context["adminform"].form.errors
    stored = [c.avatar.name for c in Character.objects.order_by("slug")]
    for name in stored:
        # Media is served by path: the upload's own name would be guessable.
        assert re.fullmatch(r"avatars/\d{4}/\d{2}/[0-9a-f]{32}\.png", name)
    assert stored[0] != stored[1]
    assert (tmp_path / stored[0]).is_file()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("face.jpg", corpus.truncated_jpeg(), "The file is not a readable image."),
        ("face.png", corpus.png_with_odd_chunk(), "save it again from an image editor"),
    ],
)
def test_an_avatar_that_does_not_decode_is_refused_with_a_form_error(
    creators, alice_admin, settings, tmp_path, name, data, message
):
    settings.MEDIA_ROOT = tmp_path
    nova = make_character(creators[0], name="Nova", slug="nova")
    upload = SimpleUploadedFile(name, data, content_type="image/jpeg")

    response = alice_admin.post(change_url(nova), form_for_existing(nova, avatar=upload))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["avatar"]
    assert message in errors["avatar"][0]
    nova.refresh_from_db()
    assert not nova.avatar
    assert not any(tmp_path.rglob("*.*"))


def test_a_stored_avatar_that_does_not_decode_is_reported_until_replaced_or_cleared(
    creators, alice_admin, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    nova = make_character(creators[0], name="Nova", slug="nova")
    nova.avatar.save("old.jpg", ContentFile(corpus.truncated_jpeg()))  # accepted long ago

    kept = alice_admin.post(change_url(nova), form_for_existing(nova, tagline="New"))
    cleared = alice_admin.post(
        change_url(nova), form_for_existing(nova, tagline="New", **{"avatar-clear": "on"})
    )

    assert kept.status_code == 200
    assert list(kept.context["adminform"].form.errors) == ["avatar"]
    assert cleared.status_code == 302
    nova.refresh_from_db()
    assert (nova.avatar.name, nova.tagline) == ("", "New")


def test_add_form_shows_clear_errors_for_bad_input(creators, alice_admin):
    data = character_form(
        slug="not a slug!", tags=", ".join(f"t{i}" for i in range(101)), default_top_p="2"
    )

    response = alice_admin.post(ADD, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"slug", "tags", "default_top_p"}
    assert "At most 100 items." in errors["tags"]
    assert not Character.objects.exists()


def test_swapping_sample_positions_in_one_save_reorders_them(creators, alice_admin):
    alice, _ = creators
    character = make_character(alice, samples=2)
    first, second = character.sample_dialogues.all()

    response = alice_admin.post(
        change_url(character),
        form_for_existing(
            character, **{"sample_dialogues-0-position": "1", "sample_dialogues-1-position": "0"}
        ),
    )

    assert response.status_code == 302
    assert list(character.sample_dialogues.all()) == [second, first]


def test_inline_rows_of_another_creators_character_cannot_be_edited(creators, alice_admin):
    alice, bob = creators
    mine = make_character(alice, samples=1)
    theirs = make_character(bob, samples=1)
    their_sample = theirs.sample_dialogues.get()
    data = form_for_existing(mine)
    data["sample_dialogues-0-id"] = str(their_sample.pk)
    data["sample_dialogues-0-user_line"] = "Hijacked"

    response = alice_admin.post(change_url(mine), data)

    assert response.status_code in (200, 302)
    their_sample.refresh_from_db()
    assert their_sample.user_line != "Hijacked"
    assert list(theirs.sample_dialogues.all()) == [their_sample]
    assert mine.sample_dialogues.count() == 1


def roles_in(response):
    return re.findall(r'class="prompt-message" data-role="([a-z_]+)"', response.text)


def test_prompt_preview_shows_the_canonical_message_order(creators, alice_admin):
    alice, _ = creators
    character = make_character(alice, samples=2, scenes=1)
    make_persona(alice, name="Captain Sam", is_default=True)

    response = alice_admin.get(preview_url(character))

    assert response.status_code == 200
    assert roles_in(response) == [
        "system",
        "user_system",
        "group",
        "sample_message_user",
        "sample_message_ai",
        "sample_message_user",
        "sample_message_ai",
        "assistant",
        "user",
    ]
    assert "Captain Sam" in response.text
    result = response.context["result"]
    assert f"<strong>{result.estimated_tokens}</strong>" in response.text
    assert str(result.budget_tokens) in response.text
    assert "Prompt preview" in alice_admin.get(change_url(character)).text


def test_prompt_preview_escapes_author_text(creators, alice_admin):
    alice, _ = creators
    character = make_character(
        alice,
        name="<b>Eve</b>",
        slug="eve",
        description="<script>alert('x')</script> lives here.",
        greeting='<img src=x onerror="alert(1)">',
    )

    response = alice_admin.get(preview_url(character))

    assert response.status_code == 200
    assert "<script>alert(" not in response.text
    assert "<img src=x" not in response.text
    assert "<b>Eve</b>" not in response.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in response.text


def test_prompt_preview_scene_can_be_chosen_or_left_out(creators, alice_admin):
    alice, bob = creators
    character = make_character(alice, scenes=2)
    second = character.scenes.all()[1]
    their_scene = make_character(bob).scenes.get()

    chosen = alice_admin.get(preview_url(character), {"scene": second.pk})
    without = alice_admin.get(preview_url(character), {"scene": "none"})

    assert chosen.context["scene"] == second
    assert "group" not in roles_in(without)
    assert alice_admin.get(preview_url(character), {"scene": their_scene.pk}).status_code == 404
    assert alice_admin.get(preview_url(character), {"scene": "abc"}).status_code == 404


def test_prompt_preview_reports_trimmed_samples(creators, alice_admin, settings):
    settings.M2HER_CONTEXT_TOKENS = 1024
    alice, _ = creators
    character = make_character(alice, samples=0)
    for position in range(3):
        SampleDialogue.objects.create(
            character=character,
            position=position,
            user_line="Tell me everything. " * 60,
            character_line="Everything? " * 60,
        )

    response = alice_admin.get(preview_url(character))

    assert response.context["result"].samples_trimmed > 0
    assert "trimmed: history comes first" in response.text
    assert roles_in(response).count("sample_message_user") < 3


@pytest.mark.parametrize(
    ("words", "said"),
    [(40, None), (580, "the reply is limited to"), (1800, "fails as too long")],
)
def test_prompt_preview_says_what_an_over_long_card_does_to_the_reply(
    creators, alice_admin, bob, settings, words, said
):
    settings.M2HER_CONTEXT_TOKENS = 2048
    alice, _ = creators
    character = make_character(alice, description=" ".join(["lighthouse"] * words))

    response = alice_admin.get(preview_url(character))

    assert response.status_code == 200
    notes = [
        note for note in ("the reply is limited to", "fails as too long") if note in response.text
    ]
    assert notes == ([said] if said else [])
    if said == "the reply is limited to":
        assert 64 <= response.context["reply_limit"] < 400
    assert alice_admin.get(preview_url(make_character(bob))).status_code == 404


def test_persona_admin_is_for_superusers_only(creators, alice_admin, root, bob):
    persona = make_persona(bob, name="Bob's secret self")
    url = reverse("admin:characters_persona_change", args=[persona.pk])

    assert alice_admin.get(reverse("admin:characters_persona_changelist")).status_code == 403
    assert alice_admin.get(url).status_code == 403
    assert logged_in(root).get(url).status_code == 200


def test_setup_roles_gives_creators_authoring_permissions_only(db, capsys):
    call_command("setup_roles")
    call_command("setup_roles")

    group = Group.objects.get(name=CREATORS_GROUP)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {
        f"{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("character", "sampledialogue", "scene")
    } <= codenames
    assert not {c for c in codenames if c.endswith(("persona", "conversation", "turn", "user"))}
    assert Group.objects.filter(name=CREATORS_GROUP).count() == 1
    assert f"{len(CREATOR_MODELS) * 4} permissions" in capsys.readouterr().out


def test_setup_roles_refreshes_a_group_edited_by_hand(db):
    call_command("setup_roles")
    group = Group.objects.get(name=CREATORS_GROUP)
    group.permissions.add(Permission.objects.get(codename="view_persona"))

    call_command("setup_roles")

    assert not group.permissions.filter(codename="view_persona").exists()


def test_setup_roles_can_make_a_user_a_creator(alice):
    call_command("setup_roles", "--creator", "alice")

    alice.refresh_from_db()
    assert alice.is_staff
    assert alice.groups.filter(name=CREATORS_GROUP).exists()
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("setup_roles", "--creator", "nobody")


def test_deleting_a_scene_inline_keeps_other_scenes(creators, alice_admin):
    alice, _ = creators
    character = make_character(alice, scenes=2)
    _, second = character.scenes.all()

    response = alice_admin.post(
        change_url(character), form_for_existing(character, **{"scenes-0-DELETE": "on"})
    )

    assert response.status_code == 302
    assert list(Scene.objects.filter(character=character)) == [second]


def delete_url(character):
    return reverse("admin:characters_character_delete", args=[character.pk])


def test_creator_deletes_own_character_with_own_test_chats(creators, alice_admin):
    alice, bob = creators
    mine = make_character(alice, name="Nova")
    chat = make_conversation(alice, mine)
    kept = make_character(bob, name="Bravo")

    page = alice_admin.get(delete_url(mine))
    response = alice_admin.post(delete_url(mine), {"post": "yes"})

    assert page.status_code == 200
    assert not page.context["perms_lacking"]
    assert not page.context["protected"]
    assert response.status_code == 302
    assert list(Character.objects.all()) == [kept]
    assert not Conversation.objects.filter(pk=chat.pk).exists()
    assert not Turn.objects.filter(conversation_id=chat.pk).exists()


def test_creator_cannot_delete_a_character_other_users_chat_with(creators, alice_admin):
    alice, bob = creators
    mine = make_character(alice, name="Nova")
    make_conversation(alice, mine)
    theirs = make_conversation(bob, mine)
    Conversation.objects.filter(pk=theirs.pk).update(title="Bob's secret story")
    selected = {"action": "delete_selected", "_selected_action": [mine.pk]}

    page = alice_admin.get(delete_url(mine))
    posted = alice_admin.post(delete_url(mine), {"post": "yes"})
    confirm = alice_admin.post(CHANGELIST, selected)
    bulk = alice_admin.post(CHANGELIST, {**selected, "post": "yes"})

    for response in (page, posted, confirm, bulk):
        assert response.status_code == 200
        assert "Cannot delete character" in response.text
        assert "1 conversation of other users" in response.text
        assert "Set the visibility to Private" in response.text
        assert "Bob&#x27;s secret story" not in response.text
        assert not response.context["perms_lacking"]
    assert Character.objects.filter(pk=mine.pk).exists()
    assert Conversation.objects.filter(character=mine).count() == 2
    assert theirs.turns.exists()


def test_superuser_may_delete_a_character_other_users_chat_with(creators, root):
    alice, bob = creators
    character = make_character(alice, name="Nova")
    theirs = make_conversation(bob, character)
    client = logged_in(root)

    page = client.get(delete_url(character))
    response = client.post(delete_url(character), {"post": "yes"})

    assert not page.context["perms_lacking"]
    assert not page.context["protected"]
    assert str(theirs) in page.text  # the operator sees which chats go
    assert response.status_code == 302
    assert not Character.objects.filter(pk=character.pk).exists()
    assert not Conversation.objects.filter(pk=theirs.pk).exists()


def test_view_on_site_redirects_only_for_characters_the_user_may_edit(creators, alice_admin, root):
    alice, bob = creators
    mine = make_character(alice, name="Nova", visibility=Visibility.PRIVATE)
    secret = make_character(
        bob, name="Bravo", visibility=Visibility.PRIVATE, slug="bobs-secret-draft"
    )
    content_type = ContentType.objects.get_for_model(Character).pk
    no_admin = ContentType.objects.get_for_model(Session).pk

    change_page = alice_admin.get(change_url(mine))
    own = alice_admin.get(view_on_site_url(mine))
    followed = alice_admin.get(view_on_site_url(mine), follow=True)
    as_root = logged_in(root).get(view_on_site_url(secret))
    refused = [
        alice_admin.get(url)
        for url in (
            view_on_site_url(secret),
            f"/admin/r/{content_type}/999999/",
            f"/admin/r/{content_type}/not-a-number/",
            f"/admin/r/{content_type}/99999999999999999999999/",
            f"/admin/r/999999/{mine.pk}/",
            f"/admin/r/not-a-number/{mine.pk}/",
            f"/admin/r/{no_admin}/{mine.pk}/",
        )
    ]

    assert view_on_site_url(mine) in change_page.text
    assert own.status_code == 302
    assert own["Location"] == mine.get_absolute_url()
    assert followed.status_code == 200
    assert as_root["Location"] == secret.get_absolute_url()
    for response in refused:
        assert response.status_code == 404
        assert "Location" not in response
        assert "bobs-secret-draft" not in response.text

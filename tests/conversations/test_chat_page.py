import json
import re
import uuid
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.chat_views import CHAT_PAGE_TURNS
from conversations.models import Turn, TurnStatus
from conversations.services.conversations import conversation_create
from tests.factories import make_character, make_persona, make_turns

pytestmark = pytest.mark.django_db

XSS_GREETING = 'Hi <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> *waves*'


@pytest.fixture
def conversation(alice):
    character = make_character(name="Aria", greeting=XSS_GREETING)
    persona = make_persona(alice, name="Sam")
    return conversation_create(owner=alice, character=character, persona=persona)


def json_script(html: str, element_id: str):
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, f"no json_script #{element_id}"
    return json.loads(match.group(1))


class Elements(HTMLParser):
    """Every element of a page as (tag, attrs), and the text of its inline scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))


def test_owner_sees_the_greeting_rendered_with_the_character_and_persona(
    alice_client, conversation
):
    response = alice_client.get(conversation.get_absolute_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Aria</h1>" in html
    assert "You are Sam" in html
    assert "<em>waves</em>" in html
    assert 'id="composer-input"' in html
    assert "css/chat.css" in html
    assert "js/chat.js" in html


def test_another_users_conversation_is_a_404(client, bob, conversation):
    client.force_login(bob)

    response = client.get(conversation.get_absolute_url())

    assert response.status_code == 404
    assert "Aria" not in response.content.decode()


def test_a_missing_conversation_is_a_404(alice_client):
    response = alice_client.get(f"/chats/{uuid.uuid4()}/")

    assert response.status_code == 404


def test_anonymous_visitor_is_sent_to_log_in(client, conversation):
    response = client.get(conversation.get_absolute_url())

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_page_only_answers_get(alice_client, conversation):
    response = alice_client.post(conversation.get_absolute_url(), {"text": "hi"})

    assert response.status_code == 405


def test_markup_in_a_greeting_is_shown_as_text_never_as_html(alice_client, conversation):
    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    tags = [tag for tag, _ in Elements(html).elements]
    assert "img" not in tags
    assert "&lt;img src=x onerror=" in html
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in html


def test_turn_data_for_the_script_cannot_close_its_script_element(alice_client, alice):
    character = make_character(name="Aria", greeting="</script><script>window.__xss=3</script>")
    conversation = conversation_create(owner=alice, character=character)

    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    assert "<script>window.__xss=3" not in html
    turns = json_script(html, "chat-turns")
    assert turns[0]["content"] == "</script><script>window.__xss=3</script>"


def test_the_page_hands_the_script_its_conversation_and_last_seq(alice_client, conversation):
    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    config = json_script(html, "chat-config")
    assert config["conversation_id"] == str(conversation.pk)
    assert config["ws_path"] == f"/ws/conversations/{conversation.pk}/"
    assert config["turns_url"] == f"/api/conversations/{conversation.pk}/turns/"
    assert config["last_seq"] == conversation.last_seq
    assert config["has_more"] is False
    assert config["user_name"] == "Sam"
    turns = json_script(html, "chat-turns")
    assert [t["role"] for t in turns] == ["assistant"]
    assert turns[0]["content"] == XSS_GREETING


def test_the_page_has_no_inline_scripts_styles_or_handlers(alice_client, conversation):
    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    elements = Elements(html).elements
    inline_scripts = [attrs for tag, attrs in elements if tag == "script" and "src" not in attrs]
    assert inline_scripts, "the page should carry its data in json_script blocks"
    assert all(attrs.get("type") == "application/json" for attrs in inline_scripts)
    assert not [tag for tag, attrs in elements if "style" in attrs]
    assert not [(tag, attrs) for tag, attrs in elements if any(a.startswith("on") for a in attrs)]


def test_a_long_conversation_opens_with_only_its_newest_page(alice_client, conversation):
    make_turns(conversation, 5000, text="message number")

    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    turns = json_script(html, "chat-turns")
    assert len(turns) == CHAT_PAGE_TURNS
    assert turns[-1]["seq"] == conversation.last_seq
    assert [t["seq"] for t in turns] == sorted(t["seq"] for t in turns)
    assert html.count('class="turn turn-') == CHAT_PAGE_TURNS
    assert f"message number {conversation.last_seq}" in html
    assert "message number 2<" not in html
    assert json_script(html, "chat-config")["has_more"] is True
    replies = [t for t in turns if t["role"] == "assistant"]
    assert {(t["candidate_index"], t["candidate_count"]) for t in replies} == {(1, 1)}
    assert 'id="older"' in html
    assert 'id="older" hidden' not in html


def test_opening_a_5000_turn_conversation_takes_as_few_queries_as_a_short_one(
    alice_client, conversation, alice
):
    short = conversation_create(owner=alice, character=make_character(name="Bea"))
    with CaptureQueriesContext(connection) as short_queries:
        assert alice_client.get(short.get_absolute_url()).status_code == 200
    make_turns(conversation, 5000, text="message number")

    with CaptureQueriesContext(connection) as long_queries:
        assert alice_client.get(conversation.get_absolute_url()).status_code == 200

    assert len(long_queries) == len(short_queries)
    assert len(long_queries) <= 6


def test_last_seq_counts_numbers_a_finished_reply_used_past_the_conversation_row(
    alice_client, conversation
):
    greeting = Turn.objects.get(conversation=conversation, active=True)
    Turn.objects.filter(pk=greeting.pk).update(updated_seq=conversation.last_seq + 7)

    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    assert json_script(html, "chat-config")["last_seq"] == conversation.last_seq + 7


def test_a_streaming_reply_shows_as_typing_and_a_failed_one_shows_why(alice_client, conversation):
    make_turns(conversation, 4, text="message number")
    streaming, user, reply = Turn.objects.filter(conversation=conversation).order_by("-seq")[:3]
    Turn.objects.filter(pk=reply.pk).update(
        status=TurnStatus.FAILED,
        error_code="content_filtered",
        error_message="The provider refused this content.",
    )
    Turn.objects.filter(pk=streaming.pk).update(status=TurnStatus.STREAMING, content="")

    html = alice_client.get(conversation.get_absolute_url()).content.decode()

    assert f'id="turn-{streaming.pk}"' in html
    assert 'class="turn turn-assistant is-streaming"' in html
    assert "typing…" in html
    assert 'class="turn turn-assistant is-failed"' in html
    assert "The provider refused this content." in html
    assert "safety filter" in html
    turns = {t["id"]: t for t in json_script(html, "chat-turns")}
    assert turns[reply.pk]["error"] == {
        "code": "content_filtered",
        "message": "The provider refused this content.",
    }
    assert turns[user.pk]["role"] == "user"

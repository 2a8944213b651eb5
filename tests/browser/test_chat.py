"""The conversation page in a real browser: sign up, chat, stop, regenerate, reload, XSS, layout."""

from __future__ import annotations

import re
import time

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from characters.models import Character, Visibility
from conversations.models import Conversation, Role, Turn, TurnStatus
from conversations.services.conversations import conversation_create
from tests.browser.pages import (
    LONG,
    LONG_WORDS,
    REPLIES,
    REPLY_TIMEOUT,
    TURNS,
    XSS_IMG,
    XSS_SCRIPT,
    body_text,
    last_reply,
    log_in,
    open_chat,
    reply_complete,
    reply_streaming,
    send,
    squash,
    visible_turns,
)
from tests.factories import PASSWORD, make_character, make_turns, make_user

pytestmark = pytest.mark.browser


def test_a_visitor_signs_up_and_starts_a_demo_conversation(page: Page, server, page_watch):
    call_command("seed_demo", verbosity=0)
    character = Character.objects.filter(visibility=Visibility.PUBLIC).order_by("name").first()
    assert character is not None

    page.goto("/accounts/signup/")
    page.locator("#id_email").fill("carol@example.com")
    page.locator("#id_username").fill("carol")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.locator("form [type=submit]").last.click()
    page.wait_for_url(re.compile(r"^(?!.*/accounts/signup/).*$"))
    page.goto(character.get_absolute_url())
    page.get_by_role("button", name="Start chatting").click()

    page.wait_for_url(re.compile(r"/chats/[0-9a-f-]{36}/$"))
    expect(page.locator("#chat-conn")).to_have_attribute("data-state", "online")
    conversation = Conversation.objects.get(owner__username="carol")
    greeting = visible_turns(conversation)[0]
    assert greeting.role == Role.ASSISTANT
    expect(page.locator(TURNS)).to_have_count(1)
    assert body_text(page, greeting.pk) == squash(greeting.content)
    expect(page.locator("h1")).to_have_text(character.name)
    assert page_watch.errors == []


def test_a_reply_streams_in_word_by_word_and_completes(chat_page: Page, alice_chat):
    _, conversation = alice_chat

    send(chat_page, f"Tell me about this library. {LONG}")

    expect(chat_page.locator("#turns > li.turn-user").last).to_contain_text("Tell me about")
    reply = reply_streaming(chat_page, 2, min_chars=1)
    expect(chat_page.locator("#stop-button")).to_be_visible()
    seen = set()
    while "is-streaming" in (reply.get_attribute("class") or ""):
        seen.add(len(reply.locator(".turn-body").inner_text()))
        time.sleep(0.05)
    reply_complete(chat_page, 2)
    expect(chat_page.locator("#stop-button")).to_be_hidden()
    assert len(seen) >= 5, f"the reply did not arrive in pieces: {sorted(seen)}"
    turns = visible_turns(conversation)
    assert [(t.role, t.status) for t in turns] == [
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert turns[1].content == f"Tell me about this library. {LONG}"
    assert len(turns[2].content.split()) == LONG_WORDS
    assert body_text(chat_page, turns[2].pk) == squash(turns[2].content)
    expect(chat_page.locator(TURNS)).to_have_count(3)


def test_stopping_a_reply_keeps_the_text_so_far_and_marks_it_stopped(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, f"Say something long, please. {LONG}")
    reply = reply_streaming(chat_page, 2)

    chat_page.locator("#stop-button").click()

    expect(reply).to_have_class(re.compile(r"\bis-stopped\b"))
    expect(reply.locator(".turn-meta")).to_contain_text("stopped")
    expect(chat_page.locator("#stop-button")).to_be_hidden()
    stored = visible_turns(conversation)[-1]
    assert stored.status == TurnStatus.STOPPED
    assert 0 < len(stored.content.split()) < LONG_WORDS
    assert body_text(chat_page, stored.pk) == squash(stored.content)


def test_regenerating_keeps_every_candidate_and_the_arrows_page_through_them(
    chat_page: Page, alice_chat
):
    _, conversation = alice_chat
    send(chat_page, "Hello!")
    first = reply_complete(chat_page, 2)
    first_text = squash(first.locator(".turn-body").inner_text())

    first.get_by_role("button", name="Regenerate").click()

    second = last_reply(chat_page)
    expect(second.locator(".swipe-pos")).to_have_text("2/2", timeout=REPLY_TIMEOUT)
    reply_complete(chat_page, 2)
    second_text = squash(second.locator(".turn-body").inner_text())
    candidates = Turn.objects.filter(conversation=conversation, role=Role.ASSISTANT).exclude(
        parent=None
    )
    assert candidates.count() == 2
    assert [squash(t.content) for t in candidates.order_by("seq")] == [first_text, second_text]

    last_reply(chat_page).get_by_role("button", name="Previous candidate").click()
    expect(last_reply(chat_page).locator(".swipe-pos")).to_have_text("1/2")
    assert squash(last_reply(chat_page).locator(".turn-body").inner_text()) == first_text

    last_reply(chat_page).get_by_role("button", name="Next candidate").click()
    expect(last_reply(chat_page).locator(".swipe-pos")).to_have_text("2/2")
    assert squash(last_reply(chat_page).locator(".turn-body").inner_text()) == second_text
    assert visible_turns(conversation)[-1].content == list(candidates.order_by("seq"))[-1].content


def test_the_greetings_alternates_are_candidates_of_the_first_message(chat_page: Page):
    greeting = chat_page.locator(REPLIES).first
    expect(greeting.locator(".swipe-pos")).to_have_text("1/2")
    expect(greeting).to_contain_text("Oh, hello Sam!")

    greeting.get_by_role("button", name="Next candidate").click()

    expect(greeting.locator(".swipe-pos")).to_have_text("2/2")
    expect(chat_page.locator(REPLIES).first).to_contain_text("Back again, Sam?")


def test_reloading_in_the_middle_of_a_reply_shows_it_finish(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, f"Tell me a story. {LONG}")
    before = len(reply_streaming(chat_page, 2).locator(".turn-body").inner_text().split())

    chat_page.reload()

    expect(chat_page.locator("#chat-conn")).to_have_attribute("data-state", "online")
    during = reply_streaming(chat_page, 2, min_chars=1).locator(".turn-body").inner_text()
    assert len(during.split()) >= before
    reply_complete(chat_page, 2)
    stored = visible_turns(conversation)
    assert [t.role for t in stored] == ["assistant", "user", "assistant"]
    assert stored[-1].status == TurnStatus.COMPLETE
    assert len(stored[-1].content.split()) == LONG_WORDS
    expect(chat_page.locator(TURNS)).to_have_count(3)
    assert body_text(chat_page, stored[-1].pk) == squash(stored[-1].content)


def test_a_dropped_connection_reconnects_and_catches_up(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, f"Keep talking while I lose signal. {LONG}")
    reply_streaming(chat_page, 2)

    chat_page.evaluate("window.companion.chat.ws.close()")

    expect(chat_page.locator("#chat-conn")).to_have_attribute("data-state", "offline")
    expect(chat_page.locator("#chat-conn")).to_have_attribute("data-state", "online")
    reply_complete(chat_page, 2)
    stored = visible_turns(conversation)[-1]
    assert len(stored.content.split()) == LONG_WORDS
    assert body_text(chat_page, stored.pk) == squash(stored.content)


def test_a_message_sent_while_offline_goes_out_once_after_reconnecting(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    chat_page.context.set_offline(True)
    chat_page.evaluate("window.companion.chat.ws.close()")
    expect(chat_page.locator("#chat-conn")).to_have_attribute("data-state", "offline")

    send(chat_page, "Are you still there?")
    pending = chat_page.locator("#turns > li.is-pending")
    expect(pending).to_contain_text("Are you still there?")
    chat_page.context.set_offline(False)

    expect(pending).to_have_count(0, timeout=REPLY_TIMEOUT)
    reply_complete(chat_page, 2)
    users = Turn.objects.filter(conversation=conversation, role=Role.USER)
    assert [t.content for t in users] == ["Are you still there?"]
    expect(chat_page.locator("#turns > li.turn-user")).to_have_count(1)


def test_markup_in_a_greeting_and_a_message_is_shown_as_text_and_never_runs(
    page: Page, server, page_watch
):
    alice = make_user("alice")
    character = make_character(name="Mallory", greeting=f"Hi {XSS_IMG} {XSS_SCRIPT} *bows*")
    conversation = conversation_create(owner=alice, character=character)
    log_in(page, alice, server)
    open_chat(page, conversation)

    send(page, f"Look: {XSS_IMG} and {XSS_SCRIPT}")
    live_reply_text = reply_complete(page, 2).locator(".turn-body").inner_text()
    live_user_text = page.locator("#turns > li.turn-user .turn-body").inner_text()
    page.reload()
    expect(page.locator("#chat-conn")).to_have_attribute("data-state", "online")

    assert XSS_IMG in live_user_text
    assert XSS_SCRIPT in live_user_text
    # The fake model echoes the message: a model's reply is just as inert.
    assert XSS_IMG in live_reply_text
    assert XSS_IMG in page.locator(REPLIES).last.locator(".turn-body").inner_text()
    assert XSS_IMG in page.locator("#turns > li.turn-user .turn-body").inner_text()
    greeting = page.locator(REPLIES).first.locator(".turn-body")
    assert XSS_IMG in greeting.inner_text()
    assert XSS_SCRIPT in greeting.inner_text()
    expect(greeting.locator("em")).to_have_text("bows")
    expect(page.locator("#turns img, #turns script")).to_have_count(0)
    assert page.evaluate("window.__xss") is None
    assert page_watch.dialogs == []
    assert page_watch.errors == []
    assert not [e for e in page_watch.console_errors if "Content Security Policy" in e]


def test_the_page_fits_a_phone_and_a_desktop(new_page, server, alice_chat, artifacts, page_watch):
    alice, conversation = alice_chat
    Turn.objects.filter(conversation=conversation).update(
        content="*stretches* A-very-long-unbroken-word-" + "x" * 120 + " and then\nsome lines\n\n"
        "```\ncode that is wider than any phone screen could ever hope to show at once\n```"
    )
    for width, height in ((390, 844), (1280, 800)):
        page = new_page(width, height)
        log_in(page, alice, server)
        open_chat(page, conversation)
        send(page, "Short question?")
        reply_complete(page, 2 if width == 390 else 4)

        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"horizontal scroll at {width}px: {widths}"
        composer = page.locator("#composer").bounding_box()
        assert composer is not None
        assert abs(composer["y"] + composer["height"] - height) <= 1
        send_box = page.locator("#send-button").bounding_box()
        assert send_box is not None
        assert send_box["height"] >= 44
        assert send_box["width"] >= 44
        if width == 390:
            # A touch screen gets finger-sized actions under the messages too.
            action = last_reply(page).get_by_role("button", name="Regenerate").bounding_box()
            assert action is not None
            assert action["height"] >= 44
        page.screenshot(path=str(artifacts / f"chat-{width}.png"))
        if width == 390:
            send(page, f"And a long answer? {LONG}")
            reply_streaming(page, 3, min_chars=40)
            page.screenshot(path=str(artifacts / "chat-390-streaming.png"))
            page.locator("#stop-button").click()
            expect(page.locator("#stop-button")).to_be_hidden()
    assert not [e for e in page_watch.console_errors if "Content Security Policy" in e]
    assert page_watch.errors == []


def test_scrolling_up_loads_older_turns_and_offers_a_jump_to_latest(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    make_turns(conversation, 119, text="old message")
    chat_page.reload()
    expect(chat_page.locator("#chat-conn")).to_have_attribute("data-state", "online")
    expect(chat_page.locator(TURNS)).to_have_count(50)

    chat_page.locator("#transcript").evaluate("el => el.scrollTop = 0")

    expect(chat_page.locator(TURNS)).to_have_count(100)
    anchor = chat_page.locator("#turns > li", has_text="old message 71")
    expect(anchor).to_be_in_viewport()
    chat_page.locator("#transcript").evaluate("el => el.scrollTop = 0")
    expect(chat_page.locator(TURNS)).to_have_count(120)
    expect(chat_page.locator("#older")).to_be_hidden()

    send(chat_page, f"New message while I read old ones. {LONG}")
    reply_streaming(chat_page, 61, min_chars=1)
    chat_page.locator("#transcript").evaluate("el => el.scrollTop = 0")
    expect(chat_page.locator("#jump-latest")).to_be_visible()
    chat_page.locator("#jump-latest").click()
    expect(last_reply(chat_page)).to_be_in_viewport()
    expect(chat_page.locator("#jump-latest")).to_be_hidden()

"""Editing, deleting, continuing, failures and the composer's keys, in a real browser."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect

from conversations.models import Role, Turn, TurnStatus
from conversations.services.branches import turn_delete
from conversations.services.conversations import conversation_delete
from tests.browser.pages import (
    LONG,
    LONG_WORDS,
    REPLIES,
    REPLY_TIMEOUT,
    TURNS,
    body_text,
    log_in,
    open_chat,
    reply_complete,
    reply_streaming,
    send,
    squash,
    visible_turns,
)

pytestmark = pytest.mark.browser

USERS = "#turns > li.turn-user"


def test_enter_sends_and_shift_enter_starts_a_new_line(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    box = chat_page.locator("#composer-input")

    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    expect(chat_page.locator(USERS)).to_have_count(0)
    box.press("Enter")

    reply_complete(chat_page, 2)
    expect(box).to_have_value("")
    user = visible_turns(conversation)[1]
    assert user.content == "line one\nline two"
    assert chat_page.locator(f"#turn-{user.pk} .turn-body").inner_text() == "line one\nline two"


def test_editing_a_message_answers_the_new_text_and_keeps_the_old_branch(
    chat_page: Page, alice_chat, artifacts
):
    _, conversation = alice_chat
    send(chat_page, "I like tea.")
    reply_complete(chat_page, 2)
    old_user = visible_turns(conversation)[1]

    chat_page.locator(USERS).last.get_by_role("button", name="Edit").click()
    editor = chat_page.locator(USERS).last.locator("textarea.edit-input")
    expect(editor).to_have_value("I like tea.")
    editor.fill("I like coffee.")
    chat_page.screenshot(path=str(artifacts / "chat-390-editing.png"))
    chat_page.locator(USERS).last.get_by_role("button", name="Save and send").click()

    expect(chat_page.locator(USERS)).to_have_count(1)
    expect(chat_page.locator(USERS).last).to_contain_text("I like coffee.")
    reply = reply_complete(chat_page, 2)
    expect(reply).to_contain_text("You said: I like coffee.")
    turns = visible_turns(conversation)
    assert [t.content for t in turns[1:]] == ["I like coffee.", "You said: I like coffee."]
    old_user.refresh_from_db()
    assert old_user.active is False
    expect(chat_page.locator(TURNS)).to_have_count(3)


def test_editing_a_reply_replaces_its_text(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "Hello!")
    reply = reply_complete(chat_page, 2)

    reply.get_by_role("button", name="Edit").click()
    reply.locator("textarea.edit-input").fill("*nods* Better words.")
    reply.get_by_role("button", name="Save").click()

    expect(reply.locator(".turn-body em")).to_have_text("nods")
    expect(reply.locator(".turn-body")).to_have_text("nods Better words.")
    assert visible_turns(conversation)[-1].content == "*nods* Better words."


def test_deleting_a_message_asks_first_then_hides_it(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "Forget I said this.")
    reply_complete(chat_page, 2)
    user = chat_page.locator(USERS).last

    user.get_by_role("button", name="Delete").click()
    user.get_by_role("button", name="Keep").click()
    expect(chat_page.locator(USERS)).to_have_count(1)
    user.get_by_role("button", name="Delete").click()
    user.get_by_role("button", name="Delete").click()

    expect(chat_page.locator(USERS)).to_have_count(0)
    stored = Turn.objects.get(conversation=conversation, role=Role.USER)
    assert stored.active is False
    chat_page.reload()
    expect(chat_page.locator(USERS)).to_have_count(0)


def test_a_failed_reply_shows_why_and_retry_answers(chat_page: Page, alice_chat, artifacts):
    _, conversation = alice_chat
    send(chat_page, "Knock knock [[fail=1]][[auth]]")

    reply = chat_page.locator(REPLIES).nth(1)
    expect(reply).to_have_class(re.compile(r"\bis-failed\b"), timeout=REPLY_TIMEOUT)
    failed = visible_turns(conversation)[-1]
    assert failed.status == TurnStatus.FAILED
    expect(reply.locator(".turn-error")).to_have_text(failed.error_message)
    chat_page.screenshot(path=str(artifacts / "chat-390-failed.png"))
    reply.get_by_role("button", name="Retry").click()

    reply = reply_complete(chat_page, 2)
    expect(reply).to_contain_text("You said: Knock knock")
    expect(chat_page.locator(".turn-error")).to_have_count(0)


def test_a_refused_reply_explains_the_content_filter(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "Something the provider refuses [[input_flag]]")

    reply = chat_page.locator(REPLIES).nth(1)
    expect(reply).to_have_class(re.compile(r"\bis-failed\b"), timeout=REPLY_TIMEOUT)
    expect(reply.locator(".turn-hint")).to_contain_text("safety filter")
    failed = visible_turns(conversation)[-1]
    assert failed.error_code == "content_filtered"
    chat_page.reload()
    expect(chat_page.locator(REPLIES).nth(1).locator(".turn-hint")).to_contain_text("safety filter")


def test_a_reply_cut_at_the_length_limit_offers_to_continue(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "Go on and on [[length]]")
    reply = reply_complete(chat_page, 2)
    expect(reply.locator(".turn-meta")).to_contain_text("cut off")
    before = visible_turns(conversation)[-1]
    assert before.finish_reason == "length"

    continue_button = reply.get_by_role("button", name="Continue")
    expect(continue_button).to_have_class(re.compile(r"\bprimary\b"))
    continue_button.click()

    expect(reply).to_have_class(re.compile(r"\bis-streaming\b"), timeout=REPLY_TIMEOUT)
    expect(reply).to_have_class(re.compile(r"\bis-complete\b"), timeout=REPLY_TIMEOUT)
    after = visible_turns(conversation)[-1]
    assert after.content.startswith(before.content)
    assert len(after.content) > len(before.content)
    assert body_text(chat_page, after.pk) == squash(after.content)


def test_a_message_sent_while_a_reply_streams_waits_its_turn(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, f"First question. {LONG}")
    reply_streaming(chat_page, 2)

    send(chat_page, "Second question.")

    queued = chat_page.locator("#turns > li.is-pending")
    expect(queued).to_contain_text("queued")
    expect(queued).to_have_count(0, timeout=REPLY_TIMEOUT)
    reply_complete(chat_page, 3)
    expect(chat_page.locator(REPLIES).nth(2)).to_contain_text("You said: Second question.")
    users = [t.content for t in visible_turns(conversation) if t.role == Role.USER]
    assert users == [f"First question. {LONG}", "Second question."]
    assert len(visible_turns(conversation)[2].content.split()) == LONG_WORDS


def test_two_tabs_show_the_same_conversation_live(chat_page: Page, new_page, alice_chat):
    _, conversation = alice_chat
    other = new_page(context=chat_page.context)
    open_chat(other, conversation)

    send(chat_page, f"Both tabs should see this. {LONG}")

    reply_streaming(other, 2)
    expect(other.locator(USERS)).to_contain_text("Both tabs should see this.")
    reply_complete(other, 2)
    reply_complete(chat_page, 2)
    stored = visible_turns(conversation)[-1]
    assert body_text(other, stored.pk) == body_text(chat_page, stored.pk) == squash(stored.content)


def test_a_refused_edit_keeps_its_editor_and_its_text(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "I like tea.")
    reply_complete(chat_page, 2)
    user = chat_page.locator(f"#turn-{visible_turns(conversation)[1].pk}")
    user.get_by_role("button", name="Edit").click()
    editor = user.locator("textarea.edit-input")
    editor.fill("I like coffee.")
    send(chat_page, LONG)  # while this reply streams, the edit is refused as busy
    reply_streaming(chat_page, 3)
    user.get_by_role("button", name="Save and send").click()

    expect(user.locator(".turn-error")).to_contain_text("already being written")
    expect(editor).to_have_value("I like coffee.")
    expect(editor).to_be_enabled()
    assert [t.content for t in visible_turns(conversation)][1] == "I like tea."


def test_a_reply_may_be_edited_beyond_the_message_limit(chat_page: Page, alice_chat):
    send(chat_page, "Hello!")
    reply = reply_complete(chat_page, 2)
    reply.get_by_role("button", name="Edit").click()

    assert reply.locator("textarea.edit-input").get_attribute("maxlength") is None
    chat_page.locator(USERS).last.get_by_role("button", name="Edit").click()
    limit = chat_page.locator(USERS).last.locator("textarea.edit-input").get_attribute("maxlength")
    assert int(limit or 0) > 0


def test_a_reply_whose_last_event_was_lost_is_asked_about_after_stop(new_page, server, alice_chat):
    alice, conversation = alice_chat
    page = new_page()
    log_in(page, alice, server)

    def drop_outcomes(ws):
        upstream = ws.connect_to_server()

        def to_page(message):
            if '"type": "reply.completed"' not in str(
                message
            ) and '"type": "reply.stopped"' not in str(message):
                ws.send(message)

        upstream.on_message(to_page)

    page.route_web_socket(re.compile(r".*/ws/conversations/.*"), drop_outcomes)
    open_chat(page, conversation)
    send(page, LONG)
    reply_streaming(page, 2)
    page.locator("#stop-button").click()

    # The outcome never reaches the page; the sync after Stop brings it.
    expect(page.locator(REPLIES).last).not_to_have_class(re.compile("is-streaming"), timeout=10_000)
    expect(page.locator("#stop-button")).to_be_hidden()
    stored = visible_turns(conversation)[-1]
    assert stored.status == TurnStatus.STOPPED
    assert squash(body_text(page, stored.pk)) == squash(stored.content)


def test_a_message_the_server_can_no_longer_take_goes_back_to_the_composer(
    chat_page: Page, alice_chat
):
    alice, conversation = alice_chat
    # In another tab, say: a request's thread, not this one, which drives the browser's loop.
    with ThreadPoolExecutor(max_workers=1) as tab:
        tab.submit(conversation_delete, owner=alice, conversation=conversation).result()
    send(chat_page, "Are you still there?")

    expect(chat_page.locator("#chat-conn")).to_have_text("This conversation is not available.")
    box = chat_page.locator("#composer-input")
    expect(box).to_have_value("Are you still there?")
    expect(box).to_have_attribute("readonly", "")
    expect(chat_page.locator("#turns > li.is-pending")).to_have_count(0)
    box.press("Enter")  # nothing can be sent now: the text stays where it can be copied
    expect(box).to_have_value("Are you still there?")
    expect(chat_page.locator("#turns > li.is-pending")).to_have_count(0)


def test_no_other_action_goes_out_while_a_message_is_on_its_way(chat_page: Page, alice_chat):
    # Otherwise an error for the message could be taken for the action's, leaving the message
    # "sending…" for good.
    acted = chat_page.evaluate(
        """() => {
          const chat = window.companion.chat;
          chat.input.value = "a\\u0000b";
          chat.submit();
          return chat.act({ type: "reply.continue" });
        }"""
    )

    assert acted is False
    pending = chat_page.locator("#turns > li.is-pending")
    expect(pending).to_contain_text("not sent")
    expect(pending.get_by_role("button", name="Discard")).to_be_visible()


def test_a_resent_message_whose_turn_was_hidden_since_is_let_go(chat_page: Page, alice_chat):
    _, conversation = alice_chat
    send(chat_page, "Hello there")
    reply_complete(chat_page, 2)
    user = visible_turns(conversation)[1]
    turn_delete(conversation_id=conversation.pk, turn_id=user.pk)  # from another tab, say

    # A page that never saw it confirmed (its event was lost) sends it again.
    chat_page.evaluate(
        """(clientId) => {
          const chat = window.companion.chat;
          chat.outbox.push({ clientId, text: "Hello there", error: null, busyCount: 0 });
          chat.flushOutbox();
        }""",
        str(user.client_id),
    )

    expect(chat_page.locator("#turns > li.is-pending")).to_have_count(0)
    expect(chat_page.locator(f"#turn-{user.pk}")).to_have_count(0)
    send(chat_page, "Still here?")
    expect(chat_page.locator(REPLIES).last).to_contain_text("Still here?", timeout=REPLY_TIMEOUT)
    users = Turn.objects.filter(conversation=conversation, role=Role.USER)
    assert [t.content for t in users.order_by("seq")] == ["Hello there", "Still here?"]


def test_a_sync_answered_from_the_stored_row_keeps_the_text_already_shown(
    chat_page: Page, alice_chat
):
    send(chat_page, LONG)
    reply_streaming(chat_page, 2, min_chars=20)

    # What the server answers when no runner gave a snapshot: the stored row, still empty.
    shown, kept = chat_page.evaluate(
        """() => {
          const chat = window.companion.chat;
          const turn = chat.turns.get(chat.streamingId);
          const shown = turn.content;
          chat.onSyncState({
            type: "sync.state", seq: chat.lastSeq, turns: [], complete: true,
            streaming: { turn_id: turn.id, name: turn.name, content: "" },
          });
          return [shown, chat.turns.get(turn.id).content];
        }"""
    )

    assert len(shown) >= 20
    assert kept.startswith(shown)

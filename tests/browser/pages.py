"""Helpers for driving the conversation page: log in, send, wait for replies, compare text."""

from __future__ import annotations

import re
import time

from django.test import Client
from playwright.sync_api import Locator, Page, expect

from conversations.models import Conversation, Turn

XSS_IMG = '<img src=x onerror="window.__xss=1;alert(1)">'
# The fake model echoes the last message; this marker makes it answer with N numbered words,
# which at the harness's pacing takes several seconds: time to stop, reload or disconnect.
LONG_WORDS = 120
LONG = f"[[words={LONG_WORDS}]]"
XSS_SCRIPT = "<script>window.__xss=2;alert(2)</script>"
REPLY_TIMEOUT = 60_000

TURNS = "#turns > li.turn"
REPLIES = "#turns > li.turn-assistant"


def log_in(page: Page, user, server) -> None:
    """Put a real session cookie for `user` into the page's browser context."""
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": server.url}]
    )


def open_chat(page: Page, conversation: Conversation) -> None:
    page.goto(conversation.get_absolute_url())
    expect(page.locator("#chat-conn")).to_have_attribute("data-state", "online")


def send(page: Page, text: str) -> None:
    page.locator("#composer-input").fill(text)
    page.locator("#composer-input").press("Enter")


def last_reply(page: Page) -> Locator:
    return page.locator(REPLIES).last


def reply_streaming(page: Page, number: int, min_chars: int = 8) -> Locator:
    """Wait until reply `number` (the greeting is 1) is streaming with some text; return it."""
    expect(page.locator(REPLIES)).to_have_count(number)
    reply = page.locator(REPLIES).nth(number - 1)
    expect(reply).to_have_class(re.compile(r"\bis-streaming\b"))
    wait_for_text(reply.locator(".turn-body"), min_chars)
    return reply


def reply_complete(page: Page, number: int) -> Locator:
    """Wait until reply `number` (the greeting is 1) has completed; return it."""
    expect(page.locator(REPLIES)).to_have_count(number, timeout=REPLY_TIMEOUT)
    reply = page.locator(REPLIES).nth(number - 1)
    expect(reply).to_have_class(re.compile(r"\bis-complete\b"), timeout=REPLY_TIMEOUT)
    return reply


def wait_for_text(locator: Locator, min_chars: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = str(locator.inner_text())
        if len(text.strip()) >= min_chars:
            return text
        time.sleep(0.05)
    raise AssertionError(f"fewer than {min_chars} characters arrived: {locator.inner_text()!r}")


def body_text(page: Page, turn_id: int) -> str:
    return squash(page.locator(f"#turn-{turn_id} .turn-body").inner_text())


def squash(text: str) -> str:
    """Compare text as a reader sees it: markup characters and spacing aside."""
    return re.sub(r"\s+", " ", text.replace("*", "")).strip()


def visible_turns(conversation: Conversation) -> list[Turn]:
    return list(Turn.objects.filter(conversation=conversation, active=True).order_by("seq"))

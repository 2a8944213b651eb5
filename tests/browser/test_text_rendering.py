"""The page's script renders message text as the server does (render_turn), and only as text."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from conversations.rendering import render_turn
from conversations.services.conversations import conversation_create
from tests.browser.pages import log_in, open_chat
from tests.factories import make_character, make_user

pytestmark = pytest.mark.browser

SAMPLES = [
    "*smiles* Hello there.",
    'He said "hi" and *waves*\nNew line here.\n\nSecond paragraph.',
    "**bold**, *em*, _also em_ and `code <b>`",
    "snake_case_name and 2*3*4 and a lone * star",
    "- one\n- two *em*\n\n1. first\n2. second",
    "3. starts at three\n4. then four",
    "> quoted *text*\n> more",
    "```\nfenced <b>code</b>\n  indented\n```",
    "    indented code\n    block",
    "<img src=x onerror=alert(1)> & <script>alert(2)</script>",
    "[a link](https://example.com/x?y=1) and [bad](javascript:alert(1)) <https://a.example>",
    "# not a heading\n---\n~~not struck~~",
    "Trailing spaces  \nhard break\nsoft break",
    "escaped \\*not em\\* and \\_not em\\_",
    "*walks over,\nslowly* then stops",
    '*She laughs.* "You\'re late," *she says, tapping the desk.* "Again."',
    "**bold *em* inside** and ***both***",
    "*微笑* 你好，旅行者。「欢迎」",
    "* star item\n* another",
    "line one\n\n\n\nline after blank lines",
    "",
    # Cases a hand-written renderer got wrong: the page now runs the parser the server ports.
    "[wiki](https://en.example.org/wiki/Foo_(bar)) after",
    "Tom &amp; Jerry &copy; &#169; &nbsp;x &unknown;",
    "1984. was the year\n1985. came next",
    "*a _b `c [d **e " * 40,
    "- outer\n  - inner *em*\n- back out",
    "Setext looking\n===\nstill text",
    "[relative](/admin/) and [mail](mailto:aria@example.com) and https://bare.example/",
    "<span>raw</span> <!-- comment --> &lt;b&gt;",
    "> quote\ncontinued lazily\n\n> second",
    "`` code with ` tick `` and ```unclosed",
    "[no host](http://) and [bad port](http://a.example:99999/) and [ok](https://a.example:8443/)",
]

# Render both versions inside real .turn-body elements (so chat.css applies) and describe what
# a reader gets: the visible text and the elements, with their link targets.
DESCRIBE = """([serverHtml, text]) => {
  const list = document.getElementById("turns");
  const make = () => {
    const li = document.createElement("li");
    li.className = "turn turn-assistant is-complete";
    const body = document.createElement("div");
    body.className = "turn-body";
    li.append(body);
    list.append(li);
    return body;
  };
  const server = make();
  server.innerHTML = serverHtml;
  const client = make();
  client.append(window.companion.renderText(text));
  const describe = (body) => ({
    text: body.innerText,
    tags: [...body.querySelectorAll("*")].filter((n) => n.tagName !== "BR")
      .map((n) => [n.tagName, ...["href", "start", "rel"].map((a) => n.getAttribute(a))].join(" ")),
  });
  const out = [describe(server), describe(client)];
  server.parentNode.remove();
  client.parentNode.remove();
  return out;
}"""


@pytest.fixture
def chat_page(page: Page, server) -> Page:
    alice = make_user("alice")
    conversation = conversation_create(owner=alice, character=make_character(name="Aria"))
    log_in(page, alice, server)
    open_chat(page, conversation)
    return page


@pytest.mark.parametrize("text", SAMPLES)
def test_the_script_renders_text_as_the_server_does(chat_page: Page, text: str):
    server, client = chat_page.evaluate(DESCRIBE, [str(render_turn(text)), text])

    assert client == server


def test_rendered_text_never_creates_markup_from_the_text(chat_page: Page):
    nodes = chat_page.evaluate(
        """(text) => {
            const body = document.createElement("div");
            body.append(window.companion.renderText(text));
            return [...body.querySelectorAll("*")].map((n) => n.tagName);
        }""",
        '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
        '<a href="javascript:alert(1)">x</a> [y](javascript:alert(1)) [ok](https://x.example) *ok*',
    )

    assert "IMG" not in nodes
    assert "SCRIPT" not in nodes
    assert nodes.count("A") == 1
    assert chat_page.evaluate("window.__xss") is None
    assert chat_page.locator("#turns a[href^='javascript']").count() == 0

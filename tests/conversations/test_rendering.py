from html.parser import HTMLParser

import pytest
from django.template import Context, Template
from django.utils.safestring import SafeString

from conversations.rendering import render_turn

ALLOWED = {"p", "em", "strong", "br", "blockquote", "code", "pre", "ul", "ol", "li", "a"}


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, attrs))


def parse(html):
    """Every start tag the browser would build from `html`, with its attributes."""
    parser = _Elements()
    parser.feed(str(html))
    parser.close()
    return parser.elements


def test_roleplay_actions_become_italics_and_quotes_stay_text():
    html = render_turn('*waves* "Hello there!" she says.')

    assert html == '<p><em>waves</em> "Hello there!" she says.</p>'
    assert isinstance(html, SafeString)


def test_single_newlines_are_kept_as_line_breaks():
    assert render_turn("one\ntwo") == "<p>one<br>\ntwo</p>"


def test_allowed_markdown_is_rendered():
    html = render_turn("**bold**\n\n> said\n\n- a\n- b\n\n`x<y`")

    assert "<strong>bold</strong>" in html
    assert "<blockquote>" in html
    assert "<ul>\n<li>a</li>" in html
    assert "<code>x&lt;y</code>" in html


def test_the_structure_check_would_catch_live_markup():
    assert parse('<img src=x onerror="alert(1)">') == [
        ("img", [("src", "x"), ("onerror", "alert(1)")])
    ]


def test_links_get_safe_rel_attributes():
    html = render_turn("[site](https://example.com/page)")

    assert html == (
        '<p><a href="https://example.com/page" rel="noopener nofollow ugc">site</a></p>'
    )


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">click</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](javascript&#58;alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        "![x](javascript:alert(1))",
        '<svg onload="alert(1)">',
        "<iframe src=//evil.example></iframe>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "&#60;img src=x onerror=alert(1)&#62;",
        "<<script>script>alert(1)<</script>/script>",
        "`<script>alert(1)</script>`",
    ],
)
def test_xss_payloads_never_become_markup(payload):
    elements = parse(render_turn(payload))

    for tag, attrs in elements:
        assert tag in ALLOWED
        for name, value in attrs:
            assert (tag, name) in {("a", "href"), ("a", "rel"), ("ol", "start")}
            if name == "href":
                assert value.startswith(("http://", "https://", "mailto:"))


def test_html_entities_are_shown_as_text():
    assert render_turn("&lt;b&gt; &amp; <b>") == "<p>&lt;b&gt; &amp; &lt;b&gt;</p>"


def test_relative_links_are_dropped_from_messages():
    assert "href" not in render_turn("[home](/account/)")


def test_template_filter_renders_and_escapes():
    template = Template("{% load chat_text %}{{ text|render_turn }}")

    html = template.render(Context({"text": "*smiles* <script>x</script>"}))

    assert html == "<p><em>smiles</em> &lt;script&gt;x&lt;/script&gt;</p>"


def test_template_filter_accepts_empty_and_missing_text():
    template = Template("{% load chat_text %}[{{ text|render_turn }}]")

    assert template.render(Context({"text": None})) == "[]"
    assert template.render(Context({})) == "[]"

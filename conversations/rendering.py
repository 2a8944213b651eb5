"""Turn text to safe HTML: Markdown (no raw HTML) and then an allow-list sanitiser.

Role-play `*actions*` become <em>. Markdown-it already refuses raw HTML and `javascript:`
links; nh3 is the second wall, so a parser bug cannot turn a message into markup.
"""

from __future__ import annotations

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = {"p", "em", "strong", "br", "blockquote", "code", "pre", "ul", "ol", "li", "a"}
ALLOWED_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}

# Headings, tables, images and rules are not part of a chat message; their text is kept.
_markdown = MarkdownIt("js-default", {"breaks": True}).disable(
    ["heading", "lheading", "table", "image", "hr"]
)
_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes=ALLOWED_ATTRIBUTES,
    link_rel="noopener nofollow ugc",
    url_schemes=ALLOWED_URL_SCHEMES,
    # A relative link in a message would point into this site; messages have no use for one.
    url_relative="deny",
)


def render_turn(text: str) -> SafeString:
    """Render a message's Markdown to sanitised HTML that is safe to place in a page."""
    html = _markdown.render(text or "")
    return mark_safe(_cleaner.clean(html).strip())  # noqa: S308 - sanitised by nh3 just above

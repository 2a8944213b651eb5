from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.llm.think import ThinkStripper


def strip(pieces):
    stripper = ThinkStripper()
    return "".join(stripper.feed(p) for p in pieces) + stripper.flush()


def test_reply_without_think_passes_through_untouched():
    assert strip(["  Hello", " there"]) == "  Hello there"


def test_leading_think_block_and_following_blank_lines_are_removed():
    assert strip(["<think>plan</think>\n\nHello"]) == "Hello"


def test_text_that_merely_starts_like_the_tag_is_kept():
    assert strip(["<th", "e end>"]) == "<the end>"
    assert strip(["<"]) == "<"


def test_think_later_in_the_reply_is_content():
    assert strip(["Sure. <think>no</think>"]) == "Sure. <think>no</think>"


def test_unclosed_think_block_yields_nothing():
    assert strip(["<think>still thinking"]) == ""


# No deadline: a busy shared machine must not turn slowness into a failure.
@settings(deadline=None)
@given(cuts=st.lists(st.integers(0, 60), max_size=8))
def test_any_split_of_the_tags_gives_the_same_answer(cuts):
    text = "<think>The user says hi. I greet.</think>\n\nHello, friend!"
    points = sorted({c % (len(text) + 1) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]

    assert strip(pieces) == "Hello, friend!"

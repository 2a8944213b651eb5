"""Card macros (CBS) as the prompt builder and the greeting service use them."""

from __future__ import annotations

import re
import time

import pytest

from conversations.macros import expand, strip_comments


def _x(text: str, **kwargs) -> str:
    return expand(text, char="Aria", user="Sam", **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{char}} meets {{user}}", "Aria meets Sam"),
        ("{{CHAR}} and {{User}} and {{ char }}", "Aria and Sam and Aria"),
        (
            "<BOT> greets <USER>; <char> again; <bot>, <user>",
            "Aria greets Sam; Aria again; Aria, Sam",
        ),
        ("plain text", "plain text"),
        ("a {{// a note for authors }}b", "a b"),
        ("see{{hidden_key: dragon}} this", "see this"),
        ("x{{comment: only for the reader}}y", "xy"),
        ("{{reverse:abc}}", "cba"),
        ("{{original}}\nBe brief.", "\nBe brief."),
        ("{{unknown_macro}} stays", "{{unknown_macro}} stays"),
        ("{{roll:abc}} stays", "{{roll:abc}} stays"),
    ],
)
def test_expand(text, expected):
    assert _x(text) == expected


def test_original_stands_for_the_apps_default():
    assert _x("{{original}} More.", original="Default.") == "Default. More."


def test_comments_can_be_kept_for_display():
    assert _x("x{{comment: note}}y", keep_comments=True) == "xnotey"


def test_random_picks_one_of_the_options_with_escaped_commas():
    seen = {_x("{{random:a\\,b,c}}") for _ in range(200)}

    assert seen == {"a,b", "c"}


def test_random_with_double_colon_syntax():
    assert {_x("{{random::x::y}}") for _ in range(200)} == {"x", "y"}


def test_random_may_hold_other_macros():
    assert {_x("{{random:{{char}},{{user}}}}") for _ in range(200)} == {"Aria", "Sam"}


def test_pick_is_stable_for_a_seed_and_varies_across_seeds():
    text = "{{pick:red,green,blue,amber,violet,teal}}"
    first = _x(text, seed="conversation-1")

    assert all(_x(text, seed="conversation-1") == first for _ in range(20))
    assert len({_x(text, seed=f"conversation-{n}") for n in range(40)}) > 1


def test_pick_without_seed_is_stable_for_the_same_text():
    text = "I like {{pick:a,b,c,d,e,f,g,h}}."

    assert len({_x(text) for _ in range(20)}) == 1


@pytest.mark.parametrize("macro", ["{{roll:6}}", "{{roll:d6}}", "{{ROLL:D6}}"])
def test_roll_gives_a_number_from_one_to_n(macro):
    rolls = {int(_x(macro)) for _ in range(300)}

    assert rolls == {1, 2, 3, 4, 5, 6}


def test_roll_refuses_absurd_sides():
    assert _x("{{roll:0}}") == "{{roll:0}}"
    assert re.fullmatch(r"\d+", _x("{{roll:d1000000}}"))


def test_existing_callers_keep_working_without_new_arguments():
    assert expand("Hi {{user}}, I am {{char}}.", char="Bo", user="Al") == "Hi Al, I am Bo."


def test_strip_comments_leaves_hidden_keys_for_lore_scanning():
    assert strip_comments("a{{// no}}b{{hidden_key:dragon}}") == "ab{{hidden_key:dragon}}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a {{// never closed", "a {{// never closed"),
        ("{{// one }}b{{// two", "b{{// two"),
        ("{{// x }}}}", "}}"),
        ("{{//}}{{//{{// y }}z", "z"),
        ("{{// spans\nlines }}z", "z"),
    ],
)
def test_a_comment_ends_at_the_first_closing_braces_and_an_unclosed_one_stays(text, expected):
    assert strip_comments(text) == expected
    assert _x(text) == expected


def test_many_unclosed_comment_openings_are_expanded_in_linear_time():
    # Four times a description's length, all openings: rescanning the rest of the text from
    # each one would take the square of its length.
    text = "{{//" * 20_000

    started = time.monotonic()
    expanded = _x(text)
    stripped = strip_comments(text)
    took = time.monotonic() - started

    assert expanded == stripped == text
    assert took < 2


@pytest.mark.parametrize(
    ("text", "char", "user", "expected"),
    [
        ("Hi {{user}}", "Aria", "{{user}}" * 12, "Hi " + "{{user}}" * 12),
        (
            "<USER> and {{char}}",
            "{{char}}{{user}}",
            "<user>{{char}}",
            "<user>{{char}} and {{char}}{{user}}",
        ),
        ("{{reverse:{{user}}}}", "A", "}}resu{{", "{{user}}"),
        ("{{random:{{char}}}}", "{{char}}" * 5, "S", "{{char}}" * 5),
        ("{{original}}", "A", "S", ""),
    ],
)
def test_what_a_macro_stands_for_is_never_expanded_again(text, char, user, expected):
    # Expanded again, a name holding its own macro doubles with every pass (12 copies made
    # gigabytes); it is shown as written instead.
    assert expand(text, char=char, user=user) == expected


def test_nul_characters_are_dropped_and_cannot_forge_a_value():
    assert _x("a\x000\x00b {{user}}") == "a0b Sam"

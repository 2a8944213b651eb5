"""Example dialogue (`mes_example`) text into sample pairs."""

from __future__ import annotations

import time

from characters.cards.samples import parse_mes_example


def test_lines_without_a_speaker_continue_the_turn_above():
    text = "<START>\n{{user}}: Hi.\nHow are you?\n{{char}}: Fine.\n\n*waves*\n<BOT>: Bye."

    assert parse_mes_example(text) == [("Hi.\nHow are you?", "Fine.\n\n*waves*\nBye.")]


def test_a_block_that_opens_without_a_speaker_is_the_characters():
    assert parse_mes_example("<START>\n*nods*\n{{user}}: Hello") == [
        ("…", "*nods*"),
        ("Hello", "…"),
    ]


def test_long_turns_are_parsed_in_linear_time():
    # A turn of a hundred thousand long lines: copying the turn for every line added would
    # move half a terabyte.
    line = "x" * 100
    text = "{{user}}: Hi\n{{char}}: " + "\n".join([line] * 100_000)

    started = time.monotonic()
    pairs = parse_mes_example(text)
    took = time.monotonic() - started

    assert pairs == [("Hi", "\n".join([line] * 100_000))]
    assert took < 5

"""Lore key matching costs bounded work per message, whatever keys a book holds."""

from __future__ import annotations

import time

import pytest

from characters.cards.lorebooks import MAX_KEYS
from conversations.lore import (
    _REGEX_STEP_OVERHEAD,
    MAX_KEY_TESTS,
    MAX_REGEX_SCAN_CHARS,
    MAX_SCAN_CHARS,
    PLAIN_SCAN_BUDGET,
    REGEX_SCAN_BUDGET,
    Logic,
    LoreBook,
    apply_lorebook,
)
from tests.factories import lore_entry as entry


def fire(entries, messages, **book) -> list[str]:
    result = apply_lorebook(
        LoreBook(tuple(entries), **book), messages=messages, budget_tokens=100_000
    )
    return list(result.texts)


def test_stacked_bounded_repeats_are_matched_in_linear_time():
    # A backtracking engine tries every way to split the text among the repeats: 21^7 here.
    trap = entry("/" + ".{0,20}" * 7 + "x/", content="trap", use_regex=True)

    started = time.monotonic()
    missed = fire([trap], ["a" * 60])
    took = time.monotonic() - started

    assert missed == []
    assert took < 2
    assert fire([trap], ["a" * 60 + "x"]) == ["trap"]


@pytest.mark.parametrize("key", ["/.*a.*b/", "/a*a*b/", "/(a|aa)*b/", "/(a+)+b/"])
def test_patterns_with_many_repeats_match_like_any_other(key):
    pattern = entry(key, content="found", use_regex=True)

    assert fire([pattern], ["xx aaab"]) == ["found"]
    assert fire([pattern], ["a" * 3000 + "!"]) == []


@pytest.mark.parametrize(
    "key",
    [
        "/(?=dragon)dragon/",
        "/(?<=the )dragon/",
        "/(?<!a )dragon/",
        "/dragon(?!fly)/",
        "/(drag)on \\1/",
        "/dragon\\Z/",
    ],
)
def test_keys_a_linear_time_engine_cannot_run_never_match_like_invalid_ones(key):
    lookaround = entry(key, content="never", use_regex=True)

    assert fire([lookaround], ["the dragon drag"]) == []
    assert fire([lookaround], ["the dragon"]) == []


@pytest.mark.parametrize(
    ("key", "text", "fires"),
    [
        ("/DRAGON/i", "a dragon", True),
        ("/DRAGON/", "a dragon", False),
        ("/^dragon$/m", "a\ndragon\nb", True),
        ("/^dragon$/", "a\ndragon\nb", False),
        ("/a.b/s", "a\nb", True),
        ("/a.b/", "a\nb", False),
        ("/\\bdrag(on|ons)\\b/gi", "Dragons!", True),
        ("/龍+/u", "見て、龍龍だ", True),
    ],
)
def test_regex_flags_keep_their_meaning(key, text, fires):
    pattern = entry(key, content="found", use_regex=True)

    assert (fire([pattern], [text]) == ["found"]) is fires


def test_a_book_too_large_for_one_message_is_scanned_only_until_its_budget_is_spent():
    window = ["lorem ipsum " * (MAX_SCAN_CHARS // 12) + " the first needle"]
    first = entry("first", content="first")
    fillers = [entry(f"filler-{n}") for n in range(PLAIN_SCAN_BUDGET // MAX_SCAN_CHARS + 1)]
    last = entry("needle", content="last")

    assert fire([first, *fillers, last], window) == ["first"]
    assert fire([first, *fillers, last], ["the first needle"]) == ["first", "last"]


def test_the_keys_tested_for_one_message_are_capped_however_short_the_window():
    fillers = [entry(*(f"filler-{n}-{k}" for k in range(100))) for n in range(300)]
    late = entry("needle", content="late")
    early = entry("needle", content="early")

    assert MAX_KEY_TESTS < 300 * 100
    assert fire([*fillers, late], ["a needle"]) == []
    assert fire([early, *fillers], ["a needle"]) == ["early"]


def test_regex_keys_stop_matching_once_their_budget_is_spent_and_plain_keys_go_on():
    window = ["x" * MAX_REGEX_SCAN_CHARS + " needle"]
    # Each test searches MAX_REGEX_SCAN_CHARS bytes, at the least cost a program can have.
    count = REGEX_SCAN_BUDGET // (_REGEX_STEP_OVERHEAD * MAX_REGEX_SCAN_CHARS) + 1
    fillers = [entry(f"/filler{n}/", use_regex=True) for n in range(count)]
    regex = entry("/ne+dle/", content="regex", use_regex=True)
    plain = entry("needle", content="plain", use_regex=True)

    assert fire([*fillers, regex, plain], window) == ["plain"]
    assert fire([regex, *fillers, plain], window) == ["regex", "plain"]


def test_an_entry_whose_secondary_keys_were_left_untested_does_not_fire():
    fillers = [entry(f"filler-{n}") for n in range(MAX_KEY_TESTS - 1)]
    unless_ink = entry(
        "map",
        content="maps",
        selective=True,
        secondary_keys=("ink",),
        selective_logic=Logic.NOT_ANY,
    )

    assert fire([unless_ink], ["a map"]) == ["maps"]
    assert fire([*fillers, unless_ink], ["a map"]) == []


def test_keys_the_engine_cannot_run_leave_the_budget_to_the_others():
    window = ["x" * MAX_REGEX_SCAN_CHARS + " a dragon"]
    # Written for JavaScript's engine: a lookahead and a backreference, many times over.
    refused = [entry(f"/(?=knight{n})x/", f"/(\\w){n}\\1/", use_regex=True) for n in range(500)]
    dragon = entry("/dragon/i", content="dragon", use_regex=True)

    assert fire([*refused, dragon], window, scan_depth=10) == ["dragon"]


def test_a_book_at_the_key_limit_is_matched_whole_against_a_full_window():
    window = ["lorem ipsum " * (MAX_SCAN_CHARS // 12) + " the needle"]
    fillers = [entry(f"filler-{n}") for n in range(MAX_KEYS - 1)]
    last = entry("needle", content="last")

    assert fire([*fillers, last], window) == ["last"]

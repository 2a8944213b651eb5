"""Lorebook activation (pure), and lore in the prompts built from stored characters."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from characters.cards.services import character_import_card
from characters.models import Lorebook, LorebookEntry
from conversations.lore import (
    _REGEX_STEP_OVERHEAD,
    MAX_KEY_TESTS,
    MAX_REGEX_SCAN_CHARS,
    MAX_SCAN_DEPTH,
    REGEX_SCAN_BUDGET,
    LoreBook,
    apply_lorebook,
    scan_window,
)
from conversations.lore_decorators import parse_decorators
from conversations.models import Role, Turn
from conversations.prompt_inputs import (
    conversation_for_prompt,
    prompt_input_for_conversation,
    prompt_input_for_new_conversation,
    prompt_preview_for_conversation,
    prompt_preview_for_new_conversation,
)
from conversations.prompts import build_prompt
from tests.factories import lore_entry as entry
from tests.factories import make_character, make_persona


def fire(entries, messages, *, budget=10_000, **book) -> list[str]:
    result = apply_lorebook(
        LoreBook(tuple(entries), **book), messages=messages, budget_tokens=budget
    )
    return list(result.texts)


def test_a_key_in_the_recent_messages_fires_its_entry():
    market = entry("market", content="The market opens at night.")

    assert fire([market], ["Let's go to the Market."]) == ["The market opens at night."]
    assert fire([market], ["Let's go home."]) == []


def test_case_sensitive_entries_need_the_exact_case():
    dragon = entry("Dragon", content="dragon lore", case_sensitive=True)

    assert fire([dragon], ["a Dragon!"]) == ["dragon lore"]
    assert fire([dragon], ["a dragon!"]) == []


def test_secondary_keys_are_required_when_selective():
    maps = entry("map", content="maps", selective=True, secondary_keys=("ink", "paper"))

    assert fire([maps], ["a map"]) == []
    assert fire([maps], ["a map drawn in ink"]) == ["maps"]


def test_secondary_keys_are_ignored_when_not_selective():
    maps = entry("map", content="maps", secondary_keys=("ink",))

    assert fire([maps], ["a map"]) == ["maps"]


@pytest.mark.parametrize(
    ("logic", "text", "fires"),
    [
        (1, "map ink paper", False),
        (1, "map ink", True),
        (2, "map ink", False),
        (2, "map", True),
        (3, "map ink", False),
        (3, "map ink paper", True),
    ],
)
def test_sillytavern_selective_logic(logic, text, fires):
    maps = entry(
        "map",
        content="maps",
        selective=True,
        secondary_keys=("ink", "paper"),
        selective_logic=logic,
    )

    assert (fire([maps], [text]) == ["maps"]) is fires


def test_regex_keys_match_only_when_the_entry_uses_regexes():
    regex = entry("/drag(on|ons)\\b/i", content="dragons", use_regex=True)
    literal = entry("/drag(on|ons)\\b/i", content="literal")

    assert fire([regex, literal], ["DRAGONS above"]) == ["dragons"]
    assert fire([literal], ["the key /drag(on|ons)\\b/i itself"]) == ["literal"]


def test_plain_keys_stay_plain_when_use_regex_is_on():
    # SillyTavern marks every entry use_regex; only /…/ keys are regexes.
    plain = entry("a.b", content="plain", use_regex=True)

    assert fire([plain], ["a.b"]) == ["plain"]
    assert fire([plain], ["axb"]) == []


@pytest.mark.parametrize(
    "key",
    [
        "/(unclosed/",
        "/(a+)+$/",
        "/(a|aa)*b/",
        "/(x)\\1/",
        "/.*a.*a.*b/",
        "/a*a*a*a*b/",
        "/a{1,99}a{1,99}b/",
        "/" + "a" * 300 + "/",
    ],
)
def test_invalid_or_risky_regexes_never_match_and_never_crash(key):
    risky = entry(key, content="never", use_regex=True)

    assert fire([risky], ["a" * 5000 + "!"]) == []


def test_a_regex_with_one_repetition_still_matches_quickly_on_a_long_window():
    greedy = entry("/.*x/", content="never", use_regex=True)
    ing = entry("/\\b\\w+ing\\b/", content="ing", use_regex=True)

    started = time.monotonic()
    fired = fire([greedy, ing], ["a" * 50_000 + " singing"])

    assert fired == ["ing"]
    assert time.monotonic() - started < 2


def test_constant_entries_always_fire_and_disabled_ones_never():
    always = entry(content="always", constant=True)
    disabled = entry("market", content="off", enabled=False, constant=True)

    assert fire([always, disabled], ["market"]) == ["always"]


def test_only_the_last_scan_depth_messages_are_scanned():
    market = entry("market", content="market lore")
    messages = ["the market", "hello", "how are you"]

    assert fire([market], messages, scan_depth=2) == []
    assert fire([market], messages, scan_depth=3) == ["market lore"]
    assert fire([market], messages, scan_depth=0) == []
    assert scan_window(messages, None) == "hello\nhow are you"


def test_recursive_scanning_lets_content_fire_other_entries_with_a_bound():
    chain = [entry("k0", content="mentions k1")]
    for n in range(1, 8):
        chain.append(entry(f"k{n}", content=f"mentions k{n + 1}"))

    flat = fire(chain, ["k0"])
    deep = fire(chain, ["k0"], recursive_scanning=True)

    assert flat == ["mentions k1"]
    assert deep == ["mentions k1", "mentions k2", "mentions k3", "mentions k4"]


def test_hidden_keys_trigger_recursion_but_comments_do_not():
    source = entry("start", content="{{hidden_key:dragon}}{{// castle}}")
    dragon = entry("dragon", content="dragon lore")
    castle = entry("castle", content="castle lore")

    fired = fire([source, dragon, castle], ["start"], recursive_scanning=True)

    assert "dragon lore" in fired
    assert "castle lore" not in fired


def test_sillytavern_recursion_switches_are_honoured():
    source = entry("start", content="dragon", prevent_recursion=True)
    dragon = entry("dragon", content="dragon lore")
    source2 = entry("begin", content="castle")
    castle = entry("castle", content="castle lore", exclude_recursion=True)

    fired = fire([source, dragon, source2, castle], ["start begin"], recursive_scanning=True)

    assert "dragon lore" not in fired
    assert "castle lore" not in fired


def test_lowest_priority_is_dropped_first_at_the_budget():
    high = entry("rain", content="h" * 40, priority=10)
    low = entry("rain", content="l" * 40, priority=1)
    mid = entry("rain", content="m" * 40, priority=5)

    result = apply_lorebook(LoreBook((high, low, mid)), messages=["rain"], budget_tokens=20)

    assert result.texts == ("h" * 40, "m" * 40)
    assert [f.entry.priority for f in result.dropped] == [1]
    assert result.used_tokens <= 20


def test_the_books_own_budget_applies_when_smaller():
    big = entry("rain", content="x" * 400)

    assert fire([big], ["rain"], budget=10_000, token_budget=50) == []
    assert fire([big], ["rain"], budget=10_000, token_budget=200) == ["x" * 400]


def test_entries_are_placed_by_position_then_insertion_order():
    late = entry("k", content="late", insertion_order=50)
    early = entry("k", content="early", insertion_order=1)
    before = entry("k", content="before", insertion_order=99, position="before_char")

    assert fire([late, early, before], ["k"]) == ["before", "early", "late"]


def test_empty_content_fires_but_inserts_nothing():
    result = apply_lorebook(LoreBook((entry("k", content=" "),)), messages=["k"], budget_tokens=99)

    assert result.texts == ()
    assert len(result.fired) == 1


def test_decorators_are_stripped_and_activation_decorators_honoured():
    forced = entry(content="@@activate\n@@depth 4\nforced lore")
    blocked = entry("market", content="@@dont_activate\nblocked")

    assert fire([forced, blocked], ["market"]) == ["forced lore"]
    assert parse_decorators("@@position after_desc\n@@@role user\nbody").body == "body"


def test_additional_keys_decorators_are_more_primary_keys():
    market = entry(
        "market", content="@@additional_keys bazaar, souk\n@@additional_keys stall\nlore"
    )

    assert fire([market], ["the souk"]) == ["lore"]
    assert fire([market], ["a stall"]) == ["lore"]
    assert fire([market], ["home"]) == []


def test_additional_keys_match_as_the_entrys_own_keys_do():
    exact = entry("Dragon", content="@@additional_keys Wyrm\nexact", case_sensitive=True)
    maps = entry(
        "map",
        content="@@additional_keys atlas\nmaps",
        selective=True,
        secondary_keys=("ink",),
    )

    assert fire([exact], ["a Wyrm"]) == ["exact"]
    assert fire([exact], ["a wyrm"]) == []
    assert fire([maps], ["an atlas"]) == []
    assert fire([maps], ["an atlas in ink"]) == ["maps"]


def test_exclude_keys_keep_an_entry_out_whatever_else_matches():
    market = entry("market", content="@@exclude_keys closed, /shut+/i\nopen", use_regex=True)
    always = entry(content="@@exclude_keys night\nday", constant=True)

    assert fire([market, always], ["the market"]) == ["open", "day"]
    assert fire([market], ["the market is closed"]) == []
    assert fire([market], ["the market is SHUTT"]) == []
    assert fire([market, always], ["market at night"]) == ["open"]


def test_an_entrys_scan_depth_narrows_or_widens_the_books():
    deep = entry("market", content="@@scan_depth 3\ndeep")
    shallow = entry("market", content="@@instruct_scan_depth 1\nshallow")
    plain = entry("market", content="plain")

    assert fire([deep, shallow, plain], ["the market", "a", "b"]) == ["deep"]
    assert fire([deep, shallow, plain], ["the market", "b"]) == ["deep", "plain"]
    assert fire([deep, shallow, plain], ["a", "the market"]) == ["deep", "shallow", "plain"]


def test_an_entrys_scan_depth_stays_within_the_maximum():
    wide = entry("market", content="@@scan_depth 100000\nwide")
    both = entry("market", content="@@scan_depth 3\n@@instruct_scan_depth 1\nnarrowest")

    assert fire([wide], ["market", *["x"] * (MAX_SCAN_DEPTH - 1)]) == ["wide"]
    assert fire([wide], ["market", *["x"] * MAX_SCAN_DEPTH]) == []
    assert fire([both], ["market", "x"]) == []
    assert parse_decorators(both.content).scan_depth == 1


def test_a_regex_additional_key_runs_on_re2_and_only_when_the_entry_uses_regexes():
    regex = entry("zzz", content="@@additional_keys /drag(on|ons)\\b/i\nregex", use_regex=True)
    literal = entry("zzz", content="@@additional_keys /drag(on|ons)\\b/i\nliteral")
    refused = entry("zzz", content="@@additional_keys /(?=dragon)dragon/\nnever", use_regex=True)

    assert fire([regex, literal, refused], ["DRAGONS above"]) == ["regex"]


def test_a_regex_additional_key_stops_matching_once_the_regex_budget_is_spent():
    window = ["x" * MAX_REGEX_SCAN_CHARS + " needle"]
    count = REGEX_SCAN_BUDGET // (_REGEX_STEP_OVERHEAD * MAX_REGEX_SCAN_CHARS) + 1
    fillers = [entry(f"/filler{n}/", use_regex=True) for n in range(count)]
    regex = entry("zzz", content="@@additional_keys /ne+dle/\nregex", use_regex=True)

    assert fire([*fillers, regex], window) == []
    assert fire([regex, *fillers], window) == ["regex"]


def test_decorator_keys_count_against_the_key_tests_of_a_message():
    fillers = ",".join(f"filler-{n}" for n in range(MAX_KEY_TESTS))
    crowded = entry("zzz", content=f"@@additional_keys {fillers}\n@@additional_keys needle\nx")
    early = entry("zzz", content="@@additional_keys needle\nearly")

    assert fire([crowded, early], ["a needle"]) == []
    assert fire([early, crowded], ["a needle"]) == ["early"]


def test_exclude_keys_left_untested_for_want_of_budget_keep_the_entry_out():
    fillers = [entry(f"filler-{n}") for n in range(MAX_KEY_TESTS - 1)]
    market = entry("market", content="@@exclude_keys closed\nopen")

    assert fire([market], ["the market"]) == ["open"]
    assert fire([*fillers, market], ["the market"]) == []


def test_a_fallback_is_read_only_when_the_decorator_above_it_is_not_applied():
    kept = entry(content="@@activate\n@@@dont_activate\nkept")
    unknown = entry(content="@@mystery 3\n@@@activate\nunknown")
    unsupported = entry(content="@@is_greeting 1\n@@@activate\nunsupported")
    unreadable = entry("market", content="@@scan_depth many\n@@@scan_depth 3\nunreadable")

    assert fire([kept, unknown, unsupported], ["hi"]) == ["kept", "unknown", "unsupported"]
    assert fire([unreadable], ["market", "a", "b"]) == ["unreadable"]


def test_decorator_lines_do_not_feed_recursion():
    source = entry("start", content="@@depth 2\n@@additional_keys begin\nsource")
    depth = entry("depth", content="depth lore")

    assert fire([source, depth], ["start"], recursive_scanning=True) == ["source"]


def test_the_report_lists_the_decorators_a_fired_entry_asks_for_but_does_not_get():
    market = entry(
        "market",
        content=(
            "@@depth 4\n@@role assistant\n@@@position after_desc\n@@mystery x\n"
            "@@scan_depth 3\n@@activate_only_every 2\n@@depth 5\nbody"
        ),
    )
    fallback = entry(content="@@reverse_depth 1\n@@@activate\nfallback")
    quiet = entry("market", content="@@scan_depth 2\nquiet")

    result = apply_lorebook(
        LoreBook((market, fallback, quiet)), messages=["market"], budget_tokens=99
    )

    report = {f.entry.id: f.not_applied for f in result.fired}
    assert report == {
        market.id: ("depth", "role", "activate_only_every"),
        fallback.id: (),
        quiet.id: (),
    }
    assert result.texts == ("body", "fallback", "quiet")


def test_the_report_says_why_each_entry_fired():
    market = entry("market", content="m")
    always = entry(content="a", constant=True)

    result = apply_lorebook(LoreBook((market, always)), messages=["market"], budget_tokens=99)

    assert {f.reason for f in result.fired} == {"constant", "key “market”"}


# --- Lore in prompts built from the database -------------------------------------------


def _book(character, **fields) -> Lorebook:
    return Lorebook.objects.create(character=character, **fields)


def test_new_conversation_prompt_carries_fired_lore_and_reports_it(alice):
    character = make_character(alice, greeting="Welcome to the night market.")
    book = _book(character)
    market = LorebookEntry.objects.create(
        lorebook=book, keys=["market"], content="{{char}} runs a stall."
    )
    LorebookEntry.objects.create(lorebook=book, keys=["dragon"], content="Dragons.")

    spec, lore = prompt_preview_for_new_conversation(character=character)

    assert spec.lore == ("{{char}} runs a stall.",)
    assert [f.entry.id for f in lore.included] == [market.pk]
    system = build_prompt(spec).messages[0]["content"]
    assert "Aria runs a stall." in system
    assert prompt_input_for_new_conversation(character=character).lore == spec.lore


def test_before_char_lore_opens_the_system_message_and_after_char_follows_the_card(alice):
    character = make_character(
        alice, description="DESCRIPTION", system_prompt="SYSPROMPT", greeting="The market opens."
    )
    book = _book(character)
    LorebookEntry.objects.create(
        lorebook=book, keys=["market"], content="BEFORE", position="before_char"
    )
    LorebookEntry.objects.create(lorebook=book, keys=["market"], content="AFTER")

    spec, _ = prompt_preview_for_new_conversation(character=character)
    system = build_prompt(spec).messages[0]["content"]

    assert system.index("BEFORE") < system.index("DESCRIPTION")
    assert system.index("SYSPROMPT") < system.index("AFTER")


def test_conversation_prompt_scans_the_stored_turns(alice):
    from conversations.services.conversations import conversation_create

    character = make_character(alice, greeting="Hello.")
    book = _book(character, scan_depth=1)
    LorebookEntry.objects.create(lorebook=book, keys=["castle"], content="The castle is old.")
    conversation = conversation_create(
        owner=alice, character=character, persona=make_persona(alice)
    )
    Turn.objects.create(
        conversation=conversation,
        seq=50,
        updated_seq=50,
        role=Role.USER,
        name="Sam",
        content="Take me to the castle.",
    )

    loaded = conversation_for_prompt(conversation_id=conversation.pk)
    spec, _lore = prompt_preview_for_conversation(conversation=loaded)

    assert spec.lore == ("The castle is old.",)
    assert prompt_input_for_conversation(conversation=loaded).lore == spec.lore


def test_characters_without_a_lorebook_get_no_lore(alice):
    spec, lore = prompt_preview_for_new_conversation(character=make_character(alice))

    assert spec.lore == ()
    assert lore.fired == ()


def test_an_imported_card_chats_with_its_lorebook_at_once(alice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    card = {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            "name": "Élodie",
            "first_mes": "Welcome to the night market, {{user}}.",
            "extensions": {},
            "character_book": {
                "extensions": {},
                "entries": [
                    {
                        "keys": ["market"],
                        "content": "Stalls sell bottled dreams.",
                        "extensions": {},
                        "enabled": True,
                        "insertion_order": 1,
                    },
                    {
                        "keys": [],
                        "content": "It always rains.",
                        "constant": True,
                        "extensions": {},
                        "enabled": True,
                        "insertion_order": 0,
                    },
                ],
            },
        },
    }
    character = character_import_card(
        owner=alice, data=json.dumps(card).encode(), filename="e.json"
    ).character

    spec, _ = prompt_preview_for_new_conversation(character=character)

    assert spec.lore == ("It always rains.", "Stalls sell bottled dreams.")


def test_lore_never_takes_more_than_its_share_of_the_prompt(alice, settings):
    settings.M2HER_CONTEXT_TOKENS = 2048
    character = make_character(alice, greeting="rain")
    book = _book(character)
    for n in range(10):
        LorebookEntry.objects.create(lorebook=book, keys=["rain"], content="x" * 1200, priority=n)

    _spec, lore = prompt_preview_for_new_conversation(character=character)

    budget = (2048 - character.default_max_tokens - 180) // 4
    assert lore.budget_tokens == budget
    assert lore.used_tokens <= budget
    assert len(lore.included) == 1
    assert lore.included[0].entry.priority == 9


def test_conversation_for_prompt_loads_what_the_orm_stores(alice, django_assert_num_queries):
    from conversations.services.conversations import conversation_create

    character = make_character(alice, samples=3, scenes=2, tags=["a", "b"])
    persona = make_persona(alice)
    scene = character.scenes.order_by("-position").first()
    assert scene is not None
    plain = conversation_create(owner=alice, character=character, persona=persona, scene=scene)
    with django_assert_num_queries(2):  # no lorebook: no query for its entries
        loaded = conversation_for_prompt(conversation_id=plain.pk)
    stored = type(plain).objects.select_related("character", "persona", "scene").get(pk=plain.pk)
    pairs: list[tuple[Any, Any]] = [
        (loaded, stored),
        (loaded.character, stored.character),
        (loaded.persona, stored.persona),
        (loaded.scene, stored.scene),
    ]
    for got, want in pairs:
        fields = [f.attname for f in type(want)._meta.concrete_fields]
        assert [getattr(got, f) for f in fields] == [getattr(want, f) for f in fields]
    assert loaded.character.tags == ["a", "b"]  # JSON converted, not text
    with django_assert_num_queries(1):  # the turns; the rest came loaded
        spec, _ = prompt_preview_for_conversation(conversation=loaded)
    samples = character.sample_dialogues.order_by("position", "id")
    assert spec.character.samples == tuple((s.user_line, s.character_line) for s in samples)
    assert spec.scene is not None
    assert spec.scene.name == scene.name
    assert spec.persona.name == persona.name

    book = _book(character, scan_depth=3)
    later = LorebookEntry.objects.create(lorebook=book, keys=["x"], content="b", insertion_order=2)
    first = LorebookEntry.objects.create(lorebook=book, keys=["x"], content="a", insertion_order=1)
    LorebookEntry.objects.create(lorebook=book, keys=["x"], content="off", enabled=False)
    bare = conversation_create(owner=alice, character=character)
    with django_assert_num_queries(3):
        loaded = conversation_for_prompt(conversation_id=bare.pk)
    assert loaded.persona is None
    assert loaded.scene is None
    assert loaded.character.lorebook.scan_depth == 3
    entries = loaded.character.lorebook.enabled_entries  # type: ignore[attr-defined]
    assert [e.pk for e in entries] == [first.pk, later.pk]


def test_the_admin_preview_shows_the_decorators_not_applied_to_its_owner_only(creators):
    alice, bob = creators
    character = make_character(alice, greeting="Welcome.")
    LorebookEntry.objects.create(
        lorebook=_book(character),
        keys=["zzz"],
        content="@@additional_keys hello\n@@depth 4\n@@role assistant\nGreeting lore.",
    )
    url = reverse("admin:characters_character_prompt_preview", args=[character.pk])
    owner, other = Client(), Client()
    owner.force_login(alice)
    other.force_login(bob)

    response = owner.get(url)

    assert response.status_code == 200
    assert "key “hello”" in response.text  # the preview's user line is "Hello!"
    assert "not applied: @@depth, @@role" in response.text
    assert "@@additional_keys" not in response.text
    assert other.get(url).status_code == 404

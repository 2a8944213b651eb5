"""Prompt assembly: the canonical M2-her order, names, macros and fitting to the budget."""

import dataclasses

from conversations.prompts import (
    CONTINUE_INSTRUCTION,
    POST_HISTORY_LABEL,
    CharacterSpec,
    HistoryTurn,
    PersonaSpec,
    PromptInput,
    SceneSpec,
    build_prompt,
)
from conversations.tokens import CALL_OVERHEAD_TOKENS, TokenEstimator

CHARACTER = CharacterSpec(
    name="Mira",
    description="{{char}} keeps the lighthouse and teases <USER> kindly.",
    personality="Warm, curious.",
    scenario="A storm traps {{User}} in the lamp room with <BOT>.",
    system_prompt="{{original}}Stay in character as {{char}}.",
    samples=(("Is it loud, {{char}}?", "*laughs* Always, {{user}}."), ("Tea?", "Please.")),
)
PERSONA = PersonaSpec(name="Sam", description="{{user}} is a traveller who met {{char}} today.")
SCENE = SceneSpec(name="Storm night", description="Rain hammers the glass around {{char}}.")


def exchange(i):
    return (
        HistoryTurn(role="user", content=f"Question number {i}?"),
        HistoryTurn(role="assistant", content=f"Answer number {i}."),
    )


def history(exchanges, last="What now?"):
    turns = [turn for i in range(exchanges) for turn in exchange(i)]
    return (*turns, HistoryTurn(role="user", content=last))


def spec(**overrides):
    values = {
        "character": CHARACTER,
        "persona": PERSONA,
        "scene": SCENE,
        "history": history(2),
        "context_tokens": 4096,
        "reply_tokens": 400,
    }
    values.update(overrides)
    return PromptInput(**values)


def roles(result):
    return [m["role"] for m in result.messages]


def test_messages_follow_the_canonical_order():
    result = build_prompt(spec())

    assert roles(result) == [
        "system",
        "user_system",
        "group",
        "sample_message_user",
        "sample_message_ai",
        "sample_message_user",
        "sample_message_ai",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert result.messages[-1]["content"] == "What now?"


def test_there_is_exactly_one_system_message_holding_every_character_section():
    result = build_prompt(spec(lore=("The lamp was lit in 1890.",)))

    assert roles(result).count("system") == 1
    system = result.messages[0]["content"]
    assert system == (
        "Mira keeps the lighthouse and teases Sam kindly.\n\n"
        "Personality: Warm, curious.\n\n"
        "Scenario: A storm traps Sam in the lamp room with Mira.\n\n"
        "Stay in character as Mira.\n\n"
        "The lamp was lit in 1890."
    )


def test_every_message_carries_the_right_name():
    turns = (
        HistoryTurn(role="assistant", content="Welcome!", name="Mira (young)"),
        HistoryTurn(role="user", content="Hi"),
    )

    result = build_prompt(spec(history=turns))

    names = [(m["role"], m.get("name")) for m in result.messages]
    assert names == [
        ("system", "Mira"),
        ("user_system", "Sam"),
        ("group", "Storm night"),
        ("sample_message_user", "Sam"),
        ("sample_message_ai", "Mira"),
        ("sample_message_user", "Sam"),
        ("sample_message_ai", "Mira"),
        ("assistant", "Mira (young)"),
        ("user", "Sam"),
    ]


def test_macros_are_expanded_everywhere_with_the_nickname_for_char():
    character = CharacterSpec(
        name="Mirabel Hale",
        nickname="Mira",
        description="<bot> and <user>.",
        samples=(("Hi {{CHAR}}", "Hello {{user}}"),),
    )

    result = build_prompt(spec(character=character))

    contents = [m["content"] for m in result.messages]
    assert contents[0] == "Mira and Sam."
    assert contents[1] == "Sam is a traveller who met Mira today."
    assert contents[2] == "Rain hammers the glass around Mira."
    assert contents[3:5] == ["Hi Mira", "Hello Sam"]
    assert all("{{" not in c and "<bot>" not in c for c in contents)


def test_a_persona_without_description_adds_no_user_system_message():
    result = build_prompt(spec(persona=PersonaSpec(name="Kim")))

    assert "user_system" not in roles(result)
    assert result.messages[-1]["name"] == "Kim"


def test_no_scene_means_no_group_message():
    assert "group" not in roles(build_prompt(spec(scene=None)))


def test_budget_reserves_the_reply_and_everything_fits_when_there_is_room():
    result = build_prompt(spec(context_tokens=4096, reply_tokens=500))

    assert result.budget_tokens == 4096 - 500
    assert result.estimated_tokens <= result.budget_tokens
    assert not result.over_budget
    assert result.history_trimmed == 0
    assert result.samples_trimmed == 0


def test_the_parts_report_adds_up_to_the_estimate():
    result = build_prompt(spec(history=history(40), context_tokens=900, reply_tokens=200))

    included = sum(p.tokens for p in result.parts if p.included)
    assert included + CALL_OVERHEAD_TOKENS == result.estimated_tokens
    assert {p.label for p in result.parts} >= {"system", "persona", "scene", "newest turn"}
    trimmed = [p for p in result.parts if not p.included]
    assert trimmed
    assert all(p.reason for p in trimmed)


def test_older_history_is_dropped_first_and_what_remains_is_the_newest():
    result = build_prompt(spec(history=history(40), context_tokens=1000, reply_tokens=200))

    kept = [m["content"] for m in result.messages if m["role"] in ("user", "assistant")]
    assert result.history_trimmed > 0
    assert kept[-3:] == ["Question number 39?", "Answer number 39.", "What now?"]
    assert "Question number 0?" not in kept
    everything = [turn.content for turn in history(40)]
    assert kept == everything[len(everything) - len(kept) :]
    history_parts = [p for p in result.parts if p.label.startswith("history")]
    flags = [p.included for p in history_parts]
    assert flags == sorted(flags)  # trimmed ones (False) all come before kept ones (True)
    assert result.estimated_tokens <= result.budget_tokens


def test_samples_are_dropped_before_the_last_three_exchanges():
    est = TokenEstimator()
    base = build_prompt(spec(history=history(3), context_tokens=100_000), est)
    sample_cost = sum(p.tokens for p in base.parts if p.label.startswith("sample"))
    # Room for everything except the samples.
    context = base.estimated_tokens - sample_cost + 400 + 1

    result = build_prompt(spec(history=history(3), context_tokens=context), est)

    assert result.history_trimmed == 0
    assert result.samples_trimmed == 2
    assert "sample_message_user" not in roles(result)
    assert [p.reason for p in result.parts if p.label.startswith("sample")] == [
        "trimmed: history comes first"
    ] * 2


def test_samples_are_dropped_before_any_history():
    est = TokenEstimator()
    base = build_prompt(spec(history=history(6), context_tokens=100_000), est)
    oldest = [p.tokens for p in base.parts if p.label in ("history 1", "history 2")]
    # Room for all history, and for the samples only if two old turns went.
    context = base.estimated_tokens - sum(oldest) + 400

    result = build_prompt(spec(history=history(6), context_tokens=context), est)

    assert result.history_trimmed == 0
    assert result.samples_trimmed == 2
    assert result.messages[-1]["content"] == history(6)[-1].content


def test_the_newest_turn_is_kept_even_over_budget():
    result = build_prompt(spec(history=(HistoryTurn(role="user", content="x" * 20_000),)))

    assert result.messages[-1]["content"] == "x" * 20_000
    assert result.over_budget


def test_continue_keeps_the_last_reply_and_asks_to_continue_it():
    turns = (
        HistoryTurn(role="user", content="Tell me a story"),
        HistoryTurn(role="assistant", content="Once upon a"),
    )

    result = build_prompt(spec(history=turns, continue_last=True))

    assert result.messages[-2]["content"] == "Once upon a"
    assert result.messages[-1] == {"role": "user", "content": CONTINUE_INSTRUCTION, "name": "Sam"}
    assert [p.label for p in result.parts][-2:] == ["newest turn", "continue"]


def test_post_history_instructions_close_the_message_being_answered():
    character = dataclasses.replace(
        CHARACTER, post_history_instructions="Keep replies short, {{user}}."
    )

    result = build_prompt(spec(character=character))

    assert roles(result).count("system") == 1
    assert "Keep replies short" not in result.messages[0]["content"]
    assert result.messages[-1] == {
        "role": "user",
        "content": "What now?\n\nKeep replies short, Sam.",
        "name": "Sam",
    }
    assert [p.label for p in result.parts][-2:] == ["newest turn", POST_HISTORY_LABEL]
    included = sum(p.tokens for p in result.parts if p.included)
    assert included + CALL_OVERHEAD_TOKENS == result.estimated_tokens


def test_post_history_instructions_follow_a_request_to_continue():
    character = dataclasses.replace(CHARACTER, post_history_instructions="Keep replies short.")
    turns = (
        HistoryTurn(role="user", content="Tell me a story"),
        HistoryTurn(role="assistant", content="Once upon a"),
    )

    result = build_prompt(spec(character=character, history=turns, continue_last=True))

    assert result.messages[-2]["content"] == "Once upon a"
    assert result.messages[-1]["content"] == f"{CONTINUE_INSTRUCTION}\n\nKeep replies short."


def test_post_history_instructions_without_any_turn_stay_in_the_system_message():
    character = dataclasses.replace(CHARACTER, post_history_instructions="Keep replies short.")

    result = build_prompt(spec(character=character, history=()))

    assert result.messages[0]["content"].endswith("\n\nKeep replies short.")
    assert roles(result).count("system") == 1


def test_pick_macros_choose_the_same_way_for_a_whole_conversation():
    character = CharacterSpec(name="Aria", description="Eyes: {{pick:red,green,blue,amber,grey}}.")

    def system_for(seed):
        spec = PromptInput(character=character, history=(HistoryTurn("user", "hi"),), seed=seed)
        return build_prompt(spec).messages[0]["content"]

    assert system_for("conversation-1") == system_for("conversation-1")
    assert len({system_for(f"conversation-{i}") for i in range(20)}) > 1

from conversations.llm.base import ChatMessage
from conversations.llm.roles import fold_roles


def test_conversation_without_extra_roles_is_unchanged_but_for_names():
    messages: list[ChatMessage] = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi", "name": "Sam"},
        {"role": "assistant", "content": "Hello", "name": "Mira"},
    ]

    assert fold_roles(messages) == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]


def test_consecutive_turns_of_one_role_are_merged():
    messages: list[ChatMessage] = [
        {"role": "user", "content": "First"},
        {"role": "user", "content": "Second"},
        {"role": "assistant", "content": "Reply"},
    ]

    assert fold_roles(messages) == [
        {"role": "user", "content": "First\n\nSecond"},
        {"role": "assistant", "content": "Reply"},
    ]


def test_only_one_system_message_comes_out_first():
    messages: list[ChatMessage] = [
        {"role": "group", "content": "Harbour at dawn", "name": "Harbour"},
        {"role": "system", "content": "A sailor.", "name": "Jo"},
        {"role": "user_system", "content": "", "name": "Kim"},
        {"role": "user", "content": "Ahoy"},
    ]

    folded = fold_roles(messages)

    assert [m["role"] for m in folded] == ["system", "user"]
    assert folded[0]["content"] == (
        "You are Jo.\n\nA sailor.\n\nThe user is Kim.\n\nScene: Harbour. Harbour at dawn"
    )


def test_sample_lines_become_an_example_transcript_not_turns():
    messages: list[ChatMessage] = [
        {"role": "sample_message_user", "content": "Hi?"},
        {"role": "sample_message_ai", "content": "Yo!"},
        {"role": "user", "content": "Real question"},
    ]

    folded = fold_roles(messages)

    assert folded == [
        {
            "role": "system",
            "content": "Example of how the conversation sounds:\nUser: Hi?\nAssistant: Yo!",
        },
        {"role": "user", "content": "Real question"},
    ]

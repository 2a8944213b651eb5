"""Fold M2-her's extra roles into the system/user/assistant roles other chat models know.

The persona (`user_system`), the scene (`group`) and the sample dialogue all describe the
role-play, so they join the one system message; sample lines become an example transcript
there rather than fake turns the model could mistake for things already said.
"""

from __future__ import annotations

from collections.abc import Sequence

from conversations.llm.base import ChatMessage


def fold_roles(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Return an equivalent conversation using only system, user and assistant."""
    system: list[str] = []
    persona: list[str] = []
    scene: list[str] = []
    examples: list[str] = []
    turns: list[ChatMessage] = []
    for message in messages:
        role = message["role"]
        content = (message.get("content") or "").strip()
        name = message.get("name", "")
        if role == "system":
            if name:
                system.append(f"You are {name}.")
            if content:
                system.append(content)
        elif role == "user_system":
            who = f"The user is {name}." if name else "About the user:"
            persona.append(f"{who} {content}".strip())
        elif role == "group":
            scene.append(f"Scene: {name}. {content}".strip() if name else f"Scene: {content}")
        elif role in ("sample_message_user", "sample_message_ai"):
            speaker = name or ("User" if role == "sample_message_user" else "Assistant")
            examples.append(f"{speaker}: {content}")
        elif role in ("user", "assistant"):
            _append_turn(turns, role, content)
        else:
            _append_turn(turns, "user", content)
    if examples:
        scene.append("Example of how the conversation sounds:\n" + "\n".join(examples))
    header = "\n\n".join(part for part in (*system, *persona, *scene) if part)
    if not header:
        return turns
    head: ChatMessage = {"role": "system", "content": header}
    return [head, *turns]


def _append_turn(turns: list[ChatMessage], role: str, content: str) -> None:
    # Strict chat templates reject two turns of one role in a row; merging keeps both texts.
    if turns and turns[-1]["role"] == role:
        turns[-1] = {"role": role, "content": f"{turns[-1]['content']}\n\n{content}"}
    else:
        turns.append({"role": role, "content": content})

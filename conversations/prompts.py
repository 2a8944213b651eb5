"""Pure prompt assembly: frozen dataclasses in, the canonical M2-her message list out.

Order (product.md): one `system` (the character), `user_system` (the persona), `group` (the
scene), sample pairs, history, the newest turn. The prompt is fitted to the context window
with the reply's budget reserved; what was kept and trimmed is reported part by part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conversations.llm.base import ChatMessage
from conversations.macros import expand
from conversations.tokens import CALL_OVERHEAD_TOKENS, TokenEstimator, default_estimator

DEFAULT_PERSONA_NAME = "User"
POST_HISTORY_LABEL = "post-history instructions"
# The shortest reply worth asking for when a prompt leaves the window little room.
MIN_REPLY_TOKENS = 64
CONTINUE_INSTRUCTION = (
    "[Continue your last message from exactly where it stopped. Do not repeat any of it.]"
)


@dataclass(frozen=True)
class CharacterSpec:
    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    samples: tuple[tuple[str, str], ...] = ()
    nickname: str = ""


@dataclass(frozen=True)
class PersonaSpec:
    name: str = DEFAULT_PERSONA_NAME
    description: str = ""


@dataclass(frozen=True)
class SceneSpec:
    name: str
    description: str = ""


@dataclass(frozen=True)
class HistoryTurn:
    role: Literal["user", "assistant"]
    content: str
    name: str = ""


@dataclass(frozen=True)
class PromptInput:
    character: CharacterSpec
    persona: PersonaSpec = field(default_factory=PersonaSpec)
    scene: SceneSpec | None = None
    # The whole visible history, oldest first; its last turn is the one being answered.
    history: tuple[HistoryTurn, ...] = ()
    lore: tuple[str, ...] = ()
    # Lore placed before the character's description (`position: before_char`).
    lore_before: tuple[str, ...] = ()
    continue_last: bool = False
    context_tokens: int = 2048
    reply_tokens: int = 400
    # Makes {{pick:...}} choose the same way for the whole conversation.
    seed: str = ""


@dataclass(frozen=True)
class PromptPart:
    label: str
    role: str
    tokens: int
    included: bool
    reason: str = ""


@dataclass(frozen=True)
class PromptResult:
    messages: tuple[ChatMessage, ...]
    parts: tuple[PromptPart, ...]
    estimated_tokens: int
    budget_tokens: int
    history_included: int
    history_trimmed: int
    samples_included: int
    samples_trimmed: int

    @property
    def over_budget(self) -> bool:
        return self.estimated_tokens > self.budget_tokens


def _message(role: str, content: str, name: str = "") -> ChatMessage:
    message: ChatMessage = {"role": role, "content": content}
    if name:
        message["name"] = name
    return message


def _system_content(spec: PromptInput, char: str, user: str) -> str:
    character = spec.character
    sections = [
        *spec.lore_before,
        character.description,
        f"Personality: {character.personality}" if character.personality else "",
        f"Scenario: {character.scenario}" if character.scenario else "",
        character.system_prompt,
        *spec.lore,
    ]
    return "\n\n".join(
        expand(s.strip(), char=char, user=user, seed=spec.seed) for s in sections if s.strip()
    )


def reply_limit(spec: PromptInput, result: PromptResult) -> int:
    """The reply's token limit with the prompt built from `spec` in the window: its reply length,
    or what the window has left when the parts that are always kept overflow their share; 0 when
    fewer than `MIN_REPLY_TOKENS` are left (nothing worth asking for)."""
    room = min(spec.reply_tokens, spec.context_tokens - result.estimated_tokens)
    return room if room >= min(MIN_REPLY_TOKENS, spec.reply_tokens) else 0


def messages_budget(*, context_tokens: int, reply_tokens: int) -> int:
    """Tokens the prompt's messages may take: the window less the reply and the call's own."""
    return max(context_tokens - reply_tokens - CALL_OVERHEAD_TOKENS, 0)


def build_prompt(spec: PromptInput, estimator: TokenEstimator | None = None) -> PromptResult:
    """Assemble and fit the prompt; never more than one `system` message."""
    est = estimator or default_estimator
    char = spec.character.nickname or spec.character.name
    user = spec.persona.name or DEFAULT_PERSONA_NAME
    budget = messages_budget(context_tokens=spec.context_tokens, reply_tokens=spec.reply_tokens)

    head: list[tuple[str, ChatMessage]] = [
        (
            "system",
            _message(
                "system",
                _system_content(spec, char, user),
                spec.character.name,
            ),
        ),
    ]
    persona_text = expand(spec.persona.description.strip(), char=char, user=user, seed=spec.seed)
    if persona_text:
        # Without a description the persona is only a name, which every user turn carries.
        head.append(("persona", _message("user_system", persona_text, user)))
    if spec.scene is not None:
        scene_text = expand(spec.scene.description, char=char, user=user, seed=spec.seed)
        head.append(("scene", _message("group", scene_text, spec.scene.name)))

    def turn_message(turn: HistoryTurn) -> ChatMessage:
        name = turn.name or (user if turn.role == "user" else spec.character.name)
        return _message(turn.role, turn.content, name)

    history = [turn_message(t) for t in spec.history]
    tail: list[ChatMessage] = []
    if spec.continue_last:
        tail.append(_message("user", CONTINUE_INSTRUCTION, user))
    # The turn being answered (or continued) is always kept.
    if history:
        tail.insert(0, history.pop())
    after = expand(
        spec.character.post_history_instructions.strip(), char=char, user=user, seed=spec.seed
    )
    after_cost = 0
    if after and tail and tail[-1]["role"] == "user":
        # Restated after the history, where they weigh most; M2-her refuses a second `system`
        # message, so they close the last user message (the one being answered).
        closed = tail[-1]
        tail[-1] = _message("user", f"{closed['content']}\n\n{after}", closed.get("name", ""))
        after_cost = est.message(tail[-1]["content"]) - est.message(closed["content"])
    elif after:
        system = head[0][1]
        system["content"] = "\n\n".join(x for x in (system["content"], after) if x)

    used = sum(est.message(m["content"]) for _, m in head) + sum(
        est.message(m["content"]) for m in tail
    )
    history_costs = [est.message(m["content"]) for m in history]
    kept_from = len(history)  # history[kept_from:] is included

    def take_history(limit: int) -> None:
        nonlocal kept_from, used
        while kept_from > limit and used + history_costs[kept_from - 1] <= budget:
            kept_from -= 1
            used += history_costs[kept_from]

    # Sample dialogues are dropped first when the budget is tight (the canonical prompt, and the
    # card contract's "prune mes_example once real history fills the context"): history first.
    take_history(0)

    samples = [
        (
            _message("sample_message_user", expand(u, char=char, user=user, seed=spec.seed), user),
            _message(
                "sample_message_ai",
                expand(a, char=char, user=user, seed=spec.seed),
                spec.character.name,
            ),
        )
        for u, a in spec.character.samples
    ]
    sample_costs = [est.message(u["content"]) + est.message(a["content"]) for u, a in samples]
    samples_kept = 0
    if kept_from == 0:
        while samples_kept < len(samples) and used + sample_costs[samples_kept] <= budget:
            used += sample_costs[samples_kept]
            samples_kept += 1

    messages: list[ChatMessage] = [m for _, m in head]
    parts = [PromptPart(label, m["role"], est.message(m["content"]), True) for label, m in head]
    for index, (pair, cost) in enumerate(zip(samples, sample_costs, strict=True)):
        keep = index < samples_kept
        parts.append(
            PromptPart(
                f"sample {index + 1}",
                "sample_message_user/ai",
                cost,
                keep,
                "" if keep else "trimmed: history comes first",
            )
        )
        if keep:
            messages.extend(pair)
    for index, (message, cost) in enumerate(zip(history, history_costs, strict=True)):
        keep = index >= kept_from
        parts.append(
            PromptPart(
                f"history {index + 1}",
                message["role"],
                cost,
                keep,
                "" if keep else "trimmed: older than the context window allows",
            )
        )
        if keep:
            messages.append(message)
    messages.extend(tail)
    for index, message in enumerate(tail):
        cost = est.message(message["content"])
        if index == len(tail) - 1:
            cost -= after_cost  # reported as a part of its own
        label = "newest turn" if index == 0 else "continue"
        parts.append(PromptPart(label, message["role"], cost, True))
    if after_cost:
        parts.append(PromptPart(POST_HISTORY_LABEL, "user", after_cost, True))
    return PromptResult(
        messages=tuple(messages),
        parts=tuple(parts),
        estimated_tokens=used + CALL_OVERHEAD_TOKENS,
        budget_tokens=budget + CALL_OVERHEAD_TOKENS,
        history_included=len(history) - kept_from,
        history_trimmed=kept_from,
        samples_included=samples_kept,
        samples_trimmed=len(samples) - samples_kept,
    )

"""Selectors that turn stored characters, personas, scenes and turns into `PromptInput`s."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any, Literal, NamedTuple
from uuid import UUID

from django.db.models import Model
from django.db.models.sql import Query

from characters.models import Character, Lorebook, LorebookEntry, Persona, SampleDialogue, Scene
from companion.compiled import Compiled, M, columns, instance
from conversations.llm.factory import context_tokens
from conversations.lore import LoreBook, LoreEntry, LoreResult, apply_lorebook, messages_scanned
from conversations.lore_decorators import parse_decorators
from conversations.macros import expand
from conversations.models import Conversation, Role, Turn, TurnStatus
from conversations.prompts import (
    CharacterSpec,
    HistoryTurn,
    PersonaSpec,
    PromptInput,
    SceneSpec,
    messages_budget,
)
from conversations.tokens import default_estimator

# The budget trims far below this; the cap only bounds what one query loads.
HISTORY_FETCH_LIMIT = 400
# A prompt is usually filled by far fewer turns than the cap, so a reply's start reads this many
# first, and up to the cap only when older turns could still fit (a long context window, short
# turns, a lorebook scanning deeper). Reading and weighing 400 turns per message cost ~1 ms in the
# start transaction and ~1 ms of prompt building on the event loop, in long conversations.
HISTORY_FIRST_READ = 48
# The estimator's scale may move a little between this read and the prompt's assembly.
HISTORY_FILL_MARGIN = 1.25
PREVIEW_USER_TEXT = "Hello!"
# Lore may fill at most this share of the prompt's budget (a book's own budget may be lower).
LORE_BUDGET_SHARE = 0.25


def character_spec(character: Character) -> CharacterSpec:
    return CharacterSpec(
        name=character.name,
        nickname=character.nickname,
        description=character.description,
        personality=character.personality,
        scenario=character.scenario,
        system_prompt=character.system_prompt,
        post_history_instructions=character.post_history_instructions,
        samples=tuple((s.user_line, s.character_line) for s in _sample_dialogues(character)),
    )


def _sample_dialogues(character: Character) -> Iterable[SampleDialogue]:
    """The ones `conversation_for_prompt` loaded with the character, or else a query."""
    loaded: list[SampleDialogue] | None = getattr(character, "loaded_samples", None)
    return loaded if loaded is not None else character.sample_dialogues.all()


def persona_spec(persona: Persona | None) -> PersonaSpec:
    if persona is None:
        return PersonaSpec()
    return PersonaSpec(name=persona.name, description=persona.description)


def opening_texts(
    *, character: Character, scene: Scene | None, persona: Persona | None
) -> list[str]:
    """A new conversation's opening reply and its swipes, as they are stored: expanded (the
    history holds no macros). The first may be empty: the character then waits for the user."""
    # A scene's own opening line sets that scene; the character's generic alternates would not
    # fit it, so they are offered as swipes only alongside the character's greeting.
    if scene is not None and scene.opening_line.strip():
        texts = [scene.opening_line]
    else:
        texts = [character.greeting, *character.alternate_greetings]
    char, user = character.nickname or character.name, persona_spec(persona).name
    return [expand(text, char=char, user=user) for text in texts if isinstance(text, str)]


def scene_spec(scene: Scene | None) -> SceneSpec | None:
    if scene is None:
        return None
    return SceneSpec(name=scene.name, description=scene.description)


def _flag(extensions: Any, key: str) -> bool:
    return isinstance(extensions, dict) and extensions.get(key) is True


def _lore_entry(entry: LorebookEntry) -> LoreEntry:
    # SillyTavern keeps its selective logic and recursion switches in the entry's extensions.
    logic = entry.extensions.get("selectiveLogic") if isinstance(entry.extensions, dict) else 0
    return LoreEntry(
        id=entry.pk,
        keys=tuple(entry.keys),
        content=entry.content,
        secondary_keys=tuple(entry.secondary_keys),
        enabled=entry.enabled,
        constant=entry.constant,
        selective=entry.selective,
        selective_logic=logic if logic in (0, 1, 2, 3) else 0,
        case_sensitive=entry.case_sensitive,
        use_regex=entry.use_regex,
        insertion_order=entry.insertion_order,
        priority=entry.priority,
        position=entry.position,
        name=entry.name or entry.comment[:80],
        exclude_recursion=_flag(entry.extensions, "exclude_recursion"),
        prevent_recursion=_flag(entry.extensions, "prevent_recursion"),
    )


def _enabled_entries() -> Any:
    return LorebookEntry.objects.filter(enabled=True).order_by("insertion_order", "id")


def lorebook_spec(*, character_id: int) -> LoreBook | None:
    """The character's lorebook with its enabled entries, or None."""
    book = Lorebook.objects.filter(character_id=character_id).first()
    if book is None:
        return None
    return _lorebook(book, list(_enabled_entries().filter(lorebook=book)))


def _lorebook(book: Lorebook, entries: list[LorebookEntry]) -> LoreBook:
    return LoreBook(
        entries=tuple(_lore_entry(e) for e in entries),
        scan_depth=book.scan_depth,
        token_budget=book.token_budget,
        recursive_scanning=book.recursive_scanning,
    )


def _loaded_lorebook(character: Character) -> LoreBook | None:
    """The book `conversation_for_prompt` loaded with the character (no query)."""
    book: Lorebook | None = getattr(character, "lorebook", None)
    if book is None:
        return None
    return _lorebook(book, book.enabled_entries)  # type: ignore[attr-defined]


def with_lore(spec: PromptInput, *, character_id: int) -> tuple[PromptInput, LoreResult]:
    """Add the lorebook entries the recent history fires; report which fired and which fit."""
    return _with_book(spec, lorebook_spec(character_id=character_id))


def _with_book(spec: PromptInput, book: LoreBook | None) -> tuple[PromptInput, LoreResult]:
    if book is None:
        return spec, LoreResult()
    prompt_budget = messages_budget(
        context_tokens=spec.context_tokens, reply_tokens=spec.reply_tokens
    )
    result = apply_lorebook(
        book,
        messages=[turn.content for turn in spec.history],
        budget_tokens=int(prompt_budget * LORE_BUDGET_SHARE),
    )
    split = result.before_char
    return replace(spec, lore_before=result.texts[:split], lore=result.texts[split:]), result


def prompt_input_for_new_conversation(
    *,
    character: Character,
    persona: Persona | None = None,
    scene: Scene | None = None,
    user_text: str = PREVIEW_USER_TEXT,
) -> PromptInput:
    """What a new conversation's first reply would be built from (the admin preview)."""
    return prompt_preview_for_new_conversation(
        character=character, persona=persona, scene=scene, user_text=user_text
    )[0]


def prompt_preview_for_new_conversation(
    *,
    character: Character,
    persona: Persona | None = None,
    scene: Scene | None = None,
    user_text: str = PREVIEW_USER_TEXT,
) -> tuple[PromptInput, LoreResult]:
    """The new conversation's prompt input, and the lorebook entries that fired for it."""
    opening = opening_texts(character=character, scene=scene, persona=persona)[0]
    history: list[HistoryTurn] = []
    if opening:
        history.append(HistoryTurn(role="assistant", content=opening, name=character.name))
    history.append(HistoryTurn(role="user", content=user_text, name=persona_spec(persona).name))
    spec = PromptInput(
        character=character_spec(character),
        persona=persona_spec(persona),
        scene=scene_spec(scene),
        history=tuple(history),
        context_tokens=context_tokens(),
        reply_tokens=character.default_max_tokens,
    )
    return with_lore(spec, character_id=character.pk)


def conversation_for_prompt(*, conversation_id: UUID) -> Conversation:
    """A conversation with everything its prompt needs: its character (with the sample dialogues
    and the lorebook's enabled entries), persona and scene. Two queries, three with a lorebook.

    Every reply starts here, so the statements are compiled once and the objects are made the
    way the ORM makes them (`from_db`) from their rows.
    """
    rows = _prompt_row.rows(conversation_id=conversation_id)
    if not rows:
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    row = iter(rows[0])
    conversation, character = _take(Conversation, row), _take(Character, row)
    if conversation is None or character is None:  # both inner-joined: never, but typed so
        raise Conversation.DoesNotExist(f"no conversation {conversation_id}")
    book = _take(Lorebook, row)
    conversation.character = character
    conversation.persona = _take(Persona, row)
    conversation.scene = _take(Scene, row)
    Character.lorebook.related.set_cached_value(character, book)
    character.loaded_samples = [  # type: ignore[attr-defined]
        instance(SampleDialogue, values) for values in _samples.rows(character_id=character.pk)
    ]
    if book is not None:
        book.enabled_entries = [  # type: ignore[attr-defined]
            instance(LorebookEntry, values) for values in _entries.rows(lorebook_id=book.pk)
        ]
    return conversation


# One row holds these models' columns in turn (outer joins give NULLs for a missing one).
_ROW_MODELS: list[tuple[str, type[Model]]] = [
    ("", Conversation),
    ("character__", Character),
    ("character__lorebook__", Lorebook),
    ("persona__", Persona),
    ("scene__", Scene),
]


def _take(model: type[M], row: Iterator[Any]) -> M | None:
    """The next `model`'s columns of `row` as an instance (or None)."""
    return instance(model, [next(row) for _ in columns(model)])


_prompt_row = Compiled(
    lambda conversation_id: (
        Conversation.objects.filter(pk=conversation_id)
        .values_list(*(prefix + name for prefix, model in _ROW_MODELS for name in columns(model)))
        .query
    ),
    conversation_id=UUID(int=0x5E8),
)
_samples = Compiled(
    lambda character_id: (
        SampleDialogue.objects.filter(character_id=character_id)
        .order_by("position", "id")
        .values_list(*columns(SampleDialogue))
        .query
    ),
    character_id=918_273_649,
)
_entries = Compiled(
    lambda lorebook_id: (
        _enabled_entries()
        .filter(lorebook_id=lorebook_id)
        .values_list(*columns(LorebookEntry))
        .query
    ),
    lorebook_id=918_273_650,
)


class RecentTurn(NamedTuple):
    id: int
    role: str
    name: str
    content: str
    status: str


def recent_turns(*, conversation: Conversation) -> list[RecentTurn]:
    """The visible turns, newest first, as many as the next prompt could use (the cap counts
    failed and empty turns too: the token budget keeps far fewer than it allows).

    `conversation` comes from `conversation_for_prompt`: its character's reply length and
    lorebook say how much history the prompt can hold and how much the lore scans.
    """
    first = [RecentTurn(*row) for row in _recent_first.rows(conversation_id=conversation.pk)]
    if len(first) < HISTORY_FIRST_READ or _older_turns_cannot_fit(conversation, first):
        return first
    return [RecentTurn(*row) for row in _recent.rows(conversation_id=conversation.pk)]


def _older_turns_cannot_fit(conversation: Conversation, newest: list[RecentTurn]) -> bool:
    """Whether `newest` alone outweigh the prompt's budget (the prompt keeps a run of the newest
    turns that fit, so nothing older could join it) and cover what the lorebook scans."""
    said = [turn.content for turn in newest if turn.content and turn.status != TurnStatus.FAILED]
    book: Lorebook | None = getattr(conversation.character, "lorebook", None)
    if book is not None and len(said) < _deepest_scan(book):
        return False
    budget = messages_budget(
        context_tokens=context_tokens(), reply_tokens=conversation.character.default_max_tokens
    )
    weight = sum(default_estimator.message(text) for text in said)
    return weight > budget * HISTORY_FILL_MARGIN


def _deepest_scan(book: Lorebook) -> int:
    """How many of the newest messages the book's keys reach: its own depth, or an entry's
    `@@scan_depth` beyond it."""
    entries = book.enabled_entries  # type: ignore[attr-defined]
    depths = (parse_decorators(entry.content).scan_depth for entry in entries)
    return max(messages_scanned(depth) for depth in (book.scan_depth, *depths))


def _recent_query(conversation_id: UUID, limit: int) -> Query:
    return (
        Turn.objects.filter(conversation_id=conversation_id, active=True)
        .order_by("-seq")
        .values_list("id", "role", "name", "content", "status")[:limit]
        .query
    )


_recent_first = Compiled(
    lambda conversation_id: _recent_query(conversation_id, HISTORY_FIRST_READ),
    conversation_id=UUID(int=0x5EB),
)
_recent = Compiled(
    lambda conversation_id: _recent_query(conversation_id, HISTORY_FETCH_LIMIT),
    conversation_id=UUID(int=0x5E2),
)


def prompt_input_for_conversation(
    *,
    conversation: Conversation,
    continue_last: bool = False,
    recent: list[RecentTurn] | None = None,
) -> PromptInput:
    """The prompt input for the next reply (with the lore its history fires)."""
    return prompt_preview_for_conversation(
        conversation=conversation, continue_last=continue_last, recent=recent
    )[0]


def prompt_preview_for_conversation(
    *,
    conversation: Conversation,
    continue_last: bool = False,
    recent: list[RecentTurn] | None = None,
) -> tuple[PromptInput, LoreResult]:
    """The prompt input for the next reply: the visible history, newest turn last.

    `conversation` comes from `conversation_for_prompt`; `recent` from `recent_turns` when the
    caller has it already. Failed replies and empty placeholders are left out; a stopped reply
    counts as said.
    """
    conversation_id = conversation.pk
    if recent is None:
        recent = recent_turns(conversation=conversation)
    history = tuple(
        HistoryTurn(role=_role(turn.role), content=turn.content, name=turn.name)
        for turn in reversed(recent)
        if turn.content and turn.status != TurnStatus.FAILED
    )
    spec = PromptInput(
        character=character_spec(conversation.character),
        persona=persona_spec(conversation.persona),
        scene=scene_spec(conversation.scene),
        history=history,
        continue_last=continue_last,
        context_tokens=context_tokens(),
        reply_tokens=conversation.character.default_max_tokens,
        seed=str(conversation_id),
    )
    return _with_book(spec, _loaded_lorebook(conversation.character))


def _role(value: str) -> Literal["user", "assistant"]:
    return "user" if value == Role.USER else "assistant"

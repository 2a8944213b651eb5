"""The backend Protocol and the values that cross it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal, NotRequired, Protocol, TypedDict

MAX_COMPLETION_TOKENS = 2048


class ChatMessage(TypedDict):
    """One M2-her message: role is system, user_system, group, sample_message_user,
    sample_message_ai, user or assistant."""

    role: str
    content: str
    name: NotRequired[str]


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int = 400

    def clamped(self) -> GenerationParams:
        """Clamp to M2-her's documented ranges: (0, 1], (0, 1], 1-2048."""
        temperature = self.temperature if 0 < self.temperature <= 1 else 1.0
        top_p = self.top_p if 0 < self.top_p <= 1 else 0.95
        max_tokens = min(max(int(self.max_tokens), 1), MAX_COMPLETION_TOKENS)
        return GenerationParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # Some final frames report only the total; it is kept as given.
    total_tokens: int | None = None

    @property
    def total(self) -> int | None:
        """The total as reported, else the sum of the split when both parts are known."""
        if self.total_tokens is not None:
            return self.total_tokens
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Sensitivity:
    input_flagged: bool = False
    input_type: int = 0
    output_flagged: bool = False
    output_type: int = 0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: Literal["stop", "length"] = "stop"
    usage: Usage = field(default_factory=Usage)
    sensitivity: Sensitivity = field(default_factory=Sensitivity)
    model: str = ""


StreamEvent = TextDelta | Completion


class ChatBackend(Protocol):
    """A model that answers a list of M2-her messages.

    `stream` yields `TextDelta`s (only new text) and ends with exactly one `Completion`;
    failures raise `LLMError`. Cancelling the consuming task stops generation.
    """

    name: str

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]: ...

    async def complete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion: ...

    async def aclose(self) -> None: ...

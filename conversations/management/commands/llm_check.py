"""Send one turn to the configured model backend through the real prompt builder."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandParser

from conversations.llm.base import Completion, GenerationParams
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.factory import backend_config, context_tokens, get_backend
from conversations.prompts import CharacterSpec, HistoryTurn, PersonaSpec, PromptInput, build_prompt

CHARACTER = CharacterSpec(
    name="Mira",
    description="{{char}} keeps the lighthouse on a small northern island and loves visitors.",
    personality="Warm, curious, answers in two or three sentences.",
    scenario="{{user}} has just climbed the stairs to the lamp room on a windy evening.",
    samples=(("What is it like here?", "*smiles* Loud, {{user}}. The sea never stops talking."),),
)
PERSONA = PersonaSpec(name="Sam", description="A traveller who arrived on the evening ferry.")


class Command(BaseCommand):
    help = "Check the model backend: one short conversation, streamed to the terminal."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--prompt", default="Hello! Who are you?", help="The user's message.")
        parser.add_argument("--no-stream", action="store_true", help="One non-streamed call.")
        parser.add_argument("--max-tokens", type=int, default=120, help="Longest reply.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            completion = asyncio.run(
                self._run(options["prompt"], options["max_tokens"], stream=not options["no_stream"])
            )
        except LLMError as exc:
            detail = f" [{exc.detail}]" if exc.detail else ""
            self.stderr.write(f"error: {exc.code}: {exc.message}{detail}")
            sys.exit(1)
        except (ImproperlyConfigured, ValueError) as exc:
            self.stderr.write(f"error: config: {exc}")
            sys.exit(1)
        usage = completion.usage
        self.stdout.write(
            f"finish_reason={completion.finish_reason} "
            f"prompt_tokens={_count(usage.prompt_tokens)} "
            f"completion_tokens={_count(usage.completion_tokens)}"
        )

    async def _run(self, prompt: str, max_tokens: int, *, stream: bool) -> Completion:
        config = backend_config()
        self.stderr.write(f"backend: {config.kind} {config.model} {config.base_url}".rstrip())
        params = GenerationParams(max_tokens=max_tokens)
        spec = PromptInput(
            character=CHARACTER,
            persona=PERSONA,
            history=(HistoryTurn(role="user", content=prompt, name=PERSONA.name),),
            context_tokens=context_tokens(),
            reply_tokens=params.clamped().max_tokens,
        )
        messages = build_prompt(spec).messages
        backend = get_backend()
        try:
            if not stream:
                completion = await backend.complete(messages, params)
                self.stdout.write(completion.text)
                return completion
            async for event in backend.stream(messages, params):
                if isinstance(event, Completion):
                    self.stdout.write("")
                    return event
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
        finally:
            await backend.aclose()
        raise LLMError(ErrorCode.TRUNCATED, detail="the stream ended without a completion")


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)

"""Time to first token and decode speed of the embedded local model (prints JSON)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

RUNS = 3


async def measure() -> dict[str, Any]:
    from conversations.llm.base import Completion, GenerationParams, TextDelta
    from conversations.llm.factory import get_backend
    from conversations.prompts import CharacterSpec, HistoryTurn, PromptInput, build_prompt

    backend = get_backend()
    prompt = build_prompt(
        PromptInput(
            character=CharacterSpec(
                name="Juniper",
                description="Juniper keeps the lighthouse on a foggy island and loves old stories.",
                personality="Curious, warm, a little dry.",
            ),
            history=(HistoryTurn(role="user", content="Tell me about the storm last night."),),
        )
    )
    params = GenerationParams(temperature=0.7, top_p=0.95, max_tokens=200)
    started = time.perf_counter()
    await backend.complete(list(prompt.messages), GenerationParams(max_tokens=1))
    load_s = time.perf_counter() - started
    firsts, speeds = [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        first = 0.0
        async for event in backend.stream(list(prompt.messages), params):
            if isinstance(event, TextDelta) and not first:
                first = time.perf_counter()
            elif isinstance(event, Completion):
                ended = time.perf_counter()
                tokens = event.usage.completion_tokens or 0
                firsts.append(first - started)
                if tokens > 1 and ended > first:
                    speeds.append((tokens - 1) / (ended - first))
    await backend.aclose()
    return {
        "load_and_first_call_s": round(load_s, 3),
        "first_token_p50_s": round(statistics.median(firsts), 3),
        "decode_tokens_per_s": round(statistics.median(speeds), 1) if speeds else 0.0,
    }


def main() -> None:
    os.environ["LLM_BACKEND"] = "local"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
    import django

    django.setup()
    print(json.dumps(asyncio.run(measure())))


if __name__ == "__main__":
    main()

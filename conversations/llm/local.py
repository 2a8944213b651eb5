"""The embedded local model (SmolLM2-135M-Instruct through llama.cpp).

One worker thread owns the model, so requests run one at a time in arrival order (FIFO) and
the event loop never blocks. Keeping one `Llama` lets llama.cpp reuse the KV cache for the
prompt prefix that the next turn shares with the last one. Cancelling the consuming task sets
a flag the worker checks between tokens.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from conversations.llm.base import (
    MAX_COMPLETION_TOKENS,
    ChatMessage,
    Completion,
    GenerationParams,
    StreamEvent,
    TextDelta,
    Usage,
)
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.local_model import LoadedModel, load_model
from conversations.llm.roles import fold_roles

logger = logging.getLogger(__name__)

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None

_Item = str | Completion | LLMError


def _worker() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-model")
        return _executor


@dataclass
class LocalStats:
    """Counters for operators and tests: how many replies ran, finished or were cancelled."""

    started: int = 0
    finished: int = 0
    cancelled: int = 0
    tokens_generated: int = 0


class _Job:
    __slots__ = ("cancelled", "emit", "max_tokens", "messages", "temperature", "top_p")

    def __init__(self, messages: list[ChatMessage], params: GenerationParams) -> None:
        self.messages = messages
        self.temperature = params.temperature
        self.top_p = params.top_p
        self.max_tokens = params.max_tokens
        self.emit: Callable[[_Item], None] = _discard
        self.cancelled = threading.Event()


def _discard(_item: _Item) -> None:
    """Where a job's output goes until its consumer is attached."""


class LocalBackend:
    """Runs a GGUF chat model in-process; see `ChatBackend` for the contract."""

    name = "local"

    def __init__(
        self,
        *,
        model_path: str,
        context_tokens: int = 2048,
        temperature_scale: float = 0.7,
        repeat_penalty: float = 1.1,
        n_threads: int = 0,
    ) -> None:
        self.model_path = model_path
        self.context_tokens = context_tokens
        self.n_threads = n_threads
        # M2-her's temperature scale (default 1.0) is too hot for a 135M model.
        self.temperature_scale = temperature_scale
        self.repeat_penalty = repeat_penalty
        self.stats = LocalStats()

    def __repr__(self) -> str:
        return f"<LocalBackend {self.model_path} n_ctx={self.context_tokens}>"

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the reply's text deltas, then one `Completion`."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        job = _Job(fold_roles(messages), self._clamp(params))

        def emit(item: _Item) -> None:
            if job.cancelled.is_set():
                return
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop closed while the job was still queued
                job.cancelled.set()

        job.emit = emit
        _worker().submit(self._run, job)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, str):
                    yield TextDelta(item)
                elif isinstance(item, Completion):
                    yield item
                    return
                else:
                    raise item
        finally:
            job.cancelled.set()

    async def complete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        """Generate the whole reply and return it."""
        async for event in self.stream(messages, params):
            if isinstance(event, Completion):
                return event
        raise LLMError(ErrorCode.TRUNCATED)

    async def aclose(self) -> None:
        """The model stays loaded for the life of the process."""

    def _clamp(self, params: GenerationParams) -> GenerationParams:
        # Zero stays zero here: greedy decoding is useful locally (M2-her rejects it).
        return GenerationParams(
            temperature=min(max(params.temperature, 0.0), 2.0) * self.temperature_scale,
            top_p=params.top_p if 0 < params.top_p <= 1 else 0.95,
            max_tokens=min(max(int(params.max_tokens), 1), MAX_COMPLETION_TOKENS),
        )

    def _run(self, job: _Job) -> None:
        if job.cancelled.is_set():
            self.stats.cancelled += 1
            return
        self.stats.started += 1
        try:
            model = load_model(self.model_path, self.context_tokens, self.n_threads)
            completion = self._generate(model, job)
        except LLMError as exc:
            job.emit(exc)
            return
        except Exception as exc:
            logger.exception("local model failed")
            job.emit(LLMError(ErrorCode.UPSTREAM_UNAVAILABLE, detail=f"{type(exc).__name__}"))
            return
        if completion is None:
            self.stats.cancelled += 1
        else:
            self.stats.finished += 1
            job.emit(completion)

    def _generate(self, model: LoadedModel, job: _Job) -> Completion | None:
        prompt, limit = model.fit(job.messages, job.max_tokens)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        parts: list[str] = []
        produced = 0
        finish: str = "length"
        tokens = model.llama.generate(
            prompt,
            temp=job.temperature,
            top_p=job.top_p,
            top_k=40,
            min_p=0.05,
            repeat_penalty=self.repeat_penalty,
        )
        try:
            for token in tokens:
                if job.cancelled.is_set():
                    return None
                if token in model.stop_ids:
                    finish = "stop"
                    break
                produced += 1
                self.stats.tokens_generated += 1
                piece = decoder.decode(bytes(model.llama.detokenize([token])))
                if piece:
                    parts.append(piece)
                    job.emit(piece)
                if produced >= limit:
                    break
        finally:
            tokens.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            parts.append(tail)
            job.emit(tail)
        return Completion(
            text="".join(parts),
            finish_reason="stop" if finish == "stop" else "length",
            usage=Usage(
                prompt_tokens=len(prompt),
                completion_tokens=produced,
                total_tokens=len(prompt) + produced,
            ),
            model=model.name,
        )

"""A backend that talks to a model over HTTP, with retries before the first delta only."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter

from companion import jsoncodec
from conversations.llm.base import ChatMessage, Completion, GenerationParams, StreamEvent
from conversations.llm.classify import TOKEN_LIMIT_CODE
from conversations.llm.decoders import Decoder
from conversations.llm.errors import ErrorCode, LLMError
from conversations.llm.session import StreamSession
from conversations.llm.transport import ClientPool, HttpSettings

logger = logging.getLogger(__name__)


class WireStyle(Protocol):
    path: str

    def body(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        *,
        model: str,
        stream: bool,
    ) -> dict[str, Any]: ...

    def decoder(self) -> Decoder: ...


class _RetryAfterBeyond(stop_base):
    """Give up at once when the service asks for a longer wait than we are willing to make."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = exc.retry_after if isinstance(exc, LLMError) else None
        return after is not None and after > self.cap


def _context_too_long(exc: LLMError) -> LLMError:
    """MiniMax's 1039 ("token limit") is a per-minute token quota or an over-long request;
    the same answer after a backoff means the request itself is too long (m2her-wire.md §D)."""
    return LLMError(
        ErrorCode.CONTEXT_TOO_LONG,
        provider_code=exc.provider_code,
        detail=exc.detail,
        retryable=False,
    )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, LLMError) and exc.retryable


class RemoteBackend:
    """Streams replies from an HTTP model service; see `ChatBackend` for the contract."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        model: str,
        style: WireStyle,
        http: HttpSettings,
        api_key: str = "",
        clients: ClientPool | None = None,
        prepare: Callable[[Sequence[ChatMessage]], list[ChatMessage]] | None = None,
        clamp: Callable[[GenerationParams], GenerationParams] = GenerationParams.clamped,
    ) -> None:
        self.name = name
        self.model = model
        self.style = style
        self.url = base_url.rstrip("/") + style.path
        self._http = http
        self._clients = clients or ClientPool(http)
        self._prepare = prepare
        self._clamp = clamp
        self._headers = {
            "Accept": "text/event-stream, application/json",
            "Content-Type": "application/json",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def __repr__(self) -> str:
        # Deliberately without the headers: they hold the API key.
        return f"<{type(self).__name__} {self.name} {self.model} {self.url}>"

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the reply's text deltas, then one `Completion`."""
        session, events = await self._open(messages, params, stream=True)
        try:
            while True:
                for event in events:
                    yield event
                if session.finished:
                    return
                events = await session.next_events()
        finally:
            await session.aclose()

    async def complete(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Completion:
        """Ask for the whole reply in one non-streamed response."""
        session, events = await self._open(messages, params, stream=False)
        try:
            while not session.finished:
                events.extend(await session.next_events())
        finally:
            await session.aclose()
        completion = events[-1]
        if not isinstance(completion, Completion):
            raise LLMError(ErrorCode.TRUNCATED, detail="the response ended without a completion")
        return completion

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def _open(
        self, messages: Sequence[ChatMessage], params: GenerationParams, *, stream: bool
    ) -> tuple[StreamSession, list[StreamEvent]]:
        prepared = self._prepare(messages) if self._prepare else list(messages)
        body = self.style.body(prepared, self._clamp(params), model=self.model, stream=stream)
        # Written once, for every attempt: httpx's `json=` takes ~4 µs a KiB of prompt.
        content = jsoncodec.encode(body)
        token_limits = 0

        async def attempt() -> tuple[StreamSession, list[StreamEvent]]:
            nonlocal token_limits
            client = self._clients.get()
            try:
                request = client.post_request(self.url, self._headers, content)
            except httpx.InvalidURL as exc:
                raise LLMError(ErrorCode.BAD_REQUEST, detail=str(exc), retryable=False) from None
            try:
                return await StreamSession.open(client, request, self.style.decoder(), self._http)
            except LLMError as exc:
                if exc.provider_code != TOKEN_LIMIT_CODE:
                    raise
                token_limits += 1
                if token_limits > 1:
                    raise _context_too_long(exc) from exc
                raise

        retrying = self._retrying()
        try:
            # Attempts end once the first event is in hand: nothing is retried after a delta.
            return await retrying(attempt)
        finally:
            # Called, not iterated, and reset after: the retry state then leaves no reference
            # cycle behind, which only the garbage collector's full pass would free (a pause
            # of every stream at once, its length growing with the replies since the last).
            retrying.iter_state.reset()

    def _retrying(self) -> AsyncRetrying:
        http = self._http
        backoff = wait_exponential_jitter(
            multiplier=http.retry_base_delay, max=http.retry_after_cap, jitter=http.retry_base_delay
        )

        def wait(state: RetryCallState) -> float:
            delay = backoff(state)
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, LLMError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            return min(delay, http.retry_after_cap)

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "%s: attempt %d failed (%s), retrying in %.2fs",
                self.name,
                state.attempt_number,
                exc,
                delay,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(http.max_retries + 1) | _RetryAfterBeyond(http.retry_after_cap),
            wait=wait,
            retry=retry_if_exception(_retryable),
            before_sleep=log_retry,
            reraise=True,
        )

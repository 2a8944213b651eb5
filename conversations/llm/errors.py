"""The one error taxonomy every backend maps its failures to."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    AUTH = "auth"
    RATE_LIMITED = "rate_limited"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    CONTENT_FILTERED = "content_filtered"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    TIMEOUT = "timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    TRUNCATED = "truncated"


RETRYABLE_CODES = frozenset(
    {ErrorCode.RATE_LIMITED, ErrorCode.TIMEOUT, ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.TRUNCATED}
)

# What a user is told; the upstream's own text goes to the log, never to the page.
DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.AUTH: "The model service rejected the server's API key.",
    ErrorCode.RATE_LIMITED: "The model service is busy right now. Try again in a moment.",
    ErrorCode.INSUFFICIENT_BALANCE: "The model service account has run out of credit.",
    ErrorCode.CONTENT_FILTERED: (
        "The model provider refused this content under its safety policy. "
        "Try rephrasing your message."
    ),
    ErrorCode.BAD_REQUEST: "The model service could not accept this request.",
    ErrorCode.CONTEXT_TOO_LONG: "The conversation is too long for the model's context window.",
    ErrorCode.TIMEOUT: "The model took too long to answer.",
    ErrorCode.UPSTREAM_UNAVAILABLE: "The model service is unavailable right now.",
    ErrorCode.TRUNCATED: "The connection to the model was cut before the reply finished.",
}


class LLMError(Exception):
    """A classified backend failure; `message` is safe to show to users."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        provider_code: int | None = None,
        detail: str = "",
        retryable: bool | None = None,
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES[code]
        self.retry_after = retry_after
        self.provider_code = provider_code
        self.detail = detail
        # Some failures of a retryable class are not worth retrying (a quota that resets hours
        # later); the provider's code decides that, not the class.
        self._retryable = retryable
        super().__init__(f"{code}: {self.message}")

    @property
    def retryable(self) -> bool:
        if self._retryable is not None:
            return self._retryable
        return self.code in RETRYABLE_CODES

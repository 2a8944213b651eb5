"""Map what an upstream said went wrong to the error taxonomy.

Precedence: a MiniMax numeric code (from `base_resp` or the "(NNNN)" that ends a message),
then the envelope's `code` string, then its `type`, then the HTTP status.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from conversations.llm.errors import ErrorCode, LLMError

_TRAILING_CODE = re.compile(r"\((\d{4,5})\)\s*$")
_DETAIL_LIMIT = 500

# m2her-wire.md §D. 1039 ("token limit") is a TPM limit more often than a context overflow:
# it is retried once as a rate limit, and the model client reads a second one as an over-long
# request (`remote.RemoteBackend`).
TOKEN_LIMIT_CODE = 1039
MINIMAX_CODES: dict[int, ErrorCode] = {
    1000: ErrorCode.UPSTREAM_UNAVAILABLE,
    1001: ErrorCode.TIMEOUT,
    1002: ErrorCode.RATE_LIMITED,
    1004: ErrorCode.AUTH,
    1008: ErrorCode.INSUFFICIENT_BALANCE,
    1013: ErrorCode.UPSTREAM_UNAVAILABLE,
    1024: ErrorCode.UPSTREAM_UNAVAILABLE,
    1026: ErrorCode.CONTENT_FILTERED,
    1027: ErrorCode.CONTENT_FILTERED,
    1033: ErrorCode.UPSTREAM_UNAVAILABLE,
    1039: ErrorCode.RATE_LIMITED,
    1041: ErrorCode.RATE_LIMITED,
    1042: ErrorCode.BAD_REQUEST,
    2013: ErrorCode.BAD_REQUEST,
    2045: ErrorCode.RATE_LIMITED,
    2049: ErrorCode.AUTH,
    2056: ErrorCode.RATE_LIMITED,
    2064: ErrorCode.UPSTREAM_UNAVAILABLE,
}
# A plan quota that resets hours later: retrying in seconds only burns attempts.
NOT_RETRYABLE_CODES = frozenset({2056})

_CODE_STRINGS: dict[str, ErrorCode] = {
    "insufficient_quota": ErrorCode.INSUFFICIENT_BALANCE,
    "insufficient_user_quota": ErrorCode.INSUFFICIENT_BALANCE,
    "context_length_exceeded": ErrorCode.CONTEXT_TOO_LONG,
    "string_above_max_length": ErrorCode.CONTEXT_TOO_LONG,
    "rate_limit_exceeded": ErrorCode.RATE_LIMITED,
    "invalid_api_key": ErrorCode.AUTH,
    "model_not_found": ErrorCode.BAD_REQUEST,
    "invalid_prompt": ErrorCode.BAD_REQUEST,
    "server_error": ErrorCode.UPSTREAM_UNAVAILABLE,
    "content_filter": ErrorCode.CONTENT_FILTERED,
}
_TYPE_STRINGS: dict[str, ErrorCode] = {
    "authorized_error": ErrorCode.AUTH,
    "authentication_error": ErrorCode.AUTH,
    "permission_error": ErrorCode.AUTH,
    "rate_limit_error": ErrorCode.RATE_LIMITED,
    "insufficient_balance_error": ErrorCode.INSUFFICIENT_BALANCE,
    "overloaded_error": ErrorCode.UPSTREAM_UNAVAILABLE,
    "api_error": ErrorCode.UPSTREAM_UNAVAILABLE,
    "server_error": ErrorCode.UPSTREAM_UNAVAILABLE,
    "bad_request_error": ErrorCode.BAD_REQUEST,
    "invalid_request_error": ErrorCode.BAD_REQUEST,
}
_CONTEXT_WORDS = ("context length", "context window", "too long", "maximum context")

SENSITIVE_TYPES: dict[int, str] = {
    1: "severe violation",
    2: "pornography",
    3: "advertising",
    4: "prohibited content",
    5: "abuse or insult",
    6: "violence or terrorism",
    7: "other",
}


def status_class(status: int) -> ErrorCode:
    if status in (401, 403):
        return ErrorCode.AUTH
    if status == 402:
        return ErrorCode.INSUFFICIENT_BALANCE
    if status == 413:
        return ErrorCode.CONTEXT_TOO_LONG
    if status == 429:
        return ErrorCode.RATE_LIMITED
    if status in (408, 504, 524):
        return ErrorCode.TIMEOUT
    if status >= 500:
        return ErrorCode.UPSTREAM_UNAVAILABLE
    return ErrorCode.BAD_REQUEST


def trailing_code(message: str) -> int | None:
    match = _TRAILING_CODE.search(message)
    return int(match.group(1)) if match else None


def error_from_code(
    code: int, status_msg: str = "", *, retry_after: float | None = None
) -> LLMError:
    """The error for a non-zero MiniMax `base_resp.status_code`."""
    error_code = MINIMAX_CODES.get(code, ErrorCode.UPSTREAM_UNAVAILABLE)
    return _error(error_code, code, status_msg, retry_after)


def body_error(
    body: Any, *, status: int = 200, retry_after: float | None = None
) -> LLMError | None:
    """The error a decoded JSON body carries, in any of the known envelopes, or None."""
    if not isinstance(body, dict):
        return None
    base = body.get("base_resp")
    if isinstance(base, dict):
        code = int_or_zero(base.get("status_code"))
        if code:
            return error_from_code(code, str(base.get("status_msg") or ""), retry_after=retry_after)
    error = body.get("error")
    if isinstance(error, dict):
        return envelope_error(error, status=status, retry_after=retry_after)
    if isinstance(error, str) and error:
        return envelope_error({"message": error}, status=status, retry_after=retry_after)
    if body.get("type") == "error" and "message" in body:
        # A Responses-API `error` event: the fields sit at the top level.
        return envelope_error(body, status=status, retry_after=retry_after)
    return None


def envelope_error(
    error: dict[str, Any], *, status: int = 200, retry_after: float | None = None
) -> LLMError:
    """Classify `{"message", "type", "code", ...}` (OpenAI, MiniMax/Anthropic, relay shapes)."""
    message = str(error.get("message") or "")
    raw_code = error.get("code")
    # Relays send the code as a number or as a string of one.
    numeric = trailing_code(message) or int_or_zero(raw_code) or None
    if numeric and numeric in MINIMAX_CODES:
        return _error(MINIMAX_CODES[numeric], numeric, message, retry_after)
    by_string = _CODE_STRINGS.get(str(raw_code)) or _TYPE_STRINGS.get(str(error.get("type")))
    error_code = by_string or (status_class(status) if status >= 400 else None)
    if error_code is None or error_code == ErrorCode.BAD_REQUEST:
        lowered = message.lower()
        if any(word in lowered for word in _CONTEXT_WORDS):
            error_code = ErrorCode.CONTEXT_TOO_LONG
    return _error(error_code or ErrorCode.UPSTREAM_UNAVAILABLE, numeric, message, retry_after)


def http_error(status: int, body: bytes, *, retry_after: float | None = None) -> LLMError:
    """The error for a non-2xx response, from its body when it has a known envelope."""
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    found = body_error(decoded, status=status, retry_after=retry_after)
    if found is not None:
        return found
    detail = f"HTTP {status}: {body[:_DETAIL_LIMIT].decode('utf-8', 'replace')}"
    return LLMError(status_class(status), retry_after=retry_after, detail=detail)


def sensitivity_error(input_type: int, output_type: int, *, flagged_input: bool) -> LLMError:
    side = "your message" if flagged_input else "the reply"
    kind = SENSITIVE_TYPES.get(input_type if flagged_input else output_type, "unspecified")
    message = (
        f"The model provider's safety filter flagged {side} ({kind}) and returned no reply. "
        "Try rephrasing your message."
    )
    return LLMError(
        ErrorCode.CONTENT_FILTERED,
        message,
        provider_code=1026 if flagged_input else 1027,
        detail=f"input_sensitive_type={input_type} output_sensitive_type={output_type}",
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(seconds, 0.0) if seconds == seconds else None  # NaN is not a delay


def _error(
    error_code: ErrorCode, provider_code: int | None, text: str, retry_after: float | None
) -> LLMError:
    return LLMError(
        error_code,
        retry_after=retry_after,
        provider_code=provider_code,
        detail=text[:_DETAIL_LIMIT],
        retryable=False if provider_code in NOT_RETRYABLE_CODES else None,
    )


def int_or_zero(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

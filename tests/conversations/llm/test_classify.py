import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from conversations.llm.classify import body_error, http_error, parse_retry_after, trailing_code
from conversations.llm.errors import ErrorCode, LLMError


def test_the_minimax_code_at_the_end_of_a_message_is_found():
    assert trailing_code("invalid params, invalid chat setting (2013)") == 2013
    assert trailing_code("usage limit exceeded ... (2056)  ") == 2056
    assert trailing_code("no code here") is None
    assert trailing_code("(2013) at the start does not count") is None


@pytest.mark.parametrize(
    ("code", "expected", "retryable"),
    [
        (1000, ErrorCode.UPSTREAM_UNAVAILABLE, True),
        (1001, ErrorCode.TIMEOUT, True),
        (1002, ErrorCode.RATE_LIMITED, True),
        (1004, ErrorCode.AUTH, False),
        (1008, ErrorCode.INSUFFICIENT_BALANCE, False),
        (1026, ErrorCode.CONTENT_FILTERED, False),
        (1027, ErrorCode.CONTENT_FILTERED, False),
        (1039, ErrorCode.RATE_LIMITED, True),
        (1042, ErrorCode.BAD_REQUEST, False),
        (2013, ErrorCode.BAD_REQUEST, False),
        (2049, ErrorCode.AUTH, False),
        (2056, ErrorCode.RATE_LIMITED, False),
        (2064, ErrorCode.UPSTREAM_UNAVAILABLE, True),
        (9999, ErrorCode.UPSTREAM_UNAVAILABLE, True),
    ],
)
def test_base_resp_codes_map_to_the_taxonomy(code, expected, retryable):
    error = body_error({"base_resp": {"status_code": code, "status_msg": "x"}})

    assert error is not None
    assert error.code == expected
    assert error.retryable is retryable
    assert error.provider_code == code


def test_success_base_resp_is_no_error():
    assert body_error({"base_resp": {"status_code": 0, "status_msg": "success"}}) is None
    assert body_error({"choices": [], "error": None}) is None


def test_numeric_code_wins_over_http_status_and_type():
    body = {
        "type": "error",
        "error": {"type": "api_error", "message": "insufficient balance (1008)"},
    }

    error = http_error(500, json.dumps(body).encode())

    assert error.code == ErrorCode.INSUFFICIENT_BALANCE


def test_relay_error_codes_are_understood():
    body = {
        "error": {
            "message": "quota used up",
            "type": "new_api_error",
            "code": "insufficient_user_quota",
        }
    }

    assert http_error(403, json.dumps(body).encode()).code == ErrorCode.INSUFFICIENT_BALANCE


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ErrorCode.BAD_REQUEST),
        (401, ErrorCode.AUTH),
        (402, ErrorCode.INSUFFICIENT_BALANCE),
        (404, ErrorCode.BAD_REQUEST),
        (413, ErrorCode.CONTEXT_TOO_LONG),
        (429, ErrorCode.RATE_LIMITED),
        (502, ErrorCode.UPSTREAM_UNAVAILABLE),
        (504, ErrorCode.TIMEOUT),
        (529, ErrorCode.UPSTREAM_UNAVAILABLE),
    ],
)
def test_bodies_without_an_envelope_fall_back_to_the_status(status, expected):
    error = http_error(status, b"<html>gateway says no</html>")

    assert error.code == expected
    assert "gateway says no" in error.detail


def test_context_overflow_wording_is_recognised():
    body = {"error": {"message": "This model's maximum context length is 4096 tokens"}}

    assert http_error(400, json.dumps(body).encode()).code == ErrorCode.CONTEXT_TOO_LONG


def test_user_message_never_carries_the_upstream_text():
    body = {"error": {"message": "internal stack trace secret-ish (1000)", "type": "api_error"}}

    error = http_error(500, json.dumps(body).encode())

    assert "stack trace" not in error.message
    assert "stack trace" in error.detail


def test_retry_after_accepts_seconds_and_http_dates():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    from_date = parse_retry_after(later)
    assert from_date is not None
    assert 25 <= from_date <= 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-3") == 0.0


def test_llm_error_retryable_override_is_kept():
    assert LLMError(ErrorCode.RATE_LIMITED).retryable
    assert not LLMError(ErrorCode.RATE_LIMITED, retryable=False).retryable
    assert not LLMError(ErrorCode.AUTH).retryable


@pytest.mark.parametrize("code", [1008, "1008"])
def test_a_relay_envelope_code_counts_as_a_number_or_as_a_string_of_one(code):
    error = body_error({"error": {"message": "insufficient balance", "code": code}})

    assert error is not None
    assert error.code == ErrorCode.INSUFFICIENT_BALANCE
    assert error.provider_code == 1008
    assert not error.retryable

"""Recorded upstream streams of every wire style and quirk, parsed to exact results."""

import json

import pytest

from conversations.llm.base import Usage
from conversations.llm.errors import ErrorCode
from conversations.llm.m2her import m2her_backend
from conversations.llm.sse import MAX_EVENT_BYTES
from conversations.llm.transport import HttpSettings
from tests.conversations.llm import recordings as rec
from tests.conversations.llm.helpers import recorded_backend, run_stream

FAST_NO_RETRY = HttpSettings(max_retries=0, retry_base_delay=0.01)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
async def test_trailing_usage_chunk_gives_text_finish_and_usage(chunk_size):
    backend, _ = recorded_backend(rec.CHAT_USAGE_CHUNK, chunk_size=chunk_size)

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert texts == ["Hello", " there,", " traveller."]
    assert completion.text == "Hello there, traveller."
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(prompt_tokens=176, completion_tokens=23, total_tokens=199)
    assert completion.model == "M2-her"


async def test_stream_that_ends_after_the_finish_chunk_is_complete():
    backend, _ = recorded_backend(rec.CHAT_BARE_END)

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert "".join(texts) == completion.text == "你好！有什么可以帮助你的吗？"
    assert completion.usage == Usage()


async def test_native_final_frame_repeating_the_reply_is_not_appended_twice():
    backend, _ = recorded_backend(rec.NATIVE_FINAL_FRAME, style="chatcompletion_v2")

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert texts == ["你好", "！有什么可以帮助你的吗？"]
    assert completion.text == "你好！有什么可以帮助你的吗？"
    assert completion.usage == Usage(total_tokens=73)


async def test_final_frame_alone_provides_the_whole_reply_once():
    backend, _ = recorded_backend(rec.FINAL_FRAME_ONLY, style="chatcompletion_v2")

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert texts == ["All at once."]
    assert completion.text == "All at once."
    assert completion.usage.prompt_tokens == 180


async def test_done_marker_ends_the_stream():
    backend, _ = recorded_backend(rec.WITH_DONE)

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert texts == ["Hi", "!"]
    assert completion.text == "Hi!"


@pytest.mark.parametrize("chunk_size", [1, 3, 4096])
async def test_leading_think_block_is_stripped_even_when_split(chunk_size):
    backend, _ = recorded_backend(rec.THINK_SPLIT, chunk_size=chunk_size)

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert "".join(texts) == completion.text == "Hello back!"
    assert "think" not in "".join(texts)


async def test_finish_reason_length_is_reported():
    backend, _ = recorded_backend(rec.LENGTH)

    _, completion, error = await run_stream(backend)

    assert error is None
    assert completion.text == "Once upon a time"
    assert completion.finish_reason == "length"


async def test_stream_ending_without_finish_is_truncated_after_its_deltas():
    backend, _ = recorded_backend(rec.ENDS_WITHOUT_FINISH)

    texts, completion, error = await run_stream(backend)

    assert texts == ["Half a", " reply"]
    assert completion is None
    assert error.code == ErrorCode.TRUNCATED
    assert error.retryable


async def test_empty_reply_with_input_flag_is_content_filtered_naming_the_type():
    backend, _ = recorded_backend(rec.INPUT_FLAGGED_EMPTY)

    texts, completion, error = await run_stream(backend)

    assert texts == []
    assert completion is None
    assert error.code == ErrorCode.CONTENT_FILTERED
    assert "pornography" in error.message
    assert "your message" in error.message
    assert not error.retryable


async def test_flagged_reply_with_text_completes_and_carries_the_flag():
    backend, _ = recorded_backend(rec.OUTPUT_FLAGGED_TEXT)

    _, completion, error = await run_stream(backend)

    assert error is None
    assert completion.text == "Let's talk about something else."
    assert completion.sensitivity.output_flagged
    assert completion.sensitivity.output_type == 5


async def test_error_chunk_mid_stream_raises_after_the_deltas_already_sent():
    backend, seen = recorded_backend(rec.MID_STREAM_BASE_RESP)

    texts, completion, error = await run_stream(backend)

    assert texts == ["Sure,", " here"]
    assert completion is None
    assert error.code == ErrorCode.CONTENT_FILTERED
    assert error.provider_code == 1027
    assert len(seen) == 1


async def test_error_envelope_chunk_mid_stream_is_classified_by_its_code():
    backend, _ = recorded_backend(rec.MID_STREAM_ERROR_ENVELOPE)

    texts, _, error = await run_stream(backend)

    assert texts == ["Sure,"]
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert error.provider_code == 1000


async def test_http_200_json_body_with_base_resp_error_is_an_error():
    body = json.dumps({"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}})
    backend, _ = recorded_backend(
        body.encode(), style="chatcompletion_v2", content_type="application/json"
    )

    texts, _, error = await run_stream(backend)

    assert texts == []
    assert error.code == ErrorCode.INSUFFICIENT_BALANCE
    assert not error.retryable


@pytest.mark.parametrize(
    ("status", "envelope", "expected"),
    [
        (
            401,
            {
                "type": "error",
                "error": {
                    "type": "authorized_error",
                    "message": "login fail: Please carry the API secret key (1004)",
                    "http_code": "401",
                },
                "request_id": "0634",
            },
            ErrorCode.AUTH,
        ),
        (
            400,
            {
                "error": {
                    "message": "invalid params, invalid chat setting (2013)",
                    "type": "bad_request_error",
                    "param": "",
                    "code": None,
                }
            },
            ErrorCode.BAD_REQUEST,
        ),
        (
            500,
            {
                "type": "error",
                "error": {"type": "api_error", "message": "insufficient balance (1008)"},
            },
            ErrorCode.INSUFFICIENT_BALANCE,
        ),
    ],
)
async def test_both_error_envelopes_are_classified(status, envelope, expected):
    backend, _ = recorded_backend(
        json.dumps(envelope).encode(), status=status, content_type="application/json"
    )

    _, _, error = await run_stream(backend)

    assert error.code == expected


@pytest.mark.parametrize("chunk_size", [1, 11, 4096])
async def test_responses_stream_gives_text_and_usage(chunk_size):
    backend, _ = recorded_backend(rec.RESPONSES_COMPLETED, style="responses", chunk_size=chunk_size)

    texts, completion, error = await run_stream(backend)

    assert error is None
    assert texts == ["鲁迅，原", "名周树人。"]
    assert completion.text == "鲁迅，原名周树人。"
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(prompt_tokens=181, completion_tokens=121, total_tokens=302)


async def test_responses_incomplete_for_max_tokens_is_length():
    backend, _ = recorded_backend(rec.RESPONSES_INCOMPLETE, style="responses")

    _, completion, error = await run_stream(backend)

    assert error is None
    assert completion.text == "It was a dark"
    assert completion.finish_reason == "length"


async def test_responses_failed_event_is_classified():
    backend, _ = recorded_backend(rec.RESPONSES_FAILED, style="responses", http=FAST_NO_RETRY)

    _, _, error = await run_stream(backend)

    assert error.code == ErrorCode.RATE_LIMITED


async def test_responses_error_event_mid_stream_raises_after_the_delta():
    backend, _ = recorded_backend(rec.RESPONSES_ERROR_EVENT, style="responses")

    texts, _, error = await run_stream(backend)

    assert texts == ["Partial"]
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert error.provider_code == 1000


async def test_the_request_carries_the_bearer_key_and_the_style_path():
    backend, seen = recorded_backend(rec.RESPONSES_COMPLETED, style="responses")

    await run_stream(backend)

    assert seen[0].url.path == "/v1/responses"
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(seen[0].content)["input"][0]["role"] == "system"


async def test_json_error_mislabelled_as_an_event_stream_is_still_classified():
    body = json.dumps({"base_resp": {"status_code": 2049, "status_msg": "invalid api key"}})
    backend, _ = recorded_backend(body.encode(), content_type="text/event-stream")

    _, _, error = await run_stream(backend)

    assert error.code == ErrorCode.AUTH


@pytest.mark.parametrize("content_type", ["text/event-stream", "text/plain", ""])
async def test_a_mislabelled_200_error_keeps_its_retry_after(content_type):
    body = json.dumps({"base_resp": {"status_code": 1002, "status_msg": "rate limit exceeded"}})
    backend, _ = recorded_backend(
        body.encode(), content_type=content_type, headers={"retry-after": "7"}
    )

    _, _, error = await run_stream(backend)

    assert (error.code, error.retry_after) == (ErrorCode.RATE_LIMITED, 7.0)


@pytest.mark.parametrize("choices", [None, [], "absent"])
async def test_a_200_body_without_choices_is_a_failure_not_an_empty_reply(choices):
    body = {"id": "x", "base_resp": {"status_code": 0, "status_msg": ""}}
    if choices != "absent":
        body["choices"] = choices
    backend, _ = recorded_backend(json.dumps(body).encode(), content_type="application/json")

    texts, completion, error = await run_stream(backend)

    assert (texts, completion) == ([], None)
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE


@pytest.mark.parametrize("base_url", ["http://[::1", "ftp://api.example.test", "no-scheme"])
async def test_a_malformed_base_url_is_a_classified_error(base_url):
    backend = m2her_backend(base_url=base_url, api_key="k", http=FAST_NO_RETRY)

    _, _, error = await run_stream(backend)

    assert error.code == ErrorCode.BAD_REQUEST
    assert not error.retryable


async def test_a_minimax_error_line_in_a_responses_stream_is_classified_and_not_retried():
    balance = {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}
    backend, seen = recorded_backend(
        rec.event("response.created", {"response": rec._RESPONSE}) + rec.data(balance),
        style="responses",
    )

    texts, completion, error = await run_stream(backend)

    assert (texts, completion) == ([], None)
    assert error.code == ErrorCode.INSUFFICIENT_BALANCE
    assert len(seen) == 1


async def test_a_responses_stream_flagged_after_a_delta_is_content_filtered():
    flagged = {"base_resp": {"status_code": 1027, "status_msg": "output new_sensitive"}}
    backend, _ = recorded_backend(
        rec.event("response.output_text.delta", {**rec._WHERE, "delta": "Half a rep"})
        + rec.data(flagged),
        style="responses",
    )

    texts, _, error = await run_stream(backend)

    assert texts == ["Half a rep"]
    assert error.code == ErrorCode.CONTENT_FILTERED


@pytest.mark.parametrize("status", ["failed", "cancelled"])
async def test_a_responses_stream_done_with_a_failed_status_is_an_error(status):
    failed = {
        **rec._RESPONSE,
        "status": status,
        "error": {"code": "rate_limit_exceeded", "message": "slow down"},
    }
    backend, _ = recorded_backend(
        rec.event("response.output_text.delta", {**rec._WHERE, "delta": "Half a rep"})
        + rec.event("response.done", {"response": failed}),
        style="responses",
    )

    texts, completion, error = await run_stream(backend)

    assert texts == ["Half a rep"]
    assert completion is None
    assert error.code == ErrorCode.RATE_LIMITED


@pytest.mark.parametrize("body", [{"code": 500, "msg": "upstream busy"}, {"success": False}, {}])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_a_responses_body_that_is_not_a_response_is_a_failure(body, content_type):
    backend, _ = recorded_backend(
        json.dumps(body).encode(), style="responses", content_type=content_type
    )

    texts, completion, error = await run_stream(backend)

    assert (texts, completion) == ([], None)
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE


@pytest.mark.parametrize(
    "chunk_body",
    [
        {"choices": [None]},
        {"choices": "x"},
        {"choices": [{"delta": "Hi"}]},
        {"choices": [{"message": "Hi", "finish_reason": "stop"}]},
    ],
)
async def test_a_chunk_of_an_unexpected_shape_is_a_service_failure_retried_before_any_text(
    chunk_body,
):
    backend, seen = recorded_backend(rec.data(chunk_body))

    texts, completion, error = await run_stream(backend)

    assert (texts, completion) == ([], None)
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE
    assert "malformed" in error.detail
    assert len(seen) == 3  # the first attempt and FAST's two retries


async def test_a_line_beyond_the_event_limit_ends_the_reply_as_a_service_failure():
    backend, _ = recorded_backend(
        rec.data(rec.chunk("Hi")) + b"data: " + b"x" * (MAX_EVENT_BYTES + 1),
        chunk_size=64 * 1024,
        http=FAST_NO_RETRY,
    )

    texts, completion, error = await run_stream(backend)

    assert texts == ["Hi"]
    assert completion is None
    assert error.code == ErrorCode.UPSTREAM_UNAVAILABLE


async def test_a_flag_raised_on_the_input_stays_when_a_later_chunk_flags_the_output():
    backend, _ = recorded_backend(
        rec.data(rec.chunk("", input_sensitive=True, input_sensitive_type=2))
        + rec.data(rec.chunk("", finish="stop", output_sensitive=True, output_sensitive_type=5))
    )

    _, completion, error = await run_stream(backend)

    assert completion is None
    assert error.code == ErrorCode.CONTENT_FILTERED
    assert "flagged your message" in error.message
    assert error.provider_code == 1026
    assert "input_sensitive_type=2 output_sensitive_type=5" in error.detail

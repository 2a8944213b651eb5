import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.llm.sse import MAX_EVENT_BYTES, SSEError, SSEEvent, SSEParser


def parse_all(chunks):
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def test_data_lines_are_dispatched_at_the_blank_line():
    events = parse_all([b'data: {"a":1}\n\ndata: two\n\n'])

    assert events == [SSEEvent("", '{"a":1}'), SSEEvent("", "two")]


def test_event_names_apply_to_their_own_event_only():
    events = parse_all([b"event: response.created\ndata: 1\n\ndata: 2\n\n"])

    assert events == [SSEEvent("response.created", "1"), SSEEvent("", "2")]


def test_crlf_and_lone_cr_line_endings_are_accepted():
    events = parse_all([b"event: e\r\ndata: a\r\n\r\ndata: b\r\rdata: c\n\n"])

    assert events == [SSEEvent("e", "a"), SSEEvent("", "b"), SSEEvent("", "c")]


def test_an_event_ended_by_cr_alone_is_dispatched_at_once():
    parser = SSEParser()

    assert parser.feed(b"data: a\r\r") == [SSEEvent("", "a")]
    assert parser.feed(b"data: b\r\r") == [SSEEvent("", "b")]


def test_a_crlf_split_between_chunks_is_one_line_ending():
    assert parse_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [SSEEvent("", "a\nb")]


def test_multi_line_data_is_joined_with_newlines():
    events = parse_all([b"data: first\ndata: second\ndata\n\n"])

    assert events == [SSEEvent("", "first\nsecond\n")]


def test_comments_ids_and_unknown_fields_are_ignored():
    events = parse_all([b": keep-alive\nid: 7\nretry: 100\nfoo: bar\ndata: x\n\n:ping\n\n"])

    assert events == [SSEEvent("", "x")]


def test_only_one_space_after_the_colon_is_removed():
    events = parse_all([b"data:no-space\n\ndata:  two-spaces\n\n"])

    assert events == [SSEEvent("", "no-space"), SSEEvent("", " two-spaces")]


def test_an_event_without_data_is_not_dispatched():
    events = parse_all([b"event: ping\n\ndata: real\n\n"])

    assert events == [SSEEvent("", "real")]


def test_an_unterminated_last_event_is_not_dispatched():
    parser = SSEParser()

    assert parser.feed(b"data: half") == []
    assert parser.flush() == []


def test_a_leading_byte_order_mark_is_skipped_even_when_split():
    events = parse_all([b"\xef", b"\xbb\xbfdata: x\n\n"])

    assert events == [SSEEvent("", "x")]


def test_utf8_characters_split_between_chunks_survive():
    raw = "data: 鲁迅，原\n\n".encode()

    events = parse_all([raw[:8], raw[8:9], raw[9:]])

    assert events == [SSEEvent("", "鲁迅，原")]


_LINE_ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)


@st.composite
def sse_streams(draw):
    """A byte stream of events, comments and fields with mixed line endings."""
    out = b""
    for _ in range(draw(st.integers(0, 6))):
        lines = []
        if draw(st.booleans()):
            lines.append(b": " + draw(_TEXT).encode())
        if draw(st.booleans()):
            lines.append(b"event: " + draw(_TEXT).encode())
        for _ in range(draw(st.integers(0, 3))):
            lines.append(b"data: " + draw(_TEXT).encode())
        end = draw(_LINE_ENDINGS)
        out += b"".join(line + end for line in lines) + end
    return out


# No deadline: a busy shared machine must not turn slowness into a failure.
@settings(deadline=None)
@given(stream=sse_streams(), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_events(stream, cuts):
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]

    assert parse_all(chunks) == parse_all([stream]) == parse_all([_lf_only(stream)])


def _lf_only(stream: bytes) -> bytes:
    return stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


@settings(deadline=None)
@given(stream=sse_streams())
def test_feeding_one_byte_at_a_time_gives_the_same_events(stream):
    chunks = [stream[i : i + 1] for i in range(len(stream))]

    assert parse_all(chunks) == parse_all([stream])


def test_a_line_beyond_the_event_limit_is_refused_before_it_is_held_whole():
    parser = SSEParser()
    piece = b"x" * (64 * 1024)
    parser.feed(b"data: ")
    for _ in range(MAX_EVENT_BYTES // len(piece) - 1):
        assert parser.feed(piece) == []

    with pytest.raises(SSEError):
        parser.feed(piece * 2)


def test_an_event_of_many_lines_beyond_the_limit_is_refused():
    line = b"data: " + b"y" * 1000 + b"\n"

    with pytest.raises(SSEError):
        parse_all([line * (MAX_EVENT_BYTES // 1000 + 1)])


def test_events_within_the_limit_pass_one_after_another():
    big = b"z" * (MAX_EVENT_BYTES - 10)

    events = parse_all([b"data: " + big + b"\n\n", b"data: " + big + b"\n\n"])

    assert [len(event.data) for event in events] == [len(big), len(big)]


@settings(deadline=None)
@given(stream=sse_streams())
def test_events_fed_one_whole_event_at_a_time_match_the_line_walk(stream):
    # Split after each blank line: single-data-line events then arrive whole, as a model's
    # reads do, and are taken without walking their lines; byte by byte they never are.
    events = _lf_only(stream).split(b"\n\n")
    chunks = [event + b"\n\n" for event in events[:-1]]

    assert parse_all(chunks) == parse_all([bytes([b]) for b in b"".join(chunks)])


def test_a_whole_event_keeps_the_event_name_given_before_it():
    parser = SSEParser()

    assert parser.feed(b"event: delta\n") == []
    assert parser.feed(b"data: one\n\n") == [SSEEvent("delta", "one")]
    assert parser.feed(b"data: two\n\n") == [SSEEvent("", "two")]


def test_a_whole_event_after_unfinished_data_joins_it():
    parser = SSEParser()

    assert parser.feed(b"data: one\n") == []
    assert parser.feed(b"data: two\n\n") == [SSEEvent("", "one\ntwo")]


def test_a_whole_event_beyond_the_limit_is_refused():
    with pytest.raises(SSEError):
        SSEParser().feed(b"data: " + b"x" * (MAX_EVENT_BYTES + 1) + b"\n\n")

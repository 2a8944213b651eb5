import json
import uuid

import pytest

from conversations.protocol import (
    ContinueReply,
    DeleteTurn,
    EditTurn,
    ProtocolError,
    RegenerateReply,
    SelectCandidate,
    SendMessage,
    StopReply,
    Sync,
    parse_client_message,
)


def frame(**fields):
    return json.dumps(fields)


def test_every_client_message_type_parses():
    cid = str(uuid.uuid4())
    assert parse_client_message(frame(type="message.send", client_id=cid, text=" hi ")) == (
        SendMessage(client_id=uuid.UUID(cid), text="hi")
    )
    assert parse_client_message(frame(type="reply.stop")) == StopReply()
    assert parse_client_message(frame(type="reply.regenerate")) == RegenerateReply(turn_id=None)
    assert parse_client_message(frame(type="reply.regenerate", turn_id=4)) == RegenerateReply(4)
    assert parse_client_message(frame(type="reply.continue")) == ContinueReply()
    assert parse_client_message(frame(type="reply.select", turn_id=3, index=2)) == (
        SelectCandidate(turn_id=3, index=2)
    )
    assert parse_client_message(frame(type="turn.edit", turn_id=3, text="x")) == EditTurn(3, "x")
    assert parse_client_message(frame(type="turn.delete", turn_id=3)) == DeleteTurn(3)
    assert parse_client_message(frame(type="sync", after_seq=0)) == Sync(0)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "bad_frame"),
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ('"text"', "bad_frame"),
        (frame(type="nope"), "bad_frame"),
        (frame(text="no type"), "bad_frame"),
        (frame(type="message.send", client_id="not-a-uuid", text="hi"), "bad_frame"),
        (frame(type="message.send", client_id=str(uuid.uuid4())), "bad_frame"),
        (frame(type="message.send", client_id=str(uuid.uuid4()), text=5), "bad_frame"),
        (frame(type="message.send", client_id=str(uuid.uuid4()), text="   "), "empty"),
        (frame(type="message.send", client_id=str(uuid.uuid4()), text="x" * 4001), "too_long"),
        (frame(type="sync", after_seq=-1), "bad_frame"),
        (frame(type="sync", after_seq="3"), "bad_frame"),
        (frame(type="sync", after_seq=True), "bad_frame"),
        (frame(type="reply.select", turn_id=1, index=0), "bad_frame"),
        (frame(type="turn.delete"), "bad_frame"),
        ("x" * (64 * 1024 + 1), "too_long"),
        # 60,000 characters, 240,000 bytes: the limit is in bytes, as on the wire.
        (
            json.dumps(
                {"type": "turn.edit", "turn_id": 1, "text": "\U0001f642" * 60_000},
                ensure_ascii=False,
            ),
            "too_long",
        ),
        ("[" * 100_000 + "]" * 100_000, "too_long"),
    ],
)
def test_bad_frames_are_refused_with_a_code(raw, code):
    with pytest.raises(ProtocolError) as excinfo:
        parse_client_message(raw)
    assert excinfo.value.code == code
    assert excinfo.value.message


def test_deeply_nested_json_is_refused_not_crashing():
    raw = "[" * 20_000 + "]" * 20_000
    with pytest.raises(ProtocolError) as excinfo:
        parse_client_message(raw)
    assert excinfo.value.code == "bad_frame"

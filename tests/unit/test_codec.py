"""The parser: every input gives a message or a ProtocolError, never anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.protocol import ErrorCode, ProtocolError, decode, encode
from hubbub.protocol.messages import (
    INCOMING_TYPES,
    MAX_INTEGER,
    Chat,
    EndRoom,
    Error,
    GetNotifications,
    History,
    JoinRoom,
    MarkNotificationsRead,
    Ping,
    RemoveParticipant,
    Resume,
    Signal,
)

DOCUMENTED_CODES = {code.value for code in ErrorCode}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)

message_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*sorted(INCOMING_TYPES), "other", ""]) | st.integers()},
    optional={
        "room": json_values,
        "userId": json_values,
        "targetUserId": json_values,
        "signal": json_values,
        "message": json_values,
        "ref": json_values,
        "token": json_values,
        "beforeSeq": json_values,
        "limit": json_values,
        "ids": json_values,
        "lastN": json_values,
    },
)


def _decode_or_protocol_error(data: str | bytes) -> None:
    error: ProtocolError | None = None
    try:
        decode(data, max_depth=8)
    except ProtocolError as caught:
        error = caught
    if error is not None:
        assert error.code in DOCUMENTED_CODES
        assert "Traceback" not in error.message


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    _decode_or_protocol_error(data)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    _decode_or_protocol_error(text)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json(value: object) -> None:
    _decode_or_protocol_error(json.dumps(value))


@settings(max_examples=600, deadline=None)
@given(message_like)
def test_anything_shaped_like_a_message(value: dict) -> None:
    _decode_or_protocol_error(json.dumps(value))


def test_deep_nesting_far_past_the_recursion_limit() -> None:
    text = "[" * 30_000 + "]" * 30_000
    with pytest.raises(ProtocolError) as caught:
        decode(text, max_depth=32)
    assert caught.value.code == "too-deep"


def test_signal_payload_is_kept_raw() -> None:
    message = decode('{"type":"signal","targetUserId":"b","signal":{"a": [1, 2]}}', max_depth=8)
    assert isinstance(message, Signal)
    assert bytes(message.signal) == b'{"a": [1, 2]}'


def test_decoding_text_and_bytes_agree() -> None:
    text = '{"type":"chat","message":"héllo"}'
    assert decode(text, max_depth=8) == decode(text.encode(), max_depth=8) == Chat(message="héllo")


def test_error_encoding_leaves_out_an_absent_ref() -> None:
    assert json.loads(encode(Error(code="bad-json", message="m"))) == {
        "type": "error",
        "code": "bad-json",
        "message": "m",
    }


def test_the_messages_of_token_mode_and_admins() -> None:
    assert decode('{"type":"join-room","room":"r","token":"t.o.k"}', max_depth=8) == JoinRoom(
        room="r", token="t.o.k"
    )
    assert decode('{"type":"remove-participant","userId":"bob","ref":3}', max_depth=8) == (
        RemoveParticipant(user_id="bob", ref=3)
    )
    assert decode('{"type":"end-room"}', max_depth=8) == EndRoom()
    for bad in (
        '{"type":"remove-participant"}',
        '{"type":"remove-participant","userId":7}',
        '{"type":"join-room","room":"r","token":["t"]}',
    ):
        with pytest.raises(ProtocolError) as caught:
            decode(bad, max_depth=8)
        assert caught.value.code == "bad-message"


RESUME = '"type":"resume","sessionId":"s","resumeToken":"t"'

# (JSON before the integer, JSON after it, the field's name, its lowest value)
INTEGER_FIELDS = [
    ('{"type":"history","beforeSeq":', "}", "beforeSeq", 1),
    ('{"type":"history","limit":', "}", "limit", 1),
    ('{"type":"notifications","limit":', "}", "limit", 1),
    ('{"type":"notification-read","ids":[1,', "]}", "ids", 1),
    ("{" + RESUME + ',"lastN":', "}", "lastN", 0),
    ('{"type":"ping","ref":', "}", "ref", -MAX_INTEGER),
]


@pytest.mark.parametrize(("before", "after", "field", "low"), INTEGER_FIELDS)
@settings(max_examples=200, deadline=None)
@given(value=st.integers() | st.sampled_from([MAX_INTEGER, MAX_INTEGER + 1, 2**63, 2**64]))
def test_integer_fields_take_only_their_range(
    before: str, after: str, field: str, low: int, value: int
) -> None:
    """Every integer a client sends is bounded by its type: out of range it is
    ``bad-message`` naming the field, however large, never a number for the store."""
    text = f"{before}{value}{after}"
    if low <= value <= MAX_INTEGER:
        decode(text, max_depth=8)
        return
    with pytest.raises(ProtocolError) as caught:
        decode(text, max_depth=8)
    assert caught.value.code == "bad-message"
    assert f"$.{field}" in caught.value.message


def test_the_bounds_of_the_integer_fields() -> None:
    assert decode(f'{{"type":"history","beforeSeq":{MAX_INTEGER},"limit":1}}', max_depth=8) == (
        History(before_seq=MAX_INTEGER, limit=1)
    )
    assert decode(f'{{"type":"notifications","limit":{MAX_INTEGER}}}', max_depth=8) == (
        GetNotifications(limit=MAX_INTEGER)
    )
    assert decode(f'{{"type":"notification-read","ids":[1,{MAX_INTEGER}]}}', max_depth=8) == (
        MarkNotificationsRead(ids=[1, MAX_INTEGER])
    )
    assert decode("{" + RESUME + ',"lastN":0}', max_depth=8) == Resume(
        session_id="s", resume_token="t", last_n=0
    )
    for ref in (MAX_INTEGER, -MAX_INTEGER, 0):
        assert decode(f'{{"type":"ping","ref":{ref}}}', max_depth=8) == Ping(ref=ref)
    with pytest.raises(ProtocolError) as caught:
        decode('{"type":"history","beforeSeq":9223372036854775808,"ref":7}', max_depth=8)
    assert (caught.value.code, caught.value.ref) == ("bad-message", 7)
    assert caught.value.message == "Expected `int` <= 9007199254740991 - at `$.beforeSeq`"


def test_a_ref_out_of_range_is_not_echoed() -> None:
    for text, code in (
        (f'{{"type":"ping","ref":{MAX_INTEGER + 1}}}', "bad-message"),
        (f'{{"type":"ping","ref":{-MAX_INTEGER - 1}}}', "bad-message"),
        ('{"type":"ping","ref":[1]}', "bad-message"),
        (f'{{"type":"nonsense","ref":{2**64}}}', "unknown-type"),
        # refused at the ref, and what follows it is not JSON
        ('{"type":"ping","ref":[1],"x":nope}', "bad-json"),
    ):
        with pytest.raises(ProtocolError) as caught:
            decode(text, max_depth=8)
        assert (caught.value.code, caught.value.ref) == (code, None), text

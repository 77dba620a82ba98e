"""The parser: every input gives a message or a ProtocolError, never anything else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.protocol import ErrorCode, ProtocolError, decode, encode
from hubbub.protocol.messages import (
    INCOMING_TYPES,
    Chat,
    EndRoom,
    Error,
    JoinRoom,
    RemoveParticipant,
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

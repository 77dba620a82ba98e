"""hubbub.client reads and writes the wire format of hubbub.protocol: every message the
server encodes with the protocol's structs is read as the SDK's event for it, field
for field, and the messages the client builds are named as the server reads them."""

from __future__ import annotations

from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from hubbub.client import Participant, ServerMessage
from hubbub.client import events as sdk
from hubbub.client.outgoing import message, type_of
from hubbub.protocol import messages as protocol


def test_messages_are_built_with_the_protocols_names() -> None:
    assert message(protocol.Chat, message="hi", client_id="c-1", ref=None) == {
        "type": "chat",
        "message": "hi",
        "clientId": "c-1",
    }
    assert message(protocol.Signal, target_user_id="bob", signal={"sdp": 1}) == {
        "type": "signal",
        "targetUserId": "bob",
        "signal": {"sdp": 1},
    }
    assert type_of(protocol.Resume) == "resume"
    with pytest.raises(KeyError):
        message(protocol.Chat, text="not a field of chat")


def _example(info: mi.Type) -> Any:
    """A value of the type ``info`` describes, every optional field filled."""
    if isinstance(info, mi.StrType):
        return "x"
    if isinstance(info, mi.LiteralType):
        return info.values[0]
    if isinstance(info, mi.BoolType):
        return True
    if isinstance(info, mi.IntType):
        return 3
    if isinstance(info, mi.FloatType):
        return 1.5
    if isinstance(info, mi.ListType):
        return [_example(info.item_type)]
    if isinstance(info, mi.UnionType):
        return _example(next(t for t in info.types if not isinstance(t, mi.NoneType)))
    if isinstance(info, mi.RawType):
        return msgspec.Raw(b'{"sdp":"v=0"}')
    if isinstance(info, mi.AnyType):
        return {"any": [1, "json"]}
    if isinstance(info, mi.StructType):
        return info.cls(**{f.name: _example(f.type) for f in info.fields})
    raise AssertionError(f"no example for {info}")


@pytest.mark.parametrize(
    "kind",
    [k for k in protocol.Outgoing.__subclasses__() if k is not protocol.Resumed],
    ids=lambda k: k.__name__,
)
def test_every_server_message_is_read_as_its_event(kind: type[protocol.Outgoing]) -> None:
    """The SDK reads what the server encodes (with the protocol's structs), every
    field of it, under the same names, as the event for its type."""
    frame = msgspec.json.encode(_example(mi.type_info(kind)))
    event = sdk.decode_event(frame)
    assert not isinstance(event, ServerMessage), f"{kind.__name__} read as unknown"
    assert event is not None
    assert type(event).__struct_config__.tag == kind.__struct_config__.tag
    assert msgspec.json.decode(msgspec.json.encode(event)) == msgspec.json.decode(frame)


def test_every_event_is_a_server_message_of_the_protocol() -> None:
    tags = {k.__struct_config__.tag for k in protocol.Outgoing.__subclasses__()}
    for event in sdk._Message.__subclasses__():
        assert event.__struct_config__.tag in tags, event.__name__


def test_the_participant_of_room_joined_is_the_protocols() -> None:
    member = protocol.Participant(user_id="b", polite=True, status="busy", name="B")
    frame = msgspec.json.encode(member)
    assert msgspec.json.decode(frame, type=Participant) == Participant(
        "b", True, name="B", status="busy"
    )

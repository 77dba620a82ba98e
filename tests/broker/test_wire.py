"""What nodes say to each other, as bytes: no Redis, no event loop.

What Python publishes goes through encode and back; what the Lua scripts publish is
written here as they write it (cjson). Whatever else arrives on a channel raises
WireError, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.broker import ChatItem, ClaimOutcome, Member, SessionState, SharedMedia
from hubbub.broker.redis import RedisBroker, scripts, wire
from hubbub.broker.redis.wire import Kind, WireError
from hubbub.media.modes import MediaSetting, Mode
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import MediaFeed
from tests.broker.conftest import Recorder

NODE = "a1b2c3d4"
OTHER = "99887766"
HERE = wire.Endpoint("55555555")
"""The node that reads: none of the publications below are its own."""
THERE = wire.Endpoint(NODE)


def entry(session_id: str, order: int, **info: object) -> str:
    fields = {"n": None, "g": None, "h": False, "s": "online", **info}
    return f"{session_id}|{order}|{json.dumps(fields, separators=(',', ':'))}"


def lua(kind: Kind, body: object) -> bytes:
    """A publication as a Lua script writes it."""
    return kind.value + json.dumps(body, separators=(",", ":")).encode()


# -- what Python publishes, there and back ------------------------------------------


@pytest.mark.parametrize("exclude", [None, f"{NODE}.s1"])
def test_a_room_message_round_trips(exclude: str | None) -> None:
    payload = b'{"type":"chat","message":"a\\nb"}\n'
    data = THERE.room(7, exclude, payload)
    assert data[:1] == Kind.ROOM.value
    assert HERE.read_room(data) == wire.RoomMessage(exclude, payload)


@pytest.mark.parametrize("exclude", [None, f"{NODE}.s1"])
def test_chat_round_trips_with_its_seq(exclude: str | None) -> None:
    payload = b'{"type":"chat","message":"a\\nb"}\n'
    data = THERE.chat(7, 2**53 - 1, exclude, payload)
    assert data[:1] == Kind.CHAT.value
    assert HERE.read_room(data) == wire.ChatMessage(2**53 - 1, exclude, payload)


def test_chat_is_its_own_kind_whatever_its_bytes() -> None:
    """The kind says chat, not the payload: a room message that looks like chat is
    not chat, and chat that does not look like it still is."""
    looks_like_chat = b'{"type":"chat","message":"hi"}'
    assert HERE.read_room(THERE.room(1, None, looks_like_chat)) == wire.RoomMessage(
        None, looks_like_chat
    )
    assert HERE.read_room(THERE.chat(1, 3, None, b"[]")) == wire.ChatMessage(3, None, b"[]")


def test_a_room_end_round_trips() -> None:
    assert HERE.read_room(THERE.room_ended()) == wire.RoomEnded()


@pytest.mark.parametrize("exclude", [None, f"{NODE}.s1"])
def test_a_user_message_round_trips(exclude: str | None) -> None:
    data = THERE.user(exclude, "zoë", b"line\nline")
    assert HERE.read_user(data) == wire.UserMessage(exclude, "zoë", b"line\nline")


def test_a_node_knows_its_own_room_publications_by_their_number() -> None:
    """Its members get them when they come back from Redis (the number says which,
    and it wraps around); its members had the others directly."""
    assert THERE.read_room(THERE.room(5, "s", b"x")) == wire.Echo(5)
    assert THERE.read_room(THERE.chat(16**8 + 6, 1, None, b"x")) == wire.Echo(6)
    assert THERE.read_room(THERE.room_ended()) is None
    assert THERE.read_user(THERE.user(None, "u", b"x")) is None


@pytest.mark.parametrize("node_id", ["", "abc", "a1b2c3d4e", "a1b2.3d4", "a1b2c3dé"])
def test_a_node_id_is_eight_ascii_characters_without_a_dot(node_id: str) -> None:
    with pytest.raises(ValueError, match="node id"):
        wire.Endpoint(node_id)


def test_a_session_message_round_trips() -> None:
    data = wire.encode_session(f"{OTHER}.abc", b"x\ny")
    assert wire.decode_node(data) == wire.SessionMessage(f"{OTHER}.abc", b"x\ny")


def test_messages_to_one_nodes_sessions_round_trip_as_one_in_order() -> None:
    messages = [
        (f"{OTHER}.abc", b'{"type":"signal"}'),
        (f"{OTHER}.d e", b"x\ny 12\n"),  # what the separators are, inside
        (f"{OTHER}.abc", b""),
        (f"{OTHER}.\u00e9", "\u00e9t\u00e9".encode()),
    ]
    data = wire.encode_sessions(messages)
    assert data[:1] == Kind.SESSIONS.value
    assert wire.decode_node(data) == wire.SessionMessages(
        [wire.SessionMessage(session_id, payload) for session_id, payload in messages]
    )


def test_one_message_to_a_nodes_sessions_is_a_plain_session_message() -> None:
    """What a node of wire version 1 reads, when there is nothing to put together."""
    data = wire.encode_sessions([(f"{OTHER}.abc", b"x")])
    assert data == wire.encode_session(f"{OTHER}.abc", b"x")


@pytest.mark.parametrize(
    "request_",
    [
        wire.CloseSession(f"{OTHER}.s", CloseCode.REPLACED, "replaced", False),
        wire.CloseSession(f"{OTHER}.s", CloseCode.REMOVED, "removed by an admin", True),
        wire.CallMoved(f"{OTHER}.c", "accept", "bob", f"{NODE}.s", 7, None),
        wire.CallMoved(f"{OTHER}.c", "left", "bob", f"{NODE}.s", "r-1", "room"),
        wire.CallMoved(f"{OTHER}.c", "callee-gone", "bob", f"{NODE}.s", None, None),
        wire.AskSession(f"{OTHER}.s", "token", f"{NODE}.t"),
        wire.Offer(f"{NODE}.t", f"{OTHER}.s", "room", "ann"),
        wire.Offer(f"{NODE}.t", f"{OTHER}.s", "", ""),
        wire.Offer(f"{NODE}.t", f"{OTHER}.s", "", "", f"{NODE}.moved"),
        wire.Adopt(f"{OTHER}.s", "token", "room", "ann"),
    ],
)
def test_a_request_round_trips(request_: wire.Request) -> None:
    data = wire.encode_request(request_)
    assert wire.decode_node(data) == request_


def test_a_handed_session_round_trips_with_its_replay_as_bytes() -> None:
    state = SessionState(
        session_id=f"{OTHER}.s",
        room="room",
        user_id="ann",
        resume_token="t",
        identity_user_id="ann",
        room_names=["room"],
        room_prefixes=[],
        grants=["chat"],
        verified=True,
        last_n=2,
        replay=[b'{"type":"x"}', b"\xff not text"],
        seq=7,
        lost_for=1.5,
    )
    for handed in (wire.Handed(f"{NODE}.t", state), wire.Handed(f"{NODE}.t", None)):
        data = wire.encode_handed(handed)
        assert data[:1] == Kind.HANDED.value
        assert wire.decode_node(data) == handed


def test_a_take_is_read_whoever_published_it_with_the_rooms_members() -> None:
    flat = ["bob", entry(f"{OTHER}.b", 2), "ann", entry(f"{OTHER}.s", 1, n="Ann")]
    data = lua(Kind.TAKE, {"s": f"{OTHER}.s", "b": f"{NODE}.t", "m": flat})
    members = [Member("ann", f"{OTHER}.s", name="Ann"), Member("bob", f"{OTHER}.b")]
    assert HERE.read_room(data) == wire.Take(f"{OTHER}.s", f"{NODE}.t", members)
    assert THERE.read_room(data) == wire.Take(f"{OTHER}.s", f"{NODE}.t", members)
    empty = lua(Kind.TAKE, {"s": "a", "b": "b", "m": {}})  # cjson's empty table
    assert HERE.read_room(empty) == wire.Take("a", "b", [])


def test_a_close_request_carries_its_code_by_name() -> None:
    request = wire.CloseSession("s", CloseCode.REPLACED, "r", False)
    decoded = wire.decode_node(wire.encode_request(request))
    assert isinstance(decoded, wire.CloseSession)
    assert decoded.code is CloseCode.REPLACED
    assert json.loads(wire.encode_request(request)[1:]) == {
        "s": "s",
        "c": 4009,
        "r": "r",
        "a": False,
    }


# -- what the Lua scripts publish -------------------------------------------------


def test_members_joining_and_leaving() -> None:
    joined = lua(Kind.JOINED, {"u": "ann", "e": entry(f"{OTHER}.s", 3, n="Ann"), "a": 1})
    left = lua(Kind.LEFT, {"u": "ann", "e": entry(f"{OTHER}.s", 3, h=True), "a": 0})
    ann = Member("ann", f"{OTHER}.s", name="Ann")
    assert HERE.read_room(joined) == wire.MemberJoined(ann, True)
    assert HERE.read_room(left) == wire.MemberLeft(Member("ann", f"{OTHER}.s", hidden=True), False)


def test_a_member_leaving_after_chatting_and_one_whose_status_changed() -> None:
    left = lua(Kind.LEFT, {"u": "ann", "e": entry(f"{OTHER}.s", 3), "a": 0, "t": 1700})
    assert HERE.read_room(left) == wire.MemberLeft(Member("ann", f"{OTHER}.s"), False, 1700)
    updated = lua(Kind.UPDATED, {"u": "ann", "e": entry(f"{OTHER}.s", 3, s="busy", c=True)})
    assert HERE.read_room(updated) == wire.MemberUpdated(
        Member("ann", f"{OTHER}.s", status="busy", reconnecting=True)
    )


def test_a_claim_answer_lists_the_members_in_join_order_and_whom_it_replaced() -> None:
    flat = [
        "bob",
        entry(f"{OTHER}.b", 7, s="away"),
        "ann",
        entry(f"{NODE}.new", 9, g=["admin"]),
        "cid",
        entry(f"{OTHER}.c", 2),
    ]
    data = lua(
        Kind.CLAIMED,
        {
            "s": f"{NODE}.new",
            "r": "room",
            "o": "admitted",
            "p": entry(f"{OTHER}.old", 1),
            "m": flat,
        },
    )
    answer = wire.decode_node(data)
    assert answer == wire.ClaimAnswer(
        f"{NODE}.new",
        "room",
        ClaimOutcome.ADMITTED,
        [
            Member("cid", f"{OTHER}.c"),
            Member("bob", f"{OTHER}.b", status="away"),
            Member("ann", f"{NODE}.new", grants=["admin"]),
        ],
        Member("ann", f"{OTHER}.old"),
    )


def test_a_refused_claim_replaces_nobody() -> None:
    data = lua(
        Kind.CLAIMED,
        {"s": "x", "r": "room", "o": "taken", "p": entry("y", 1), "m": ["ann", entry("y", 1)]},
    )
    answer = wire.decode_node(data)
    assert isinstance(answer, wire.ClaimAnswer)
    assert answer.outcome is ClaimOutcome.TAKEN
    assert answer.replaced is None


def test_an_empty_member_list_as_cjson_writes_it() -> None:
    """cjson writes an empty Lua table as an object."""
    data = lua(Kind.SNAPSHOT, {"r": "room", "m": {}})
    assert wire.decode_node(data) == wire.Snapshot("room", [])


def test_a_member_entry_round_trips_through_its_info() -> None:
    member = Member(
        "ann", f"{NODE}.s", name="Ann | Lee", grants=["admin"], hidden=True, status="busy"
    )
    info = wire.encode_info(member)
    assert '"h":true' in info  # what claim.lua looks for
    assert wire.decode_entry("ann", f"{member.session_id}|42|{info}") == (42, member)


def test_the_scripts_publish_only_kinds_the_wire_reads() -> None:
    folder = Path(scripts.__file__).parent
    published = set()
    for script in scripts.ALL:
        source = (folder / f"{script.name}.lua").read_text()
        published |= set(re.findall(r"PUBLISH',.*?'(\w)' \.\.", source, re.DOTALL))
    kinds = {Kind(letter.encode()) for letter in published}
    assert kinds == {
        Kind.JOINED,
        Kind.LEFT,
        Kind.UPDATED,
        Kind.ROOM,
        Kind.CLAIMED,
        Kind.SNAPSHOT,
        Kind.CALL_MOVE,
        Kind.TAKE,
        Kind.MEDIA,
    }


def test_a_rooms_calls_read_as_the_media_script_writes_them() -> None:
    endpoint = wire.Endpoint(NODE)
    body = {"v": 7, "m": "sfu", "f": {"ann": "fav", "bo": "fas"}, "s": "", "r": "auto"}
    read = endpoint.read_room(lua(Kind.MEDIA, body))
    assert read == wire.MediaChanged(
        SharedMedia(
            7,
            Mode.SFU,
            [MediaFeed("ann", True, True), MediaFeed("bo", True, False, simulcast=True)],
        )
    )
    empty = endpoint.read_room(lua(Kind.MEDIA, {**body, "f": {}, "s": "mesh"}))
    assert isinstance(empty, wire.MediaChanged)
    assert (empty.media.feeds, empty.media.setting) == ([], MediaSetting.MESH)
    assert wire.encode_feed(MediaFeed("x", audio=False, video=True, simulcast=True)) == "fvs"


@pytest.mark.parametrize(
    "body",
    [
        {"v": 1, "m": "star", "f": {}},
        {"v": 1, "m": "sfu", "f": {"ann": "video"}},
        {"v": "1", "m": "sfu", "f": {}},
        {"v": 1, "m": "sfu", "f": {}, "s": "sometimes"},
    ],
)
def test_a_malformed_rooms_calls_is_a_wire_error(body: dict[str, object]) -> None:
    with pytest.raises(wire.WireError):
        wire.Endpoint(NODE).read_room(lua(Kind.MEDIA, body))


def test_a_script_wrapper_names_its_keys_and_arguments() -> None:
    command = scripts.release(
        members_key="k1",
        order_key="k2",
        room_names_key="k3",
        user_id="u",
        session_id="s",
        room_channel="c",
        last_seen=5,
        room="r",
    )
    assert command == ("EVALSHA", scripts.RELEASE.sha, 3, "k1", "k2", "k3", "u", "s", "c", 5, "r")
    assert len({script.sha for script in scripts.ALL}) == len(scripts.ALL)


# -- what is not ours ---------------------------------------------------------------

CLAIMED_OK = {"s": "x", "r": "room", "o": "admitted", "p": "", "m": []}

NOT_FOR_A_ROOM = [
    b"",
    b"z" + NODE.encode() + b"\nx",  # no such kind
    wire.encode_session("s", b"x"),  # a node's kind
    THERE.user(None, "u", b"x"),
    b"m",  # no origin
    b"m" + NODE.encode()[:5],
    b"m" + NODE.encode() + b"00000001no-end-of-address",
    b"m" + NODE.encode() + b"00000001\xff\xfe\nx",  # exclude not UTF-8
    b"h" + NODE.encode() + b"00000001\nno-seq",
    b"h" + NODE.encode() + b"00000001\nnot a number\nx",
    b"m" + HERE.node_id.encode() + b"not a number",  # its own, but not numbered
    b"e",
    b"e" + NODE.encode() + b"!",
    b"j",
    b"j{",
    b"j[]",
    b'j{"u":"a"}',
    b'j{"u":1,"e":"s|1|{}"}',
    lua(Kind.JOINED, {"u": "a", "e": "no-bars"}),
    lua(Kind.JOINED, {"u": "a", "e": "s|not-a-number|{}"}),
    lua(Kind.JOINED, {"u": "a", "e": "s|1|not json"}),
    lua(Kind.LEFT, {"u": "a", "e": 'session|1|{"h":"yes"}'}),
    lua(Kind.LEFT, {"u": "a", "e": "s|1|{}", "a": "1"}),
    b"T",
    b"T{}",
    b'T{"s":"a","b":"b"}',
    b'T{"s":"a","b":"b","m":["odd"]}',
    b'l{"u":"\xff","e":"s|1|{}"}',
]

NOT_FOR_A_NODE = [
    b"",
    b"?",
    THERE.room(1, None, b"x"),  # a room's kind
    b"s-no-newline",
    b"s\xff\nx",
    b"c",
    b"c{}",
    lua(Kind.CLAIMED, {**CLAIMED_OK, "o": "maybe"}),
    lua(Kind.CLAIMED, {**CLAIMED_OK, "m": ["odd"]}),
    lua(Kind.CLAIMED, {**CLAIMED_OK, "m": [1, 2]}),
    lua(Kind.CLAIMED, {**CLAIMED_OK, "m": ["ann", "bad entry"]}),
    lua(Kind.CLAIMED, {**CLAIMED_OK, "m": ["ann", "x|1|{}"], "o": "admitted", "p": "bad"}),
    lua(Kind.SNAPSHOT, {"r": "room"}),
    lua(Kind.SNAPSHOT, {"r": "room", "m": "all"}),
    lua(Kind.CLOSE_SESSION, {"s": "s", "c": 1234, "r": "unknown code", "a": False}),
    lua(Kind.CLOSE_SESSION, {"s": "s", "c": "4009", "r": "r", "a": False}),
    lua(Kind.CLOSE_SESSION, {"s": "s", "c": 4009, "r": "r"}),
    lua(Kind.CALL_MOVE, {"c": "c", "m": "accept", "u": "u", "s": "s", "f": [], "r": None}),
    lua(Kind.ASK_SESSION, {"s": "s", "t": None, "b": "b"}),
    lua(Kind.OFFER, {"b": "b", "s": "s", "r": 1, "u": "u"}),
    lua(Kind.ADOPT, {"s": "s", "t": "t", "r": "r"}),
    b"z" + b"\xc0",  # MessagePack nil: not a hand-over
    b"z" + b"\x82\xa1b\xa1x\xa2st\x81\xa1x\x01",  # a state missing its fields
    b"Q" + b"\xff" * 4,
    b"S",
    b"S" + OTHER.encode() + b".s 3",  # no newline
    b"S" + OTHER.encode() + b".s\nabc",  # no length
    b"S" + OTHER.encode() + b".s 4\nabc",  # past the end
    b"S" + OTHER.encode() + b".s -1\nabc",
    b"S" + OTHER.encode() + b".s 1\nab",  # what follows is not a message
    b"S\xff 1\na",
    b"S" + wire.encode_session(f"{OTHER}.s", b"x"),
]

NOT_FOR_THE_USERS = [
    b"",
    THERE.room(1, None, b"x"),
    b"u" + NODE.encode() + b"\nno-user-line",
    b"u" + NODE.encode() + b"\n\xff\nx",
    b"u" + NODE.encode(),
    b"u123",
]


@pytest.mark.parametrize("data", NOT_FOR_A_ROOM)
def test_what_is_not_a_room_publication_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        HERE.read_room(data)


@pytest.mark.parametrize("data", NOT_FOR_A_NODE)
def test_what_is_not_a_node_publication_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        wire.decode_node(data)


@pytest.mark.parametrize("data", NOT_FOR_THE_USERS)
def test_what_is_not_a_user_publication_is_refused(data: bytes) -> None:
    with pytest.raises(WireError):
        HERE.read_user(data)


def test_a_member_list_that_cannot_be_read_is_refused() -> None:
    with pytest.raises(WireError):
        wire.decode_members(["ann"])
    with pytest.raises(WireError):
        wire.decode_entry(b"\xff", "s|1|{}")


@given(st.binary(max_size=64), st.sampled_from([k.value for k in Kind] + [b""]))
def test_any_bytes_decode_or_raise_wire_error(body: bytes, kind: bytes) -> None:
    data = kind + body
    for decode in (HERE.read_room, wire.decode_node, HERE.read_user):
        with contextlib.suppress(WireError):
            decode(data)


@given(st.dictionaries(st.sampled_from("surmacepfbtoeg"), st.from_type(object), max_size=7))
def test_any_json_body_decodes_or_raises_wire_error(body: dict[str, object]) -> None:
    try:
        text = json.dumps(body).encode()
    except (TypeError, ValueError):
        return
    for kind in Kind:
        for decode in (HERE.read_room, wire.decode_node, HERE.read_user):
            with contextlib.suppress(WireError):
                decode(kind.value + text)


async def test_a_node_drops_and_counts_what_it_cannot_read() -> None:
    """The broker's side of it, fed by hand: what is not ours is dropped and counted,
    what is ours still arrives (and no Redis is asked)."""
    here = HERE.node_id  # a node none of the bad publications claim to come from
    broker = RedisBroker("redis://127.0.0.1:1/0", node_id=here)
    hub = Recorder()
    broker.attach(hub)
    broker.attach_members(hub)
    try:
        for data in NOT_FOR_A_ROOM:
            broker.on_room("r", data)
        for data in NOT_FOR_A_NODE:
            broker.on_node(data)
        for data in NOT_FOR_THE_USERS:
            broker.on_user(data)
        bad = len(NOT_FOR_A_ROOM) + len(NOT_FOR_A_NODE) + len(NOT_FOR_THE_USERS)
        assert broker.malformed == bad
        # What this node published itself comes back and is skipped, uncounted (it
        # published none of these numbers: nothing of it waits to be delivered).
        broker.on_room("r", HERE.room(1, None, b"own"))
        broker.on_room("r", HERE.room_ended())
        broker.on_user(HERE.user(None, "u", b"own"))
        broker.on_room("r", THERE.room(1, "s", b"theirs"))
        broker.on_room("r", THERE.chat(2, 9, "s", b"chat"))
        broker.on_user(THERE.user(None, "u", b"theirs"))
        broker.on_node(wire.encode_session(f"{here}.s", b"yours"))
        assert broker.malformed == bad
        assert hub.room == [("r", b"theirs", "s")]
        assert hub.chat_runs == [("r", [ChatItem(9, b"chat", "s", None)])]
        assert hub.user == [("u", b"theirs", None)]
        assert hub.session == [(f"{here}.s", b"yours")]
    finally:
        await broker.stop()

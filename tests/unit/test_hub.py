"""The hub's routing and refusals, driven with no network and no event loop."""

from __future__ import annotations

import pytest

from hubbub.core import Limits
from tests.unit.helpers import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()


def codes(messages: list[dict]) -> list[str]:
    return [m["code"] for m in messages if m["type"] == "error"]


def chat_text(message: dict) -> tuple[str, str]:
    assert message["type"] == "chat", message
    return message["userId"], message["message"]


class TestJoin:
    def test_first_member_sees_an_empty_room(self, h: Harness) -> None:
        joined = h.join("a", "room1", "alice")
        assert joined == {
            "type": "room-joined",
            "room": "room1",
            "userId": "alice",
            "sessionId": h.clients["a"].session_id,
            "participants": [],
            "history": [],
            "lastSeq": 0,
            "resumeToken": joined["resumeToken"],
        }

    def test_newcomer_gets_participants_in_join_order_and_others_get_user_joined(
        self, h: Harness
    ) -> None:
        h.join("a", "room1", "alice")
        h.join("b", "room1", "bob")
        assert h.take("a") == [
            {"type": "user-joined", "userId": "bob", "polite": False, "status": "online"}
        ]
        joined = h.join("c", "room1", "carol")
        assert joined["participants"] == [
            {"userId": "alice", "polite": True, "status": "online"},
            {"userId": "bob", "polite": True, "status": "online"},
        ]
        assert h.take("a") == [
            {"type": "user-joined", "userId": "carol", "polite": False, "status": "online"}
        ]
        assert h.take("b") == [
            {"type": "user-joined", "userId": "carol", "polite": False, "status": "online"}
        ]
        assert h.take("c") == []

    def test_user_id_left_out_is_assigned(self, h: Harness) -> None:
        joined = h.join("a", "room1")
        assert joined["userId"].startswith("user-")
        assert len(joined["userId"]) > len("user-")

    def test_ref_is_echoed(self, h: Harness) -> None:
        h.connect("a")
        h.send("a", {"type": "join-room", "room": "r", "userId": "alice", "ref": "j1"})
        assert h.take("a")[0]["ref"] == "j1"

    def test_taken_user_id_is_refused_and_the_member_keeps_its_place(self, h: Harness) -> None:
        h.join("a", "room1", "alice")
        h.join("b", "room1", "bob")
        h.take("a")
        h.connect("mallory")
        h.send("mallory", {"type": "join-room", "room": "room1", "userId": "alice", "ref": 7})
        [error] = h.take("mallory")
        assert error == {
            "type": "error",
            "code": "user-id-taken",
            "message": "this user id is already in the room",
            "ref": 7,
        }
        assert h.take("a") == []
        assert h.take("b") == []
        h.send("b", {"type": "signal", "targetUserId": "alice", "signal": {"x": 1}})
        assert h.take("a") == [{"type": "signal", "signal": {"x": 1}, "fromUserId": "bob"}]
        assert h.take("mallory") == []
        # mallory is in no room: chat is refused, not delivered
        h.send("mallory", {"type": "chat", "message": "hi"})
        assert codes(h.take("mallory")) == ["not-in-room"]

    def test_the_same_user_id_may_be_used_in_another_room(self, h: Harness) -> None:
        h.join("a", "room1", "alice")
        h.join("b", "room2", "alice")

    def test_joining_another_room_leaves_the_current_one(self, h: Harness) -> None:
        h.join("a", "room1", "alice")
        h.join("b", "room1", "bob")
        h.join("c", "room2", "carol")
        h.take("a")
        h.join("b", "room2", "bob")
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        assert h.take("c") == [
            {"type": "user-joined", "userId": "bob", "polite": False, "status": "online"}
        ]
        h.send("a", {"type": "chat", "message": "only alice here"})
        assert h.take("b") == []

    def test_a_refused_switch_keeps_the_current_room(self, h: Harness) -> None:
        h.join("a", "room1", "alice")
        h.join("b", "room1", "bob")
        h.join("c", "room2", "carol")
        h.take("a")
        h.send("b", {"type": "join-room", "room": "room2", "userId": "carol"})
        assert codes(h.take("b")) == ["user-id-taken"]
        assert h.take("a") == []
        h.send("a", {"type": "chat", "message": "still here?"})
        assert [chat_text(m) for m in h.take("b")] == [("alice", "still here?")]

    def test_joining_the_same_room_again_is_refused(self, h: Harness) -> None:
        h.join("a", "room1", "alice")
        h.send("a", {"type": "join-room", "room": "room1", "userId": "alice2"})
        assert codes(h.take("a")) == ["already-in-room"]

    def test_a_full_room_refuses(self) -> None:
        h = Harness(Limits(max_participants=2))
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.connect("c")
        h.send("c", {"type": "join-room", "room": "r", "userId": "carol"})
        assert codes(h.take("c")) == ["room-full"]

    @pytest.mark.parametrize(
        ("message", "code"),
        [
            ({"type": "join-room", "room": ""}, "bad-message"),
            ({"type": "join-room", "room": "x" * 129}, "too-large"),
            ({"type": "join-room", "room": "ok", "userId": "u" * 65}, "too-large"),
            ({"type": "join-room", "room": "a\nb"}, "bad-message"),
            ({"type": "join-room", "room": "ok", "userId": "\x00"}, "bad-message"),
            ({"type": "join-room", "room": 5}, "bad-message"),
            ({"type": "join-room"}, "bad-message"),
            ({"type": "join-room", "room": "ok", "userId": ""}, "bad-message"),
        ],
    )
    def test_bad_names_are_refused(self, h: Harness, message: dict, code: str) -> None:
        h.connect("a")
        h.send("a", message)
        assert codes(h.take("a")) == [code]
        assert len(h.hub.rooms) == 0


class TestLeave:
    def test_leave_room_tells_the_room_and_the_leaver(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.take("a")
        h.send("b", {"type": "leave-room", "ref": 1})
        assert h.take("b") == [{"type": "room-left", "room": "r", "ref": 1}]
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        h.send("b", {"type": "leave-room"})
        assert codes(h.take("b")) == ["not-in-room"]

    def test_disconnect_leaves_and_the_empty_room_goes(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.take("a")
        h.hub.disconnect(h.clients["b"])
        h.hub.disconnect(h.clients["b"])  # twice is harmless
        assert h.take("a") == [{"type": "user-left", "userId": "bob"}]
        assert h.clients["b"].session_id not in h.hub.sessions
        h.hub.disconnect(h.clients["a"])
        assert len(h.hub.rooms) == 0
        assert h.hub.sessions == {}

    def test_input_after_disconnect_is_ignored(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.hub.disconnect(h.clients["a"])
        h.send("a", {"type": "ping"})
        assert h.take("a") == []

    def test_user_id_is_free_again_after_leaving(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.hub.disconnect(h.clients["a"])
        h.join("a2", "r", "alice")


class TestSignal:
    def test_signal_goes_to_the_target_only_byte_for_byte(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.join("c", "r", "carol")
        for name in "abc":
            h.take(name)
        h.send(
            "a",
            '{"type":"signal","targetUserId":"bob","signal":{"type":"offer","sdp":{"type":"offer","sdp":"v=0\\r\\n"}}}',
        )
        assert h.take("b") == [
            {
                "type": "signal",
                "signal": {"type": "offer", "sdp": {"type": "offer", "sdp": "v=0\r\n"}},
                "fromUserId": "alice",
            }
        ]
        assert h.take("a") == []
        assert h.take("c") == []

    def test_signal_to_someone_absent_is_refused(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("x", "other", "bob")
        h.send("a", {"type": "signal", "targetUserId": "bob", "signal": {}, "ref": "s1"})
        assert h.take("a") == [
            {
                "type": "error",
                "code": "no-such-peer",
                "message": "no such user in this room",
                "ref": "s1",
            }
        ]
        assert h.take("x") == []

    def test_signal_to_oneself_is_refused(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.send("a", {"type": "signal", "targetUserId": "alice", "signal": {}})
        assert codes(h.take("a")) == ["no-such-peer"]

    def test_signal_outside_a_room_is_refused(self, h: Harness) -> None:
        h.connect("a")
        h.send("a", {"type": "signal", "targetUserId": "bob", "signal": {}})
        assert codes(h.take("a")) == ["not-in-room"]

    def test_signal_without_payload_is_a_bad_message(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.send("a", {"type": "signal", "targetUserId": "bob"})
        assert codes(h.take("a")) == ["bad-message"]


class TestChat:
    def test_chat_reaches_the_others_in_the_room_only(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.join("x", "elsewhere", "xavier")
        h.take("a")
        h.send("b", {"type": "chat", "message": "hello"})
        assert h.take("a") == [
            {
                "type": "chat",
                "message": "hello",
                "userId": "bob",
                "id": "m1",
                "seq": 1,
                "ts": h.storage.now_ms,
            }
        ]
        assert h.take("b") == [{"type": "chat-ack", "id": "m1", "seq": 1, "ts": h.storage.now_ms}]
        assert h.take("x") == []

    def test_long_chat_is_refused(self) -> None:
        h = Harness(Limits(max_chat_length=10))
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.take("a")
        h.send("b", {"type": "chat", "message": "x" * 11})
        assert codes(h.take("b")) == ["too-large"]
        assert h.take("a") == []
        h.send("b", {"type": "chat", "message": "x" * 10})
        assert len(h.take("a")) == 1

    def test_chat_outside_a_room_is_refused(self, h: Harness) -> None:
        h.connect("a")
        h.send("a", {"type": "chat", "message": "hi"})
        assert codes(h.take("a")) == ["not-in-room"]

    def test_non_text_chat_is_a_bad_message(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.send("a", {"type": "chat", "message": {"text": "hi"}})
        assert codes(h.take("a")) == ["bad-message"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("not json", "bad-json"),
            ("{", "bad-json"),
            ("[1, 2]", "bad-message"),
            ('"just a string"', "bad-message"),
            ("{}", "bad-message"),
            ('{"type": 5}', "bad-message"),
            ('{"type": "dance"}', "unknown-type"),
            ("[" * 33 + "]" * 33, "too-deep"),
            ('{"type":"chat","message":"x","extra":' + "[" * 40 + "]" * 40 + "}", "too-deep"),
        ],
    )
    def test_bad_frames_get_their_code_and_the_connection_stays(
        self, h: Harness, text: str, code: str
    ) -> None:
        h.join("a", "r", "alice")
        h.send("a", text)
        assert codes(h.take("a")) == [code]
        assert h.outbox.closed == {}
        h.send("a", {"type": "ping", "ref": 1})
        assert h.take("a") == [{"type": "pong", "ref": 1}]

    def test_unknown_type_echoes_ref(self, h: Harness) -> None:
        h.connect("a")
        h.send("a", {"type": "dance", "ref": "r9"})
        [error] = h.take("a")
        assert error["ref"] == "r9"

    def test_brackets_inside_strings_do_not_count_as_depth(self, h: Harness) -> None:
        h.join("a", "r", "alice")
        h.join("b", "r", "bob")
        h.take("a")
        h.send("b", {"type": "chat", "message": "[[[[" * 20})
        assert [chat_text(m) for m in h.take("a")] == [("bob", "[[[[" * 20)]

    def test_unknown_fields_are_ignored(self, h: Harness) -> None:
        h.connect("a")
        h.send("a", {"type": "ping", "ref": 2, "whatever": [1, 2, 3]})
        assert h.take("a") == [{"type": "pong", "ref": 2}]

    def test_binary_frames_are_refused(self, h: Harness) -> None:
        h.connect("a")
        h.hub.receive_binary(h.clients["a"])
        assert codes(h.take("a")) == ["binary-not-supported"]


class TestRate:
    def test_over_the_burst_messages_are_dropped_with_one_error(self) -> None:
        h = Harness(Limits(message_rate=10, message_burst=5, flood_disconnect_after=100))
        h.connect("a")
        for i in range(8):
            h.send("a", {"type": "ping", "ref": i})
        replies = h.take("a")
        assert [m.get("ref") for m in replies if m["type"] == "pong"] == [0, 1, 2, 3, 4]
        assert codes(replies) == ["rate-limited"]
        h.clock.now += 0.1  # one token back
        h.send("a", {"type": "ping", "ref": 99})
        assert h.take("a") == [{"type": "pong", "ref": 99}]
        assert h.outbox.closed == {}

    def test_a_sustained_flood_closes_with_1008(self) -> None:
        h = Harness(Limits(message_rate=10, message_burst=5, flood_disconnect_after=20))
        h.join("a", "r", "alice")
        for _ in range(5 + 20):
            h.send("a", {"type": "ping"})
        assert h.outbox.closed[h.clients["a"].session_id][0] == 1008
        h.take("a")
        h.clock.now += 10
        h.send("a", {"type": "ping"})
        assert h.take("a") == []  # nothing more is read from a closing session

    def test_accepted_messages_reset_the_flood_count(self) -> None:
        h = Harness(Limits(message_rate=10, message_burst=1, flood_disconnect_after=3))
        h.connect("a")
        for _ in range(10):
            h.send("a", {"type": "ping"})  # one accepted, one dropped
            h.send("a", {"type": "ping"})
            h.clock.now += 0.1
        assert h.outbox.closed == {}

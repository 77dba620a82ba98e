"""User addressing, notifications and calls through the hub, with no network."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.auth.grants import PARTICIPANT_GRANTS, Grant, Identity, RoomScope
from hubbub.core import Limits
from hubbub.core.events import CallEvent
from tests.unit.helpers import Harness


class Recorder:
    def __init__(self) -> None:
        self.events: list[CallEvent] = []

    def call_changed(self, event: CallEvent) -> None:
        self.events.append(event)


@pytest.fixture
def observer() -> Recorder:
    return Recorder()


@pytest.fixture
def h(observer: Recorder) -> Harness:
    return Harness(Limits(call_ring_timeout=30.0), observer=observer)


def token_identity(user_id: str, *grants: Grant, rooms: tuple[str, ...] = ("lobby",)) -> Identity:
    return Identity(
        user_id=user_id,
        rooms=RoomScope.parse(list(rooms)),
        grants=frozenset(grants) if grants else PARTICIPANT_GRANTS,
        verified=True,
    )


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


class TestAddressing:
    def test_open_mode_addresses_a_connection_by_the_user_id_it_last_joined_with(
        self, h: Harness
    ) -> None:
        h.connect("a")
        assert h.hub.users.sessions("alice") == []
        h.join("a", "r1", "alice")
        assert h.hub.users.sessions("alice") == [h.clients["a"]]
        h.send("a", {"type": "leave-room"})
        assert h.hub.users.sessions("alice") == [h.clients["a"]]  # still addressed
        h.join("a", "r2", "alicia")
        assert h.hub.users.sessions("alice") == []
        assert h.hub.users.sessions("alicia") == [h.clients["a"]]
        h.hub.disconnect(h.clients["a"])
        assert len(h.hub.users) == 0

    def test_a_token_at_connect_addresses_at_once_and_every_connection_is_reached(
        self, h: Harness
    ) -> None:
        h.connect("phone", token_identity("bob"))
        h.connect("laptop", token_identity("bob"))
        h.join("laptop", "lobby")
        assert h.hub.users.sessions("bob") == [h.clients["phone"], h.clients["laptop"]]
        h.hub.notify(h.storage.add_notification("bob", title="hi"))
        for name in ("phone", "laptop"):
            [push] = h.take(name)
            assert push == {"type": "notification", "id": 1, "ts": h.storage.now_ms, "title": "hi"}

    def test_per_user_fan_out_is_encoded_once(self, h: Harness) -> None:
        for name in ("a", "b", "c"):
            h.connect(name, token_identity("bob"))
        before = h.outbox.broadcasts
        h.hub.notify(h.storage.add_notification("bob", body="x"))
        assert h.outbox.broadcasts == before + 1


class TestNotifications:
    def test_unread_arrive_when_the_connection_is_addressed_and_only_if_any(
        self, h: Harness
    ) -> None:
        h.join("a", "r", "alice")
        assert h.take("a") == []  # nothing unread: nothing sent
        first = h.storage.add_notification("bob", title="one", data={"n": 1})
        h.storage.add_notification("bob", body="two")
        h.join("b", "r", "bob")
        [listed] = h.take("b")
        assert listed == {
            "type": "notifications",
            "notifications": [
                {"id": first.id, "ts": first.ts, "title": "one", "data": {"n": 1}},
                {"id": 2, "ts": first.ts, "body": "two"},
            ],
        }

    def test_asked_for_with_a_limit_says_when_more_wait(self, h: Harness) -> None:
        for n in range(3):
            h.storage.add_notification("bob", title=str(n))
        h.join("b", "r", "bob")
        h.take("b")
        h.send("b", {"type": "notifications", "limit": 2, "ref": "n"})
        [page] = h.take("b")
        assert [n["title"] for n in page["notifications"]] == ["0", "1"]
        assert page["more"] is True
        assert page["ref"] == "n"

    def test_marked_read_on_one_connection_is_shown_read_on_the_others(self, h: Harness) -> None:
        one = h.storage.add_notification("bob", title="one")
        two = h.storage.add_notification("bob", title="two")
        h.storage.add_notification("carol", title="not bob's")
        h.join("b1", "r1", "bob")
        h.join("b2", "r2", "bob")
        h.take("b1")
        h.take("b2")
        h.send("b1", {"type": "notification-read", "ids": [one.id, 3, one.id, 99], "ref": 5})
        assert h.take("b1") == [{"type": "notification-read", "ids": [one.id], "ref": 5}]
        assert h.take("b2") == [{"type": "notification-read", "ids": [one.id]}]
        h.send("b2", {"type": "notifications"})
        [page] = h.take("b2")
        assert [n["id"] for n in page["notifications"]] == [two.id]
        assert "more" not in page
        # Marking what is read already: the reply says nothing was, nobody else is told.
        h.send("b1", {"type": "notification-read", "ids": [one.id]})
        assert h.take("b1") == [{"type": "notification-read", "ids": []}]
        assert h.take("b2") == []

    def test_refusals(self, h: Harness) -> None:
        h.connect("x")
        h.send("x", {"type": "notifications", "ref": 1})
        h.send("x", {"type": "notification-read", "ids": [1], "ref": 2})
        assert [(m["code"], m["ref"]) for m in h.take("x")] == [
            ("unidentified", 1),
            ("unidentified", 2),
        ]
        h.join("x", "r", "xavier")
        h.send("x", {"type": "notification-read", "ids": []})
        h.send("x", {"type": "notification-read", "ids": list(range(1, 102))})
        h.send("x", {"type": "notification-read", "ids": ["1"]})
        h.send("x", {"type": "notifications", "limit": 0})
        assert [m["code"] for m in h.take("x")] == [
            "bad-message",
            "too-large",
            "bad-message",
            "bad-message",
        ]

    def test_a_store_failure_is_answered(self, h: Harness) -> None:
        h.join("b", "r", "bob")
        h.storage.fail_next = 2
        h.send("b", {"type": "notifications", "ref": 1})
        h.send("b", {"type": "notification-read", "ids": [1], "ref": 2})
        assert [(m["code"], m["ref"]) for m in h.take("b")] == [
            ("store-unavailable", 1),
            ("store-unavailable", 2),
        ]

    def test_unread_for_a_connection_that_became_someone_else_are_dropped(self, h: Harness) -> None:
        h.storage.add_notification("bob", title="for bob")
        h.join("y", "r2", "yann")
        h.join("x", "r", "carol")
        h.auto = False
        h.send("x", {"type": "notifications"})  # asked as carol...
        h.send("x", {"type": "join-room", "room": "r2", "userId": "bob"})
        assert h.take("x")[0]["type"] == "room-joined"
        h.answer()  # ...answered once x is bob: only bob's own list comes
        [listed] = h.take("x")
        assert [n["title"] for n in listed["notifications"]] == ["for bob"]


class TestCalls:
    def ring(self, h: Harness) -> str:
        h.join("a", "lobby", "alice")
        h.join("b1", "elsewhere", "bob")
        h.join("b2", "another", "bob")
        h.send("a", {"type": "call-request", "targetUserId": "bob", "ref": 1})
        [ringing] = h.take("a")
        assert ringing["type"] == "call-ringing"
        assert ringing["targetUserId"] == "bob"
        assert ringing["ref"] == 1
        call_id = ringing["callId"]
        for name in ("b1", "b2"):
            assert h.take(name) == [
                {"type": "call-incoming", "callId": call_id, "fromUserId": "alice"}
            ]
        return call_id

    def test_accept_on_one_connection_stops_the_others_and_both_get_the_room(
        self, h: Harness, observer: Recorder
    ) -> None:
        call_id = self.ring(h)
        h.send("b2", {"type": "call-accept", "callId": call_id, "ref": "yes"})
        [to_callee] = h.take("b2")
        [to_caller] = h.take("a")
        room = to_caller["room"]
        assert room.startswith("call-")
        assert to_callee == {
            "type": "call-accepted",
            "callId": call_id,
            "room": room,
            "peerUserId": "alice",
            "ref": "yes",
        }
        assert to_caller == {
            "type": "call-accepted",
            "callId": call_id,
            "room": room,
            "peerUserId": "bob",
        }
        assert h.take("b1") == [{"type": "call-answered-elsewhere", "callId": call_id}]
        h.send("b1", {"type": "call-accept", "callId": call_id, "ref": 2})
        assert [(m["code"], m["ref"]) for m in h.take("b1")] == [("call-not-ringing", 2)]
        assert [(e.kind, e.reason) for e in observer.events] == [
            ("ringing", None),
            ("accepted", None),
        ]
        assert observer.events[1].room == room
        # Hanging up: both are told, the sender with its ref.
        h.send("a", {"type": "call-end", "callId": call_id, "ref": 3})
        assert h.take("a") == [
            {
                "type": "call-ended",
                "callId": call_id,
                "reason": "hung-up",
                "byUserId": "alice",
                "ref": 3,
            }
        ]
        assert h.take("b2") == [
            {"type": "call-ended", "callId": call_id, "reason": "hung-up", "byUserId": "alice"}
        ]
        assert h.take("b1") == []
        assert observer.events[-1] == CallEvent(
            "ended", call_id, "alice", "bob", room=room, reason="hung-up"
        )
        assert len(h.hub.calls) == 0

    def test_decline_reaches_the_caller_and_every_callee_connection(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.send("b1", {"type": "call-decline", "callId": call_id, "ref": "no"})
        assert h.take("b1") == [{"type": "call-declined", "callId": call_id, "ref": "no"}]
        assert h.take("b2") == [{"type": "call-declined", "callId": call_id}]
        assert h.take("a") == [{"type": "call-declined", "callId": call_id}]
        h.send("b2", {"type": "call-accept", "callId": call_id})
        assert [m["code"] for m in h.take("b2")] == ["no-such-call"]

    def test_cancel_reaches_every_callee_connection(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.send("a", {"type": "call-cancel", "callId": call_id, "ref": 4})
        assert h.take("a") == [{"type": "call-cancelled", "callId": call_id, "ref": 4}]
        for name in ("b1", "b2"):
            assert h.take(name) == [{"type": "call-cancelled", "callId": call_id}]

    def test_no_answer_in_time_is_missed_by_both(self, h: Harness, observer: Recorder) -> None:
        call_id = self.ring(h)
        h.clock.now += 29.9
        h.hub.tick()
        assert h.take("a") == []
        assert h.hub.next_deadline() == pytest.approx(h.clock.now + 0.1)
        h.clock.now += 0.1
        h.hub.tick()
        assert h.take("a") == [{"type": "call-missed", "callId": call_id}]
        for name in ("b1", "b2"):
            assert h.take(name) == [{"type": "call-missed", "callId": call_id}]
        assert observer.events[-1].reason == "missed"
        h.hub.tick()
        assert h.take("a") == []
        # Kept for bob as a notification, and shown now on each of his connections.
        h.answer()
        for name in ("b1", "b2"):
            [push] = h.take(name)
            assert (push["type"], push["title"], push["body"]) == (
                "notification",
                "Missed call",
                "Missed call from alice",
            )
            assert push["data"] == {"kind": "missed-call", "fromUserId": "alice", "callId": call_id}
        [stored] = h.storage.notifications
        assert (stored.user_id, stored.key) == ("bob", f"missed-call:{call_id}")

    def test_a_call_to_a_user_who_is_not_connected_waits_as_a_missed_call(self, h: Harness) -> None:
        h.join("a", "lobby", "alice")
        for _ in range(3):  # again and again within one ring time: stored once
            h.send("a", {"type": "call-request", "targetUserId": "bob"})
            assert [m["code"] for m in h.take("a")] == ["user-unavailable"]
        [missed] = h.storage.notifications
        assert missed.user_id == "bob"
        assert missed.payload["data"] == {"kind": "missed-call", "fromUserId": "alice"}
        h.join("b", "elsewhere", "bob")
        [listed] = [m for m in h.take("b") if m["type"] == "notifications"]
        assert [n["body"] for n in listed["notifications"]] == ["Missed call from alice"]

    def test_a_declined_or_cancelled_call_is_no_missed_call(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.send("b1", {"type": "call-decline", "callId": call_id})
        call_id = self.ring_again(h)
        h.send("a", {"type": "call-cancel", "callId": call_id})
        assert h.storage.notifications == []

    def ring_again(self, h: Harness) -> str:
        for name in ("a", "b1", "b2"):
            h.take(name)
        h.send("a", {"type": "call-request", "targetUserId": "bob"})
        [ringing] = h.take("a")
        return str(ringing["callId"])

    def test_an_answered_call_does_not_time_out(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.send("b1", {"type": "call-accept", "callId": call_id})
        h.clock.now += 1000
        h.hub.tick()
        assert len(h.hub.calls) == 1

    def test_illegal_moves_get_their_codes(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.join("m", "lobby", "mallory")
        h.take("a")
        moves = [
            ("a", "call-accept", "forbidden"),
            ("a", "call-decline", "forbidden"),
            ("b1", "call-cancel", "forbidden"),
            ("a", "call-end", "call-not-active"),
            ("m", "call-accept", "no-such-call"),  # not mallory's call
            ("m", "call-cancel", "no-such-call"),
        ]
        for sender, kind, _ in moves:
            h.send(sender, {"type": kind, "callId": call_id, "ref": kind})
        got = [(m["code"], m["ref"]) for name in ("a", "b1", "m") for m in h.take(name)]
        assert sorted(got) == sorted((code, kind) for _, kind, code in moves)
        h.send("b1", {"type": "call-accept", "callId": "nope"})
        assert [m["code"] for m in h.take("b1")] == ["no-such-call"]
        h.send("b2", {"type": "call-accept", "callId": call_id})
        h.take("b2")
        h.take("a")
        for sender, kind in (("a", "call-cancel"), ("b2", "call-decline")):
            h.send(sender, {"type": kind, "callId": call_id})
            assert [m["code"] for m in h.take(sender)] == ["call-not-ringing"]

    def test_call_request_refusals(self, h: Harness) -> None:
        h.connect("x")
        h.send("x", {"type": "call-request", "targetUserId": "bob", "ref": 1})
        assert [m["code"] for m in h.take("x")] == ["unidentified"]
        h.join("a", "lobby", "alice")
        h.join("b", "lobby", "bob")
        h.join("c", "lobby", "carol")
        h.take("a")
        h.take("b")
        for target, code in (
            ("nobody", "user-unavailable"),
            ("alice", "bad-message"),
            ("", "bad-message"),
            ("z" * 65, "too-large"),
        ):
            h.send("a", {"type": "call-request", "targetUserId": target})
            assert [m["code"] for m in h.take("a")] == [code], target
        h.send("a", {"type": "call-request", "targetUserId": "bob"})
        h.take("a")
        h.take("b")
        # Bob is ringing: carol finds him busy, and he hears nothing of it.
        h.send("c", {"type": "call-request", "targetUserId": "bob", "ref": "c"})
        assert [(m["code"], m["ref"]) for m in h.take("c") if m["type"] == "error"] == [
            ("busy", "c")
        ]
        assert h.take("b") == []
        h.send("a", {"type": "call-request", "targetUserId": "carol"})
        h.send("b", {"type": "call-request", "targetUserId": "carol"})
        assert [m["code"] for m in h.take("a")] == ["already-in-call"]
        assert [m["code"] for m in h.take("b")] == ["already-in-call"]
        h.send("c", {"type": "call-request", "targetUserId": "alice"})
        assert [m["code"] for m in h.take("c")] == ["busy"]

    def test_calls_need_the_signal_grant(self, h: Harness) -> None:
        h.connect("bot", token_identity("bot", Grant.JOIN, Grant.CHAT))
        h.join("b", "lobby", "bob")
        h.send("bot", {"type": "call-request", "targetUserId": "bob"})
        assert [m["code"] for m in h.take("bot")] == ["forbidden"]

    def test_the_caller_closing_while_it_rings_cancels(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.hub.disconnect(h.clients["a"])
        for name in ("b1", "b2"):
            assert h.take(name) == [{"type": "call-cancelled", "callId": call_id}]
        assert len(h.hub.calls) == 0

    def test_the_callee_closing_rings_on_until_its_last_connection_goes(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.hub.disconnect(h.clients["b1"])
        assert h.take("a") == []
        h.hub.disconnect(h.clients["b2"])
        assert h.take("a") == [{"type": "call-missed", "callId": call_id}]

    def test_a_party_closing_in_a_call_ends_it_for_the_other(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.send("b1", {"type": "call-accept", "callId": call_id})
        h.take("a")
        h.hub.disconnect(h.clients["b2"])  # not the connection in the call
        assert h.take("a") == []
        h.hub.disconnect(h.clients["b1"])
        assert h.take("a") == [
            {"type": "call-ended", "callId": call_id, "reason": "disconnected", "byUserId": "bob"}
        ]

    def test_joining_the_room_then_leaving_it_ends_the_call(
        self, h: Harness, observer: Recorder
    ) -> None:
        call_id = self.ring(h)
        h.send("b1", {"type": "call-accept", "callId": call_id})
        room = h.take("a")[0]["room"]
        h.take("b1")
        h.join("a", room, "alice")
        joined = h.join("b1", room, "bob")
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        h.take("a")
        h.send("b1", {"type": "leave-room"})
        ended = {"type": "call-ended", "callId": call_id, "reason": "left", "byUserId": "bob"}
        assert h.take("a") == [ended, {"type": "user-left", "userId": "bob"}]
        assert h.take("b1") == [ended, {"type": "room-left", "room": room}]
        assert observer.events[-1].reason == "left"

    def test_rejoining_as_someone_else_leaves_the_call(self, h: Harness) -> None:
        call_id = self.ring(h)
        h.join("a", "lobby2", "alice2")
        assert h.take("a") == [{"type": "call-cancelled", "callId": call_id}]
        for name in ("b1", "b2"):
            assert h.take(name) == [{"type": "call-cancelled", "callId": call_id}]

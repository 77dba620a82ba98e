"""What a session sends while something it depends on is pending (a room load, a
join behind a room's stored chat), and what members see meanwhile: in the core, with
no network. Every message is kept, in order, or refused with a code; every member's
view of its room is one story, told in one order."""

from __future__ import annotations

from typing import Any

from hubbub.auth import Admission, AuthMode
from hubbub.store import Retention
from tests.tokens import token
from tests.unit.helpers import Harness
from tests.unit.test_auth import VERIFIER

ROOMS = frozenset({"room"})
"""Answer the room loads only: chat waits to be stored."""


def types(messages: list[dict[str, Any]]) -> list[str]:
    return [m["type"] for m in messages]


class View:
    """What one client knows of its room, built from what it was sent; each message
    must make sense given the ones before it."""

    def __init__(self, me: str) -> None:
        self.me = me
        self.members: set[str] | None = None

    def read(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.see(message)

    def see(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "room-joined":
            self.members = {p["userId"] for p in message["participants"]}
            return
        if kind == "room-left":
            self.members = None
            return
        members = self.members
        who = message.get("userId") if kind != "signal" else message["fromUserId"]
        if kind == "user-joined":
            assert members is not None, f"{self.me}: {message} before room-joined"
            assert who not in members, f"{self.me}: {who} joined twice: {message}"
            members.add(who)
        elif kind == "user-left":
            assert members is not None, f"{self.me}: {message} before room-joined"
            assert who in members, f"{self.me}: {who}, not in its room, left"
            members.discard(who)
        elif kind in ("signal", "chat", "typing", "participant-updated"):
            assert members is not None, f"{self.me}: {message} before room-joined"
            assert who in members, f"{self.me}: {kind} from {who}, not in its room: {message}"


class TestHeldMessages:
    def test_a_chat_behind_two_joins_that_wait_is_acknowledged(self) -> None:
        h = Harness(auto=False)
        h.connect("a")
        h.send("a", {"type": "join-room", "room": "A", "userId": "alice"})
        h.send("a", {"type": "join-room", "room": "B", "userId": "alice"})
        h.send("a", {"type": "chat", "message": "hi", "clientId": "c1", "ref": "m1"})
        h.answer()
        got = h.take("a")
        assert types(got) == ["room-joined", "room-joined", "chat-ack"], got
        assert [m["room"] for m in got[:2]] == ["A", "B"]
        assert got[2]["clientId"] == "c1"
        assert got[2]["ref"] == "m1"

    def test_messages_behind_joins_keep_their_order(self) -> None:
        h = Harness(auto=False)
        h.connect("a")
        sent = [
            {"type": "join-room", "room": "A", "userId": "alice"},
            {"type": "ping", "ref": 1},
            {"type": "join-room", "room": "B", "userId": "alice"},
            {"type": "ping", "ref": 2},
            {"type": "join-room", "room": "C", "userId": "alice"},
            {"type": "ping", "ref": 3},
            {"type": "leave-room", "ref": 4},
            {"type": "ping", "ref": 5},
        ]
        for message in sent:
            h.send("a", message)
        h.answer()
        got = h.take("a")
        assert [(m["type"], m.get("ref", m.get("room"))) for m in got] == [
            ("room-joined", "A"),
            ("pong", 1),
            ("room-joined", "B"),
            ("pong", 2),
            ("room-joined", "C"),
            ("pong", 3),
            ("room-left", 4),
            ("pong", 5),
        ]

    def test_what_is_held_past_the_bound_is_refused_with_its_ref(self) -> None:
        from hubbub.core import Limits

        h = Harness(Limits(message_burst=5), auto=False)
        h.connect("a")
        h.send("a", {"type": "join-room", "room": "A", "userId": "alice"})
        for ref in range(1, 8):
            h.clock.now += 1.0  # the message budget refills: only the hold's bound counts
            h.send("a", {"type": "ping", "ref": ref})
        refused = h.take("a")
        assert [(m["code"], m["ref"]) for m in refused] == [
            ("rate-limited", 6),
            ("rate-limited", 7),
        ]
        h.answer()
        got = h.take("a")
        assert types(got) == ["room-joined"] + ["pong"] * 5
        assert [m["ref"] for m in got[1:]] == [1, 2, 3, 4, 5]


class TestGhostRooms:
    def test_a_reload_with_a_token_of_the_only_member_keeps_the_room(self) -> None:
        h = Harness(admission=Admission(AuthMode.TOKEN, VERIFIER))
        h.join("tab1", "R", token=token("alice"))
        h.join("tab2", "R", token=token("alice"))
        assert h.outbox.closed[h.clients["tab1"].session_id][0] == 4009
        joined = h.join("bob", "R", token=token("bob"))
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        assert types(h.take("tab2")) == ["user-joined"]
        room = h.hub.rooms.get("R")
        assert room is not None
        assert room.members.keys() == {"alice", "bob"}
        assert h.clients["tab2"].room is room

    def test_the_first_joiner_leaving_while_the_room_loads_does_not_orphan_the_next(
        self,
    ) -> None:
        h = Harness(auto=False)
        h.connect("c1")
        h.send("c1", {"type": "join-room", "room": "R", "userId": "one"})
        h.send("c1", {"type": "leave-room"})
        h.connect("c2")
        h.send("c2", {"type": "join-room", "room": "R", "userId": "two"})
        h.answer()
        # c2's join waited in the room's queue with c1's; c1's leave, held behind
        # its join, comes after both.
        assert types(h.take("c1")) == ["room-joined", "user-joined", "room-left"]
        assert types(h.take("c2")) == ["room-joined", "user-left"]
        room = h.hub.rooms.get("R")
        assert room is not None
        assert h.clients["c2"].room is room
        joined = h.join_now("c3", "R", "three")
        assert [p["userId"] for p in joined["participants"]] == ["two"]
        h.connect("c4")
        h.send("c4", {"type": "join-room", "room": "R", "userId": "two"})
        h.answer()
        [refused] = h.take("c4")
        assert refused["code"] == "user-id-taken"


class TestOneOrderForMembers:
    def test_a_newcomer_is_announced_before_its_first_signal(self) -> None:
        h = Harness(auto=False)
        h.join_now("w", "room", "W")
        h.send("w", {"type": "chat", "message": "first", "clientId": "w1"})
        h.connect("x")
        h.send("x", {"type": "join-room", "room": "room", "userId": "X"})
        h.send("x", {"type": "signal", "targetUserId": "W", "signal": {"sdp": "offer"}})
        h.connect("y")
        h.send("y", {"type": "join-room", "room": "room", "userId": "Y"})
        h.answer(ROOMS)
        h.answer()
        views = {name: View(name) for name in ("w", "x", "y")}
        views["w"].members = set()
        for name, view in views.items():
            view.read(h.take(name))
        assert views["w"].members == {"X", "Y"}
        assert views["y"].members == {"W", "X"}
        assert views["x"].members == {"W", "Y"}

    def test_nobody_hears_of_a_member_it_never_saw_leave(self) -> None:
        h = Harness(auto=False)
        h.join_now("w", "room", "W")
        h.join_now("x", "room", "X")
        h.take("w")
        h.send("x", {"type": "chat", "message": "bye", "clientId": "x1"})
        h.send("x", {"type": "leave-room"})
        h.connect("y")
        h.send("y", {"type": "join-room", "room": "room", "userId": "Y"})
        h.answer()
        w, y = View("w"), View("y")
        w.members = {"X"}
        w.read(h.take("w"))
        y.read(h.take("y"))
        assert w.members == {"Y"}
        assert y.members == {"W"}

    def test_a_member_who_left_and_came_back_is_seen_once(self) -> None:
        h = Harness(auto=False)
        h.join_now("w", "room", "W")
        h.join_now("x", "room", "X")
        h.take("w")
        h.send("x", {"type": "chat", "message": "brb", "clientId": "x1"})
        h.send("x", {"type": "leave-room"})
        h.send("x", {"type": "join-room", "room": "room", "userId": "X"})
        h.send("x", {"type": "signal", "targetUserId": "W", "signal": {"sdp": "offer"}})
        h.connect("y")
        h.send("y", {"type": "join-room", "room": "room", "userId": "Y"})
        h.answer()
        w, x, y = View("w"), View("x"), View("y")
        w.members = {"X"}
        w.read(h.take("w"))
        x.read(h.take("x"))
        y.read(h.take("y"))
        assert w.members == {"X", "Y"}
        assert y.members == {"W", "X"}

    def test_the_chat_of_a_member_who_left_still_comes_before_its_leave(self) -> None:
        h = Harness(auto=False)
        h.join_now("w", "room", "W")
        h.join_now("x", "room", "X")
        h.take("w")
        h.send("x", {"type": "chat", "message": "last words", "clientId": "x1"})
        h.send("x", {"type": "leave-room"})
        h.answer()
        got = h.take("w")
        assert types(got) == ["chat", "user-left", "presence"]


class TestRetention:
    def test_room_joined_carries_no_message_retention_removes(self) -> None:
        h = Harness(retention=Retention(max_messages=2))
        h.join("a", "room", "alice")
        for n in range(5):
            h.send("a", {"type": "chat", "message": f"m{n}", "clientId": f"c{n}"})
        joined = h.join("b", "room", "bob")
        assert [m["message"] for m in joined["history"]] == ["m3", "m4"]
        assert joined["lastSeq"] == 5

    def test_room_joined_carries_no_message_past_its_age(self) -> None:
        h = Harness(retention=Retention(max_age_ms=60_000))
        h.join("a", "room", "alice")
        h.send("a", {"type": "chat", "message": "old", "clientId": "c1"})
        h.storage.now_ms += 61_000
        h.send("a", {"type": "chat", "message": "new", "clientId": "c2"})
        h.wall_clock.now = h.storage.now_ms / 1000
        joined = h.join("b", "room", "bob")
        assert [m["message"] for m in joined["history"]] == ["new"]

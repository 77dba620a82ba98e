"""Presence, offline members and typing in the hub, without a network."""

from __future__ import annotations

from hubbub.core import Limits
from hubbub.core.rooms import Room
from tests.unit.helpers import Harness


def types(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def test_typing_never_overtakes_the_chat_queued_before_it() -> None:
    h = Harness(auto=False)
    h.join_now("a", "r", "alice")
    h.join_now("b", "r", "bob")
    h.take("a")
    h.send("b", {"type": "chat", "message": "first"})
    h.send("b", {"type": "typing", "active": True})
    h.send("b", {"type": "chat", "message": "second"})
    assert h.take("a") == []  # all of it waits for the store
    h.answer()
    assert [(m["type"], m.get("message"), m.get("active")) for m in h.take("a")] == [
        ("chat", "first", None),
        ("typing", None, True),
        ("typing", None, False),
        ("chat", "second", None),
    ]


def test_a_hidden_member_types_and_sets_its_status_unseen() -> None:
    h = Harness()
    h.join("a", "r", "alice")
    h.join("b", "r", "bob")
    h.take("a")
    h.clients["b"].hidden = True
    h.send("b", {"type": "typing", "active": True})
    h.send("b", {"type": "presence", "status": "away", "ref": 1})
    assert h.take("a") == []
    assert h.take("b") == [{"type": "presence", "userId": "bob", "status": "away", "ref": 1}]
    assert not h.clients["b"].typing


def test_offline_members_are_those_who_chatted_most_recently_seen_first() -> None:
    wall = [1_800_000_000.0]  # after the chat, which MemoryStorage stamps 1_700_000_000_000
    h = Harness(wall_clock=lambda: wall[0], offline_on_join=2)
    for name in ("alice", "bob", "carol", "dave"):
        h.join(name, "r", name)
        if name != "dave":
            h.send(name, {"type": "chat", "message": "hi"})
    for name in ("bob", "alice", "carol", "dave"):
        wall[0] += 1
        h.send(name, {"type": "leave-room"})
    assert h.storage.seen["r"] == {
        "alice": 1_800_000_002_000,
        "bob": 1_800_000_001_000,
        "carol": 1_800_000_003_000,
    }
    joined = h.join("eve", "r", "eve")
    assert joined["offline"] == [
        {"userId": "carol", "lastSeen": 1_800_000_003_000},
        {"userId": "alice", "lastSeen": 1_800_000_002_000},
    ]


def test_ending_a_room_remembers_who_chatted_there() -> None:
    wall = [1_800_000_000.0]
    h = Harness(wall_clock=lambda: wall[0])
    h.join("a", "r", "alice")
    h.join("b", "r", "bob")
    h.send("a", {"type": "chat", "message": "hi"})
    h.hub.end_room("r")
    assert h.storage.seen["r"] == {"alice": 1_800_000_000_000}


def test_the_room_keeps_a_bounded_record_of_who_was_seen() -> None:
    room = Room("r", recent=0)
    for n in range(100):
        room.saw(f"user-{n}", n, keep=10)
    assert len(room.seen) <= 2 * 10 + 16
    assert [uid for uid, _ in room.offline(3)] == ["user-99", "user-98", "user-97"]
    assert room.offline(0) == []
    room.saw("user-99", 5, keep=10)  # never moved back
    assert room.seen["user-99"] == 99


def test_typing_and_presence_have_their_own_budgets() -> None:
    h = Harness(Limits(typing_rate=1, typing_burst=1, presence_rate=1, presence_burst=1))
    h.join("a", "r", "alice")
    h.join("b", "r", "bob")
    h.take("a")
    h.send("b", {"type": "typing", "active": True})
    h.send("b", {"type": "typing", "active": True})
    h.send("b", {"type": "presence", "status": "busy"})
    h.send("b", {"type": "presence", "status": "away"})
    assert [m.get("code") for m in h.take("b") if m["type"] == "error"] == [
        "rate-limited",
        "rate-limited",
    ]
    assert types(h.take("a")) == ["typing", "presence"]
    h.clock.now += 1
    h.send("b", {"type": "typing", "active": True})
    h.send("b", {"type": "presence", "status": "away"})
    assert types(h.take("a")) == ["typing", "presence"]

"""Chat through the store, driven by hand: nothing is relayed before it is stored,
joins wait for the room's state, and what a member causes keeps its order."""

from __future__ import annotations

from hubbub.core import Limits
from hubbub.core.rooms import Room
from hubbub.store import StoredChat
from tests.unit.helpers import Harness


def types(messages: list[dict]) -> list[str]:
    return [m["type"] for m in messages]


def test_nothing_is_relayed_or_acknowledged_before_the_batch_is_stored() -> None:
    h = Harness(auto=False)
    h.join_now("a", "r", "alice")
    h.join_now("b", "r", "bob")
    h.take("a")
    h.send("b", {"type": "chat", "message": "one", "clientId": "c1", "ref": 1})
    h.send("b", {"type": "chat", "message": "two", "ref": 2})
    assert h.take("a") == []
    assert h.take("b") == []
    assert h.answer() == 1  # both in one batch
    relayed = h.take("a")
    assert [(m["seq"], m["message"], m.get("clientId")) for m in relayed] == [
        (1, "one", "c1"),
        (2, "two", None),
    ]
    acks = h.take("b")
    assert acks == [
        {
            "type": "chat-ack",
            "id": relayed[0]["id"],
            "seq": 1,
            "ts": relayed[0]["ts"],
            "clientId": "c1",
            "ref": 1,
        },
        {"type": "chat-ack", "id": relayed[1]["id"], "seq": 2, "ts": relayed[1]["ts"], "ref": 2},
    ]


def test_a_repeated_client_id_is_acknowledged_with_the_first_and_not_relayed() -> None:
    h = Harness()
    h.join("a", "r", "alice")
    h.join("b", "r", "bob")
    h.take("a")
    h.send("b", {"type": "chat", "message": "hi", "clientId": "c1"})
    [first] = h.take("a")
    [ack] = h.take("b")
    h.send("b", {"type": "chat", "message": "hi", "clientId": "c1", "ref": "again"})
    assert h.take("a") == []
    [again] = h.take("b")
    assert again == {**ack, "duplicate": True, "ref": "again"}
    assert again["id"] == first["id"]
    h.send("b", {"type": "chat", "message": "next"})
    assert [m["seq"] for m in h.take("a")] == [2]


def test_client_id_is_checked() -> None:
    h = Harness(Limits(max_client_id_length=4))
    h.join("a", "r", "alice")
    h.send("a", {"type": "chat", "message": "x", "clientId": "12345"})
    h.send("a", {"type": "chat", "message": "x", "clientId": ""})
    h.send("a", {"type": "chat", "message": "x", "clientId": 7})
    assert [m["code"] for m in h.take("a")] == ["too-large", "bad-message", "bad-message"]


def test_a_failed_batch_is_refused_and_not_relayed() -> None:
    h = Harness()
    h.join("a", "r", "alice")
    h.join("b", "r", "bob")
    h.take("a")
    h.storage.fail_next = 1
    h.send("b", {"type": "chat", "message": "lost?", "ref": 9})
    assert h.take("a") == []
    [error] = h.take("b")
    assert (error["code"], error["ref"]) == ("store-unavailable", 9)
    h.send("b", {"type": "chat", "message": "again"})
    assert [m["seq"] for m in h.take("a")] == [1]


def test_a_full_write_queue_refuses_at_once() -> None:
    h = Harness(auto=False)
    h.join_now("a", "r", "alice")
    h.storage.capacity = 2
    for n in range(3):
        h.send("a", {"type": "chat", "message": str(n), "ref": n})
    [error] = h.take("a")
    assert (error["code"], error["ref"]) == ("store-unavailable", 2)
    h.answer()
    assert [m["seq"] for m in h.take("a")] == [1, 2]


def test_room_joined_carries_the_last_messages() -> None:
    h = Harness(history_on_join=3)
    h.join("a", "r", "alice")
    for n in range(5):
        h.send("a", {"type": "chat", "message": f"m{n}"})
    h.send("a", {"type": "leave-room"})
    h.take("a")
    # The room ended with its last member: its state comes back from the store.
    joined = h.join("b", "r", "bob")
    assert joined["lastSeq"] == 5
    assert [(m["seq"], m["message"], m["userId"]) for m in joined["history"]] == [
        (3, "m2", "alice"),
        (4, "m3", "alice"),
        (5, "m4", "alice"),
    ]
    # While the room lives, joiners get it from memory, newest included.
    h.send("b", {"type": "chat", "message": "m5"})
    joined = h.join("c", "r", "carol")
    assert [m["seq"] for m in joined["history"]] == [4, 5, 6]
    assert h.storage.requests == []


def test_a_join_and_what_follows_it_wait_for_the_room_state() -> None:
    h = Harness(auto=False)
    h.connect("a")
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice", "ref": "j"})
    h.send("a", {"type": "chat", "message": "right after joining"})
    h.send("a", {"type": "ping", "ref": "p"})
    assert h.take("a") == []
    h.answer()
    replies = h.take("a")
    assert types(replies) == ["room-joined", "pong", "chat-ack"]
    assert replies[2]["seq"] == 1


def test_joins_to_a_loading_room_wait_together() -> None:
    h = Harness(auto=False)
    h.connect("a")
    h.connect("b")
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice"})
    h.send("b", {"type": "join-room", "room": "r", "userId": "alice"})
    assert [kind for kind, _ in h.storage.requests] == ["room"]
    h.answer()
    assert types(h.take("a")) == ["room-joined"]
    assert [m["code"] for m in h.take("b")] == ["user-id-taken"]


def test_a_room_lives_while_its_chat_is_in_flight() -> None:
    h = Harness(auto=False)
    h.join_now("old", "r", "olga")
    h.send("old", {"type": "chat", "message": "in flight"})
    h.send("old", {"type": "leave-room"})
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice"}, connect=True)
    # No load (the room is still here), but the join takes its place behind the chat
    # in flight and olga's leave: alice joins a room olga has left, her words in it.
    assert h.take("a") == []
    assert h.storage.requests[0][0] == "append"
    h.answer()
    [joined] = h.take("a")
    assert joined["type"] == "room-joined"
    assert joined["participants"] == []
    assert [m["message"] for m in joined["history"]] == ["in flight"]
    assert [m["userId"] for m in joined["offline"]] == ["olga"]  # she chatted
    h.send("a", {"type": "leave-room"})
    assert len(h.hub.rooms) == 0


def test_a_loading_room_keeps_messages_stored_meanwhile() -> None:
    room = Room("r", recent=3)
    room.remember(_stored(5))
    room.loaded(4, [_stored(2), _stored(3), _stored(4)])
    assert [m.seq for m in room.history(None, 0)] == [3, 4, 5]
    assert room.last_seq == 5


def _stored(seq: int) -> StoredChat:
    return StoredChat(room="r", seq=seq, id=f"m{seq}", ts=seq, user_id="u", text=str(seq))


def test_a_failed_room_load_refuses_the_waiting_joins() -> None:
    h = Harness(auto=False)
    h.connect("a")
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice", "ref": "j"})
    h.send("a", {"type": "chat", "message": "too early"})
    h.storage.fail_next = 1
    h.answer()
    replies = h.take("a")
    assert [(m["type"], m.get("code"), m.get("ref")) for m in replies] == [
        ("error", "store-unavailable", "j"),
        ("error", "not-in-room", None),
    ]
    assert len(h.hub.rooms) == 0
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice"})
    h.answer()
    assert types(h.take("a")) == ["room-joined"]


def test_a_client_that_leaves_while_its_join_waits_is_forgotten() -> None:
    h = Harness(auto=False)
    h.connect("a")
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice"})
    h.hub.disconnect(h.clients["a"])
    h.answer()
    assert h.take("a") == []
    assert len(h.hub.rooms) == 0


def test_too_much_sent_while_joining_is_refused() -> None:
    h = Harness(Limits(message_burst=3), auto=False)
    h.connect("a")
    h.send("a", {"type": "join-room", "room": "r", "userId": "alice"})
    for n in range(4):
        h.send("a", {"type": "ping", "ref": n})
    assert [m.get("code") for m in h.take("a")] == ["rate-limited"]


def test_a_leave_reaches_the_room_after_the_leavers_own_chat() -> None:
    h = Harness(auto=False)
    h.join_now("a", "r", "alice")
    h.join_now("b", "r", "bob")
    h.take("a")
    h.send("b", {"type": "chat", "message": "bye"})
    h.hub.disconnect(h.clients["b"])
    h.send("b2", {"type": "join-room", "room": "r", "userId": "bob"}, connect=True)
    assert h.take("a") == []
    h.answer()
    assert [(m["type"], m.get("userId")) for m in h.take("a")] == [
        ("chat", "bob"),
        ("user-left", "bob"),
        ("presence", "bob"),  # offline: bob chatted
        ("user-joined", "bob"),
    ]


def test_history_pages_back_and_checks_its_arguments() -> None:
    h = Harness(Limits(max_history_page=4))
    h.join("a", "r", "alice")
    for n in range(10):
        h.send("a", {"type": "chat", "message": str(n)})
    h.take("a")
    h.send("a", {"type": "history", "ref": "h"})
    [page] = h.take("a")
    assert page["type"] == "history"
    assert page["room"] == "r"
    assert page["ref"] == "h"
    assert [m["seq"] for m in page["messages"]] == [7, 8, 9, 10]
    h.send("a", {"type": "history", "beforeSeq": 7, "limit": 2})
    assert [m["seq"] for m in h.take("a")[0]["messages"]] == [5, 6]
    h.send("a", {"type": "history", "beforeSeq": 1})
    assert h.take("a")[0]["messages"] == []
    for bad in ({"limit": 0}, {"beforeSeq": 0}, {"limit": "x"}):
        h.send("a", {"type": "history", **bad})
    assert [m["code"] for m in h.take("a")] == ["bad-message"] * 3
    h.storage.fail_next = 1
    h.send("a", {"type": "history", "ref": 3})
    assert [(m["code"], m["ref"]) for m in h.take("a")] == [("store-unavailable", 3)]
    h.send("a", {"type": "leave-room"})
    h.take("a")
    h.send("a", {"type": "history"})
    assert [m["code"] for m in h.take("a")] == ["not-in-room"]


def test_a_batch_over_several_rooms_is_relayed_room_by_room_in_order() -> None:
    h = Harness(auto=False)
    for room in ("r", "s"):
        h.join_now(f"{room}1", room, f"{room}-alice")
        h.join_now(f"{room}2", room, f"{room}-bob")
        h.take(f"{room}1")
    for n in range(3):  # interleaved: r, s, r, s, r, s
        h.send("r2", {"type": "chat", "message": f"r{n}", "ref": n})
        h.send("s2", {"type": "chat", "message": f"s{n}", "ref": n})
    h.answer()
    assert h.outbox.relay_runs == 2  # one pass over each room's members
    for room in ("r", "s"):
        relayed = h.take(f"{room}1")
        assert [(m["message"], m["seq"]) for m in relayed] == [
            (f"{room}{n}", n + 1) for n in range(3)
        ]
        acks = h.take(f"{room}2")
        assert [(m["type"], m["ref"], m["seq"]) for m in acks] == [
            ("chat-ack", n, n + 1) for n in range(3)
        ]


def alice_moves_within_a_batch(last_sender: str, last_message: str) -> Harness:
    """One batch: carol's chat in s, alice's in r, alice joins s, then a last chat in s."""
    h = Harness(auto=False)
    h.join_now("a", "r", "alice")
    h.join_now("b", "r", "bob")
    h.join_now("c", "s", "carol")
    h.send("c", {"type": "chat", "message": "in s", "ref": 1})  # room s first in the batch
    h.send("a", {"type": "chat", "message": "in r", "ref": 2})
    h.send("a", {"type": "join-room", "room": "s", "userId": "alice"})
    h.send(last_sender, {"type": "chat", "message": last_message, "ref": 3})
    h.take("a")
    while h.answer():
        pass
    return h


def test_a_sender_that_moves_within_a_batch_gets_its_acks_in_the_order_it_sent() -> None:
    h = alice_moves_within_a_batch("a", "in s too")
    acks = [m for m in h.take("a") if m["type"] == "chat-ack"]
    assert [m["ref"] for m in acks] == [2, 3]
    assert [m["message"] for m in h.take("b") if m["type"] == "chat"] == ["in r"]
    assert [m["message"] for m in h.take("c") if m["type"] == "chat"] == ["in s too"]


def test_a_sender_that_moves_within_a_batch_hears_its_new_room_after_its_ack() -> None:
    h = alice_moves_within_a_batch("c", "after")
    heard = [(m["type"], m.get("ref") or m.get("message")) for m in h.take("a")]
    heard = [entry for entry in heard if entry[0] in ("chat", "chat-ack")]
    assert heard.index(("chat-ack", 2)) < heard.index(("chat", "after"))

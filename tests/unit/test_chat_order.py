"""A room's chat in seq order, whichever node stored it (hubbub.core.ordering).

The store numbers a room's chat for every node; another node's chat reaches this one
through the broker, maybe after chat this node stored later. No network: the other
node's chat is put in the store and handed to the hub as its broker would.
"""

from __future__ import annotations

import json
from typing import Any

from hubbub.broker import ChatItem
from hubbub.core import Limits
from hubbub.store import StoredChat
from tests.unit.helpers import Harness


def stored_elsewhere(h: Harness, room: str, user_id: str, text: str) -> ChatItem:
    """Chat another node stored (the store numbers it): what its broker hands over."""
    seq = h.storage.last_seqs.get(room, 0) + 1
    h.storage.last_seqs[room] = seq
    message = StoredChat(
        room=room, seq=seq, id=f"x{seq}", ts=seq, user_id=user_id, text=text, client_id=None
    )
    h.storage.messages.setdefault(room, []).append(message)
    relay = {
        "type": "chat",
        "message": text,
        "userId": user_id,
        "id": message.id,
        "seq": seq,
        "ts": seq,
    }
    return ChatItem(seq, json.dumps(relay, separators=(",", ":")).encode(), "elsewhere", None)


def seen(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, seq or userId) of each message."""
    return [(m["type"], m.get("seq", m.get("userId"))) for m in messages]


def test_chat_stored_here_waits_for_the_chat_stored_before_it_elsewhere() -> None:
    h = Harness()
    h.join("alice", "r", "alice")
    h.join("carol", "r", "carol")
    h.take("alice")
    late = stored_elsewhere(h, "r", "bob", "first")  # its relay is on its way
    h.send("alice", {"type": "chat", "message": "second"})  # stored as seq 2
    h.send("carol", {"type": "presence", "status": "away"})  # after both, for the room
    assert h.take("alice") == []
    assert h.take("carol") == [{"type": "presence", "status": "away", "userId": "carol"}]
    h.events.deliver_chat("r", [late])
    assert seen(h.take("alice")) == [("chat", 1), ("chat-ack", 2), ("presence", "carol")]
    assert seen(h.take("carol")) == [("chat", 1), ("chat", 2)]
    joined = h.join("dave", "r", "dave")
    assert [m["seq"] for m in joined["history"]] == [1, 2]
    assert joined["lastSeq"] == 2


def test_a_chat_that_fills_the_gap_goes_first_then_what_waited_in_order() -> None:
    h = Harness()
    h.join("alice", "r", "alice")
    first, second, third = (stored_elsewhere(h, "r", "bob", str(i)) for i in range(3))
    h.events.deliver_chat("r", [third])
    h.events.deliver_to_room("r", b'{"type":"typing","userId":"bob","active":true}', None)
    h.events.deliver_chat("r", [second])
    assert h.take("alice") == []
    h.events.deliver_chat("r", [first])
    assert seen(h.take("alice")) == [("chat", 1), ("chat", 2), ("chat", 3), ("typing", "bob")]
    h.events.deliver_chat("r", [second])  # heard twice: once is enough
    assert h.take("alice") == []


def test_a_gap_not_filled_in_time_is_read_from_the_store() -> None:
    h = Harness(chat_gap_timeout=1.0)
    h.join("alice", "r", "alice")
    lost = stored_elsewhere(h, "r", "bob", "lost on the way")
    after = stored_elsewhere(h, "r", "bob", "after")
    h.events.deliver_chat("r", [after])
    h.clock.now += 0.9
    h.hub.tick()
    assert h.take("alice") == []
    h.clock.now += 0.2
    h.hub.tick()  # the gap is read from the store
    assert h.storage.requests == [("gap", ("r", 0, 2))]
    h.answer()
    assert seen(h.take("alice")) == [("chat", 1), ("chat", 2)]
    assert h.take("alice") == []
    h.events.deliver_chat("r", [lost])  # its relay after all: delivered once already
    assert h.take("alice") == []


def test_every_gap_behind_the_first_is_read_at_once() -> None:
    """In a Redis outage the relay of every chat another node stored is lost: the room
    holds a gap before each of them. One read of the store fills them all, in order
    with what the room got between; read one gap per chat_gap_timeout, a room of two
    busy nodes fell minutes behind (tests/cluster/test_outage.py)."""
    h = Harness(chat_gap_timeout=1.0)
    h.join("alice", "r", "alice")
    items = [stored_elsewhere(h, "r", "bob", str(i)) for i in range(8)]
    h.events.deliver_chat("r", [items[1]])
    h.events.deliver_to_room("r", b'{"type":"typing","userId":"bob","active":true}', None)
    for item in items[3::2]:  # seq 4, 6, 8: 3, 5 and 7 lost on the way
        h.events.deliver_chat("r", [item])
    h.clock.now += 1.1
    h.hub.tick()
    assert h.storage.requests == [("gap", ("r", 0, 8))]  # one read, up to the last held
    h.answer()
    assert seen(h.take("alice")) == [
        ("chat", 1), ("chat", 2), ("typing", "bob"), *(("chat", seq) for seq in range(3, 9))
    ]  # fmt: skip
    assert h.storage.requests == []
    h.events.deliver_chat("r", [items[4]])  # seq 5's relay after all: delivered already
    assert h.take("alice") == []


def test_a_gap_the_store_no_longer_has_among_others_is_skipped() -> None:
    h = Harness(chat_gap_timeout=1.0)
    h.join("alice", "r", "alice")
    items = [stored_elsewhere(h, "r", "bob", str(i)) for i in range(5)]
    h.storage.messages["r"] = [m for m in h.storage.messages["r"] if m.seq != 3]
    for item in (items[1], items[4]):  # 1, 3 and 4 lost on the way; 3 gone from the store
        h.events.deliver_chat("r", [item])
    h.clock.now += 1.1
    h.hub.tick()
    assert h.storage.requests == [("gap", ("r", 0, 5))]
    h.answer()
    assert seen(h.take("alice")) == [("chat", 1), ("chat", 2), ("chat", 4), ("chat", 5)]
    assert h.storage.requests == []


def test_a_gap_the_store_does_not_have_is_skipped() -> None:
    h = Harness(chat_gap_timeout=1.0)
    h.join("alice", "r", "alice")
    stored_elsewhere(h, "r", "bob", "removed by retention")
    after = stored_elsewhere(h, "r", "bob", "after")
    h.storage.messages["r"].pop(0)
    h.events.deliver_chat("r", [after])
    h.clock.now += 1.5
    h.hub.tick()
    h.answer()
    assert seen(h.take("alice")) == [("chat", 2)]


def test_a_gap_goes_when_the_store_cannot_be_read() -> None:
    h = Harness(chat_gap_timeout=1.0)
    h.join("alice", "r", "alice")
    stored_elsewhere(h, "r", "bob", "missing")
    after = stored_elsewhere(h, "r", "bob", "after")
    h.events.deliver_chat("r", [after])
    h.storage.fail_next = 1
    h.clock.now += 1.5
    h.hub.tick()
    h.answer()
    assert seen(h.take("alice")) == [("chat", 2)]


def test_too_much_behind_a_gap_reads_it_at_once() -> None:
    h = Harness(chat_gap_max_held=3)
    h.join("alice", "r", "alice")
    items = [stored_elsewhere(h, "r", "bob", str(i)) for i in range(6)]
    h.auto = False
    for item in items[1:4]:
        h.events.deliver_chat("r", [item])
    assert h.storage.requests == []
    h.events.deliver_chat("r", [items[4]])  # the fourth held: over the bound
    assert h.storage.requests == [("gap", ("r", 0, 5))]  # up to the last held
    h.answer()
    assert [m["seq"] for m in h.take("alice")] == [1, 2, 3, 4, 5]
    h.events.deliver_chat("r", [items[5]])
    assert [m["seq"] for m in h.take("alice")] == [6]


def test_an_ack_alone_goes_at_once() -> None:
    h = Harness()
    h.join("alice", "r", "alice")
    h.send("alice", {"type": "chat", "message": "once", "clientId": "c1"})
    assert seen(h.take("alice")) == [("chat-ack", 1)]
    later = stored_elsewhere(h, "r", "bob", "held")
    h.events.deliver_chat("r", [later._replace(seq=3)])  # a gap before it
    h.send("alice", {"type": "chat", "message": "once", "clientId": "c1"})  # again
    [ack] = h.take("alice")
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("chat-ack", 1, True)


def test_out_of_order_chat_is_delivered_as_it_comes_when_nodes_number_their_own() -> None:
    h = Harness(chat_in_seq_order=False)
    h.join("alice", "r", "alice")
    first, second = (stored_elsewhere(h, "r", "bob", str(i)) for i in range(2))
    h.events.deliver_chat("r", [second])
    h.events.deliver_chat("r", [first])
    assert [m["seq"] for m in h.take("alice")] == [2, 1]


def test_a_gap_waits_no_more_once_the_room_is_gone() -> None:
    h = Harness(chat_gap_timeout=1.0, limits=Limits())
    h.join("alice", "r", "alice")
    stored_elsewhere(h, "r", "bob", "missing")
    after = stored_elsewhere(h, "r", "bob", "after")
    h.events.deliver_chat("r", [after])
    h.send("alice", {"type": "leave-room"})
    assert len(h.hub.rooms) == 0
    h.clock.now += 1.5
    h.hub.tick()
    assert h.storage.requests == []

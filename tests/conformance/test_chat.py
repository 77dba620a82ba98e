"""Chat that is stored exactly once, and the history paged back to its start
(docs/protocol.md: chat, chat-ack, history; "Reconnecting and resuming", the
chat refusals after which the same message is sent again).

What the client sent is read at the relay, and what was stored from the server's
HTTP API, so the scenarios do not take the SDK's word for either.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import Hubs, Sdk
from tests.conformance.network import WAIT, Hub, Line
from tests.faults.resuming import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def copies_sent(line: Line, text: str) -> list[str]:
    """The clientId of each copy of the message ``text`` the client sent."""
    return [frame.message["clientId"] for frame in line.up("chat", message=text)]


async def test_a_message_is_acknowledged_with_its_seq(sdk: Sdk, hub: Hub) -> None:
    bob = await hub.member("team", "bob")
    alice = await sdk.join(hub, "team", "alice")
    await bob.chat_stored("first")
    await alice.expect("chat", user="bob", message="first", seq=1)

    await alice.chat("hello")
    stored = await alice.expect("chat-stored", message="hello")
    assert stored["seq"] == 2
    relayed = await bob.expect("chat", userId="alice")
    assert (relayed["message"], relayed["seq"]) == ("hello", 2)
    [client_id] = copies_sent(alice.line, "hello")
    assert relayed["clientId"] == client_id
    assert await hub.stored("team") == [
        (1, "bob", "first", "bob:first"),
        (2, "alice", "hello", client_id),
    ]


async def test_a_chat_refused_as_store_unavailable_is_sent_again_and_stored_once(
    sdk: Sdk, hubs: Hubs
) -> None:
    # One message may wait for the store at a time, and each waits 300 ms: a second
    # one sent meanwhile is refused (nothing stored), as by a store that cannot keep up.
    hub = await hubs.start(store_max_pending=1, store_batch_delay=0.3)
    alice = await sdk.join(hub, "team", "alice")
    await alice.chat("one")
    await alice.chat("two")
    await alice.expect("chat-stored", message="one")
    await alice.expect("chat-stored", message="two")

    [refused] = {
        frame.message["ref"] for frame in alice.line.down("error", code="store-unavailable")
    }
    [client_id] = set(copies_sent(alice.line, "two"))
    assert refused == f"chat:{client_id}"
    assert len(copies_sent(alice.line, "two")) >= 2
    stored = await hub.stored("team")
    assert [(message, cid) for _, _, message, cid in stored] == [
        ("one", copies_sent(alice.line, "one")[0]),
        ("two", client_id),
    ]
    assert alice.of("chat-failed") == []


async def test_a_chat_whose_ack_is_lost_is_sent_again_and_stored_once(sdk: Sdk, hub: Hub) -> None:
    bob = await hub.member("team", "bob")
    alice = await sdk.join(hub, "team", "alice", ack_timeout=1.0)
    alice.line.lose_next(lambda message: message["type"] == "chat-ack")
    await alice.chat("are you there")
    stored = await alice.expect("chat-stored", message="are you there")

    copies = copies_sent(alice.line, "are you there")
    assert len(copies) == 2, copies
    assert len(set(copies)) == 1
    # the server knew it: the second copy was answered as the first one's duplicate
    [lost] = alice.line.dropped()
    [again] = alice.line.down("chat-ack", clientId=copies[0])
    assert "duplicate" not in lost.message
    assert again.message["duplicate"] is True
    assert again.message["seq"] == lost.message["seq"] == stored["seq"]
    assert [m for *_, m, _ in await hub.stored("team")] == ["are you there"]
    await bob.confirm()
    assert [m["message"] for m in bob.seen("chat")] == ["are you there"]


async def test_a_chat_refused_as_not_in_room_waits_to_be_back_in_the_room(
    sdk: Sdk, hub: Hub
) -> None:
    """The server takes alice out of the room (a leave that crossed her chat), and
    tells her so; her chat is refused with not-in-room. It is not sent again until
    she is back in her room: after the connection drops, she joins afresh (a session
    out of any room ends with its connection) and it goes then, stored once."""
    alice = await sdk.join(hub, "team", "alice", ack_timeout=1.0)
    await alice.line.inject({"type": "leave-room"})
    # (room-left reached her before her chat reaches the server)
    await wait_for(lambda: bool(alice.line.down("room-left")), WAIT)
    await alice.chat("still here?")
    await wait_for(lambda: bool(alice.line.down("error", code="not-in-room")), WAIT)
    await asyncio.sleep(1.5)  # longer than any resend delay: a resend would be out by now
    assert len(copies_sent(alice.line, "still here?")) == 1

    alice.line.cut()
    back = await alice.expect("back")
    assert back["how"] == "rejoined"
    stored = await alice.expect("chat-stored", message="still here?")
    copies = copies_sent(alice.line, "still here?")
    assert len(set(copies)) == 1
    # the copy after the refusal went out on the new connection, once it was in the room
    [again] = [f for f in alice.line.up("chat", message="still here?") if f.connection == 2]
    joined_at = alice.line.frames.index(alice.line.down("room-joined")[-1])
    assert alice.line.frames.index(again) > joined_at
    assert await hub.stored("team") == [(stored["seq"], "alice", "still here?", copies[0])]


async def test_history_pages_back_to_the_first_message(sdk: Sdk, hubs: Hubs) -> None:
    hub = await hubs.start(history_on_join=3, max_history_page=4)
    bob = await hub.member("team", "bob")
    texts = [f"m{k}" for k in range(1, 12)]
    await bob.chat_stored(*texts)

    alice = await sdk.join(hub, "team", "alice")
    joined = alice.of("joined")[0]
    assert joined["last_seq"] == 11
    assert joined["history"] == [(seq, "bob", f"m{seq}") for seq in (9, 10, 11)]
    seen = list(joined["history"])
    pages = []
    while page := await alice.older_page(4):
        pages.append([seq for seq, _, _ in page])
        seen[:0] = page
        assert len(pages) < 10, pages
    assert pages == [[5, 6, 7, 8], [1, 2, 3, 4]]
    assert seen == [(seq, "bob", f"m{seq}") for seq in range(1, 12)]

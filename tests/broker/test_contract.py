"""One contract, every broker: the in-memory broker and the Redis broker (one node).

What a lone node's hub sees must not change when it runs on Redis: room messages,
stored chat and session messages reach its own members once, in the order
published. The in-memory broker hands them over at once; the Redis broker hands a
room's messages to a node with members there when Redis carries them back (so that
every node has them in one order), and the rest at once (tests/broker/test_redis.py
holds what crosses nodes).
"""

from __future__ import annotations

import asyncio
import time

from hubbub.broker import ChatItem, Member
from tests.broker.conftest import NodeFactory, Recorder, eventually


async def seated(broker: object, hub: Recorder, room: str) -> None:
    """A member of ``room`` on this node (a cluster node claims its place)."""
    if not hasattr(broker, "claim"):
        return  # the in-memory broker delivers to whoever is in the room
    member = Member("someone", broker.new_session_id())  # type: ignore[attr-defined]
    broker.claim(room, member, replace=False, max_members=10)
    await eventually(lambda: member.session_id in hub.claims)


async def test_a_room_message_reaches_the_local_members_once(make_node: NodeFactory) -> None:
    broker, hub = await make_node()
    broker.publish_to_room("lobby", b'{"type":"x"}', "s1")
    # Delivered at once, inside the call: no await stands between a member and its room.
    assert hub.room == [("lobby", b'{"type":"x"}', "s1")]
    await asyncio.sleep(0.3)  # nothing comes back from elsewhere
    assert hub.room == [("lobby", b'{"type":"x"}', "s1")]


async def test_a_session_message_reaches_a_local_session_at_once(make_node: NodeFactory) -> None:
    broker, hub = await make_node()
    session_id = broker.new_session_id()
    broker.publish_to_session(session_id, b'{"type":"y"}')
    assert hub.session == [(session_id, b'{"type":"y"}')]
    await asyncio.sleep(0.3)
    assert hub.session == [(session_id, b'{"type":"y"}')]


async def test_order_is_kept(make_node: NodeFactory) -> None:
    broker, hub = await make_node()
    session_id = broker.new_session_id()
    for i in range(200):
        broker.publish_to_room("r", b"%d" % i)
        broker.publish_to_session(session_id, b"%d" % i)
    assert [p for _, p, _ in hub.room] == [b"%d" % i for i in range(200)]
    assert [p for _, p in hub.session] == [b"%d" % i for i in range(200)]


async def test_session_ids_are_unique(make_node: NodeFactory) -> None:
    broker, _ = await make_node()
    ids = {broker.new_session_id() for _ in range(1000)}
    assert len(ids) == 1000


async def test_lag_is_measured_and_settles(make_node: NodeFactory, backend: str) -> None:
    broker, _ = await make_node()
    for i in range(100):
        broker.publish_to_room("r", b"%d" % i)
    time.sleep(0.1)  # noqa: ASYNC251 - holds the loop: no reply from Redis is read meanwhile
    if backend == "memory":
        assert broker.lag_seconds() == 0.0  # delivered inside publish: nothing waits
    else:
        assert broker.lag_seconds() >= 0.1  # the oldest publication has waited that long
    assert await eventually(lambda: broker.lag_seconds() == 0.0)


async def test_a_user_message_reaches_the_local_connections_at_once(
    make_node: NodeFactory,
) -> None:
    broker, hub = await make_node()
    broker.publish_to_user("alice", b'{"type":"notification"}', "s1")
    assert hub.user == [("alice", b'{"type":"notification"}', "s1")]
    await asyncio.sleep(0.3)
    assert hub.user == [("alice", b'{"type":"notification"}', "s1")]


async def test_stored_chat_reaches_the_local_members_once(make_node: NodeFactory) -> None:
    broker, hub = await make_node()
    chat = b'{"type":"chat","message":"hi","userId":"x","id":"i","seq":1,"ts":1}'
    run = [ChatItem(1, chat, "s1", b"ack"), ChatItem(1, None, "s1", b"duplicate's ack")]
    broker.publish_chat("lobby", run)
    # Nobody in the room on this node: delivered at once, relays and acks together.
    assert hub.chat_runs == [("lobby", run)]
    await asyncio.sleep(0.3)
    assert hub.chat_runs == [("lobby", run)]
    assert hub.room == []


async def test_a_rooms_messages_reach_its_members_here_once_in_the_order_published(
    make_node: NodeFactory,
) -> None:
    broker, hub = await make_node()
    await seated(broker, hub, "team")
    first = ChatItem(1, b'{"type":"chat","seq":1}', "s1", b"ack 1")
    again = ChatItem(1, None, "s1", b"ack 1 again")  # a duplicate: the ack alone
    second = ChatItem(2, b'{"type":"chat","seq":2}', "s2", b"ack 2")
    for i in range(50):
        broker.publish_to_room("team", b"%d" % i)
        if i == 10:
            broker.publish_chat("team", [first, again])
        if i == 20:
            broker.publish_chat("team", [second])
    expected = [
        *((b"%d" % i,) for i in range(11)),
        (first,),
        *((b"%d" % i,) for i in range(11, 21)),
        (second,),
        *((b"%d" % i,) for i in range(21, 50)),
    ]
    got = await eventually(lambda: len(hub.log) == 53 and hub.log)
    assert [entry for entry in got if entry != (again,)] == expected
    assert got.count((again,)) == 1
    await asyncio.sleep(0.3)
    assert len(hub.log) == 53


# -- lifecycle, health, status ----------------------------------------------------


async def test_a_started_broker_is_healthy(make_node: NodeFactory) -> None:
    broker, _ = await make_node()
    assert await broker.health() is True


async def test_a_broker_says_alike_everywhere_whether_it_has_a_cluster(
    make_node: NodeFactory, backend: str
) -> None:
    """No cluster (in memory): no status for /metrics and /api/server, and no
    cluster-wide member list for the HTTP API. A cluster node has both."""
    broker, _ = await make_node()
    status = broker.status()
    members = await broker.room_members("nobody-here")
    assert (status is None) is (backend == "memory")
    assert (members is None) is (backend == "memory")
    if status is not None:
        assert members == []


async def test_status_names_the_node_and_counts_what_it_sent(
    make_node: NodeFactory, backend: str
) -> None:
    broker, _ = await make_node()
    for i in range(50):
        broker.publish_to_room("r", b"%d" % i)
    status = broker.status()
    if backend == "memory":
        assert status is None
        return
    assert status is not None
    assert status.connected is True
    assert broker.new_session_id().startswith(status.node + ".")  # a session id names it
    assert status.pending + status.sent >= 50
    settled = await eventually(lambda: (s := broker.status()) and s.pending == 0 and s)
    assert settled.sent >= 50
    assert settled.dropped == 0
    assert settled.lag_seconds == 0.0 == broker.lag_seconds()


async def test_stop_sends_what_was_published_and_a_second_stop_does_nothing(
    make_node: NodeFactory,
) -> None:
    broker, hub = await make_node()
    for i in range(20):
        broker.publish_to_room("r", b"%d" % i)
    async with asyncio.timeout(5):
        await broker.stop()
    status = broker.status()
    if status is not None:
        assert status.pending == 0
        assert status.sent >= 20
        assert status.dropped == 0
    async with asyncio.timeout(1):
        await broker.stop()
    assert broker.status() == status
    assert len(hub.room) == 20

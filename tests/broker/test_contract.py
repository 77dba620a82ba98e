"""One contract, every broker: the in-memory broker and the Redis broker (one node).

What a lone node's hub sees must not change when it runs on Redis: room messages and
session messages reach its own members once, in order, with no Redis round trip in
the way (tests/broker/test_redis.py holds what crosses nodes).
"""

from __future__ import annotations

import asyncio

from tests.broker.conftest import NodeFactory, eventually


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


async def test_lag_is_measured_and_settles(make_node: NodeFactory) -> None:
    broker, _ = await make_node()
    for i in range(100):
        broker.publish_to_room("r", b"%d" % i)
    assert broker.lag_seconds() >= 0.0
    assert await eventually(lambda: broker.lag_seconds() == 0.0)


async def test_a_user_message_reaches_the_local_connections_at_once(
    make_node: NodeFactory,
) -> None:
    broker, hub = await make_node()
    broker.publish_to_user("alice", b'{"type":"notification"}', "s1")
    assert hub.user == [("alice", b'{"type":"notification"}', "s1")]
    await asyncio.sleep(0.3)
    assert hub.user == [("alice", b'{"type":"notification"}', "s1")]

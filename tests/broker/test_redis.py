"""The Redis broker between nodes: a real Redis server, several brokers on it."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from hubbub.broker import (
    CallPlacement,
    ChatItem,
    ClaimOutcome,
    Located,
    Member,
    ModeRule,
    SessionFound,
    SessionState,
    SharedMedia,
)
from hubbub.broker.redis import RedisBroker, keys, node_of, scripts, wire
from hubbub.broker.redis.pipeline import Op
from hubbub.media.modes import BACK_TO_MESH_AT, MediaSetting, Mode, next_mode
from hubbub.media.placements import new_placement
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import MediaFeed
from tests.broker.conftest import WAIT, Node, eventually
from tests.redis import FreezingProxy, RedisServer

MakeNode = Callable[..., Awaitable[Node]]


def member(broker: RedisBroker, user_id: str, name: str | None = None) -> Member:
    return Member(user_id=user_id, session_id=broker.new_session_id(), name=name)


async def admitted(node: Node, room: str, who: Member, replace: bool = False):
    broker, hub = node
    broker.claim(room, who, replace=replace, max_members=100)
    result = await eventually(lambda: hub.claims.get(who.session_id))
    return result


def redis_command(port: int, *words: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        command = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        sock.sendall(command.encode())
        return sock.recv(65536)


def command_calls(port: int, command: str) -> int:
    """How many times Redis ran ``command`` (``INFO commandstats``; a subcommand as
    ``client|reply``)."""
    stats = redis_command(port, "INFO", "commandstats").decode()
    for line in stats.splitlines():
        if line.startswith(f"cmdstat_{command}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def publish_calls(port: int) -> int:
    return command_calls(port, "publish")


async def test_session_ids_name_their_node(make_redis_node: MakeNode) -> None:
    broker, _ = await make_redis_node()
    assert node_of(broker.new_session_id()) == broker.node_id


async def test_room_messages_cross_nodes_once(make_redis_node: MakeNode) -> None:
    a, b, c = [await make_redis_node() for _ in range(3)]
    for node in (a, b, c):
        assert (await admitted(node, "lobby", member(node[0], f"u-{node[0].node_id}"))).outcome is (
            ClaimOutcome.ADMITTED
        )
    a[0].publish_to_room("lobby", b'{"type":"hello"}', "skip-me")
    # a's own members get it when Redis carries it back, as every other node's.
    assert a[1].room == []
    for _, hub in (a, b, c):
        await eventually(lambda hub=hub: hub.room)
    await asyncio.sleep(0.3)
    assert a[1].room == [("lobby", b'{"type":"hello"}', "skip-me")]  # once
    assert b[1].room == [("lobby", b'{"type":"hello"}', "skip-me")]
    assert c[1].room == [("lobby", b'{"type":"hello"}', "skip-me")]


async def test_a_room_message_is_published_once_whatever_the_receivers(
    make_redis_node: MakeNode, redis_server: RedisServer
) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    for i in range(20):
        for node in (a, b):
            await admitted(node, "big", member(node[0], f"{node[0].node_id}-{i}"))
    await asyncio.sleep(0.3)
    before = publish_calls(redis_server.port)
    a[0].publish_to_room("big", b'{"type":"chat","message":"x"}')
    await eventually(lambda: b[1].room)
    assert publish_calls(redis_server.port) - before == 1


async def test_a_session_message_reaches_its_node(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    target = b[0].new_session_id()
    a[0].publish_to_session(target, b'{"type":"signal"}')
    assert await eventually(lambda: b[1].session) == [(target, b'{"type":"signal"}')]
    assert a[1].session == []


async def test_what_one_turn_sends_a_nodes_sessions_is_one_publication_in_order(
    make_redis_node: MakeNode, redis_server: RedisServer
) -> None:
    """Signals to members of another node: what one turn of the event loop sends there
    goes as one publication (SESSIONS), each delivered, in order. A room message in
    between closes it: what comes after it goes in another."""
    a, b = await make_redis_node(), await make_redis_node()
    await eventually(lambda: b[0].node_id in a[0]._node.read_batches)  # a heartbeat said so
    targets = [b[0].new_session_id() for _ in range(3)]
    sent = [(targets[n % 3], f'{{"n":{n}}}'.encode()) for n in range(30)]
    before = publish_calls(redis_server.port)
    for target, payload in sent:
        a[0].publish_to_session(target, payload)
    assert await eventually(lambda: len(b[1].session) == len(sent) and b[1].session) == sent
    assert publish_calls(redis_server.port) - before == 1

    before = publish_calls(redis_server.port)
    a[0].publish_to_session(targets[0], b"1")
    a[0].publish_to_room("elsewhere", b"r")
    a[0].publish_to_session(targets[0], b"2")
    a[0].publish_to_session(targets[1], b"3")
    await eventually(lambda: len(b[1].session) == len(sent) + 3)
    assert b[1].session[len(sent) :] == [(targets[0], b"1"), (targets[0], b"2"), (targets[1], b"3")]
    assert publish_calls(redis_server.port) - before == 3


@pytest.mark.parametrize("may_skip", [True, False])
async def test_what_nothing_waits_for_gets_no_reply_and_the_replies_stay_in_step(
    make_redis_node: MakeNode, redis_server: RedisServer, may_skip: bool
) -> None:
    """Publications of signals ask Redis for no reply (CLIENT REPLY SKIP), where the
    node's user may: the replies of what waits for one still reach it, each its own.
    A user an ACL denies CLIENT gets every reply, read as before."""
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    if not may_skip:
        user = f"no-client-{redis_server.port}"
        assert redis_command(
            redis_server.port, "ACL", "SETUSER", user, "reset", "on", ">secret", "~*", "&*",
            "+@all", "-client",
        ) == b"+OK\r\n"  # fmt: skip
        url = f"redis://{user}:secret@127.0.0.1:{redis_server.port}/0"
    a, b = await make_redis_node(url), await make_redis_node()
    await eventually(lambda: b[0].node_id in a[0]._node.read_batches)
    target = b[0].new_session_id()
    counter = f"test:counter:{a[0].node_id}"
    replies: list[int] = []
    before = command_calls(redis_server.port, "client|reply")
    for n in range(10):
        a[0].publish_to_session(target, str(n).encode())
        a[0]._pipeline.send(Op("INCR", counter, on_reply=replies.append))
    await eventually(lambda: len(replies) == 10)
    assert replies == list(range(1, 11))
    assert await eventually(lambda: len(b[1].session) == 10 and b[1].session) == [
        (target, str(n).encode()) for n in range(10)
    ]
    assert a[0]._pipeline.pending == 0
    skipped = command_calls(redis_server.port, "client|reply") - before
    assert skipped == (10 if may_skip else 0)


async def test_a_node_that_does_not_say_it_reads_batches_gets_one_publication_each(
    make_redis_node: MakeNode, redis_url: str
) -> None:
    """A node of an earlier version (its alive key holds 1, or anything but a
    version of 2 or more) shares the cluster during a rolling upgrade: signals to its
    members go one publication each, as it reads them."""
    a = await make_redis_node()
    old = "0123abcd"
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await client.set(keys.alive(old), "1", px=30_000)
        await client.sadd(keys.NODES, old)
        await pubsub.subscribe(keys.node_channel(old))
        await eventually(lambda: old in a[0]._node.peers)
        assert old not in a[0]._node.read_batches
        sent = [(f"{old}.s{n % 2}", f"signal {n}".encode()) for n in range(6)]
        for session_id, payload in sent:
            a[0].publish_to_session(session_id, payload)
        heard = []
        async with asyncio.timeout(WAIT):
            while len(heard) < len(sent):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    heard.append(message["data"])
        assert heard == [wire.encode_session(*message) for message in sent]
    finally:
        await pubsub.aclose()
        await client.delete(keys.alive(old))
        await client.srem(keys.NODES, old)
        await client.aclose()


async def test_a_user_message_reaches_every_node_once(
    make_redis_node: MakeNode, redis_server: RedisServer
) -> None:
    a, b, c = [await make_redis_node() for _ in range(3)]
    before = publish_calls(redis_server.port)
    a[0].publish_to_user("alice", b'{"type":"call"}', "s9")
    for _, hub in (b, c):
        assert await eventually(lambda hub=hub: hub.user) == [("alice", b'{"type":"call"}', "s9")]
    await asyncio.sleep(0.3)
    assert a[1].user == [("alice", b'{"type":"call"}', "s9")]
    assert publish_calls(redis_server.port) - before == 1


async def test_chat_stored_by_a_node_reaches_every_node_with_its_seq(
    make_redis_node: MakeNode,
) -> None:
    """Chat a node stored reaches the other nodes' members with its seq (for them to
    put it in order); the acks stay on the node that stored it, which delivers the
    run when Redis carries it back. A room message is not chat, whatever its bytes
    look like."""
    a, b = await make_redis_node(), await make_redis_node()
    x, y = member(a[0], "x"), member(b[0], "y")
    await admitted(a, "r", x)
    await admitted(b, "r", y)
    chat = b'{"type":"chat","message":"hi","userId":"x","id":"i","seq":1,"ts":1}'
    looks_like_chat = b'{"type":"chat","message":"not stored"}'
    stored = ChatItem(1, chat, x.session_id, b'{"type":"chat-ack"}', "kept here")
    duplicate = ChatItem(1, None, x.session_id, b"dup-ack")
    a[0].publish_to_room("r", looks_like_chat)
    a[0].publish_chat("r", [stored, duplicate])
    assert a[1].chat_runs == [("r", [duplicate])]  # an ack alone: at once
    assert await eventually(lambda: len(a[1].chat_runs) == 2 and a[1].chat_runs) == [
        ("r", [duplicate]),
        ("r", [stored]),  # as it was handed over, the ack and what is kept included
    ]
    assert await eventually(lambda: b[1].chat_runs) == [
        ("r", [ChatItem(1, chat, x.session_id, None)])
    ]
    assert b[1].room == [("r", looks_like_chat, None)]
    await asyncio.sleep(0.3)
    assert b[1].session == []
    assert a[1].room == [("r", looks_like_chat, None)]
    assert len(a[1].chat_runs) == 2


async def test_what_a_node_published_and_did_not_hear_back_is_delivered_when_redis_goes(
    make_redis_node: MakeNode, own_redis: RedisServer
) -> None:
    a = await make_redis_node(own_redis.url)
    await admitted(a, "r", member(a[0], "x"))
    for i in range(200):
        a[0].publish_to_room("r", b"%d" % i)
    own_redis.stop(kill=True)
    await eventually(lambda: not a[0].connected)
    got = await eventually(lambda: len(a[1].room) == 200 and a[1].room)
    assert [payload for _, payload, _ in got] == [b"%d" % i for i in range(200)]
    a[0].publish_to_room("r", b"without Redis")  # at once
    assert a[1].room[-1] == ("r", b"without Redis", None)


async def test_what_is_not_ours_on_our_channels_is_dropped_and_counted(
    make_redis_node: MakeNode, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Something else publishing on a node's channels (or a node of another
    version) costs that publication, counted, and nothing else."""
    a, b = await make_redis_node(), await make_redis_node()
    await admitted(a, "r", member(a[0], "x"))
    await admitted(b, "r", member(b[0], "y"))
    garbage = [
        (f"hubbub:n:{b[0].node_id}", "c{not json"),
        (f"hubbub:n:{b[0].node_id}", "x" + '{"s":"s","c":1234,"r":"","a":false}'),
        (f"hubbub:n:{b[0].node_id}", "hello"),
        ("hubbub:u", "u-too-short"),
        ("hubbub:r:r", "j{}"),
        ("hubbub:r:r", "Z" + a[0].node_id + "\nfrom the future"),
    ]
    for channel, data in garbage:
        assert redis_command(redis_server.port, "PUBLISH", channel, data).startswith(b":")
    await eventually(lambda: b[0].malformed == len(garbage))
    a[0].publish_to_room("r", b'{"type":"after"}')
    assert await eventually(lambda: b[1].room) == [("r", b'{"type":"after"}', None)]
    assert b[1].closes == []
    assert b[0].connected
    assert "redis-reply-failed" not in caplog.text  # dropped, not an exception
    assert "event=cluster-malformed" in caplog.text


async def test_the_scripts_are_in_redis_by_the_sha_computed_here(
    make_redis_node: MakeNode, redis_server: RedisServer
) -> None:
    await make_redis_node()
    shas = [script.sha for script in scripts.ALL]
    assert redis_command(redis_server.port, "SCRIPT", "EXISTS", *shas) == (
        f"*{len(shas)}\r\n".encode() + b":1\r\n" * len(shas)
    )


async def test_room_members_are_every_nodes_in_join_order(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    first, second = member(a[0], "first", name="First"), member(b[0], "second")
    await admitted(a, "r", first)
    await admitted(b, "r", second)
    assert await a[0].room_members("r") == [first, second]
    assert await b[0].room_members("nobody-here") == []


async def test_two_nodes_claiming_one_user_id_at_once_one_gets_it(
    make_redis_node: MakeNode,
) -> None:
    nodes = [await make_redis_node() for _ in range(3)]
    for round_ in range(10):
        room = f"race-{round_}"
        claims = [(node, member(node[0], "alice")) for node in nodes]
        for (broker, _), who in claims:
            broker.claim(room, who, replace=False, max_members=100)
        results = [
            await eventually(lambda hub=hub, who=who: hub.claims.get(who.session_id))
            for (_, hub), who in claims
        ]
        outcomes = sorted(r.outcome for r in results)
        assert outcomes == [ClaimOutcome.ADMITTED, ClaimOutcome.TAKEN, ClaimOutcome.TAKEN]


async def test_a_claim_answers_with_the_members_in_join_order(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    first = member(a[0], "first", name="First")
    second = member(b[0], "second")
    await admitted(a, "r", first)
    third = member(a[0], "third")
    await admitted(b, "r", second)
    result = await admitted(a, "r", third)
    assert [m.user_id for m in result.members] == ["first", "second", "third"]
    assert result.members[0].name == "First"
    # Each node knows the other's members, and not its own, as remote.
    assert a[0].remote_member("r", "second") == second
    assert a[0].remote_member("r", "first") is None
    assert await eventually(lambda: b[0].remote_member("r", "third")) == third


async def test_a_full_room_refuses_across_nodes(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    a[0].claim("small", member(a[0], "one"), replace=False, max_members=2)
    await eventually(lambda: a[1].claims)
    b[0].claim("small", member(b[0], "two"), replace=False, max_members=2)
    await eventually(lambda: b[1].claims)
    late = member(a[0], "three")
    a[0].claim("small", late, replace=False, max_members=2)
    result = await eventually(lambda: a[1].claims.get(late.session_id))
    assert result.outcome is ClaimOutcome.FULL


async def test_a_replacing_claim_names_whom_it_replaced(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    old = member(a[0], "alice")
    await admitted(a, "r", old)
    new = member(b[0], "alice")
    result = await admitted(b, "r", new, replace=True)
    assert result.outcome is ClaimOutcome.ADMITTED
    assert result.replaced == old
    b[0].close_remote(old, CloseCode.REPLACED, "replaced", announce=False)
    assert await eventually(lambda: a[1].closes) == [(old.session_id, CloseCode.REPLACED, False)]


async def test_a_release_frees_the_user_id(make_redis_node: MakeNode) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    first = member(a[0], "bob")
    await admitted(a, "r", first)
    a[0].release("r", first)
    await admitted(b, "r", member(b[0], "keep-b-subscribed"))
    assert await eventually(lambda: b[0].remote_member("r", "bob") is None)
    again = await admitted(b, "r", member(b[0], "bob"))
    assert again.outcome is ClaimOutcome.ADMITTED


async def test_a_dead_nodes_members_are_announced_gone(make_redis_node: MakeNode) -> None:
    survivor = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    doomed = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    await admitted(survivor, "r", member(survivor[0], "stays"))
    gone = member(doomed[0], "goes")
    await admitted(doomed, "r", gone)
    assert await eventually(lambda: survivor[0].remote_member("r", "goes"))
    # Dies without a word: its tasks stop, its alive key is left to expire.
    for task in doomed[0]._tasks:
        task.cancel()
    loop = asyncio.get_running_loop()
    died_at = loop.time()
    changes = await eventually(lambda: survivor[1].changes, timeout=10)
    took = loop.time() - died_at
    assert changes == [("r", [], [gone])]
    assert survivor[0].remote_member("r", "goes") is None
    # Documented: within node_timeout + heartbeat (plus scheduling on a busy machine).
    assert took < 1.0 + 0.2 + 3.0
    doomed[0].connected = False  # its stop() must not touch Redis


async def test_a_node_rejoins_and_resyncs_after_redis_restarts(
    make_redis_node: MakeNode, own_redis: RedisServer
) -> None:
    a = await make_redis_node(own_redis.url)
    b = await make_redis_node(own_redis.url)
    alice = member(a[0], "alice")
    bob = member(b[0], "bob")
    await admitted(a, "r", alice)
    await admitted(b, "r", bob)
    a[1].members = {"r": [alice]}
    b[1].members = {"r": [bob]}
    await eventually(lambda: a[0].remote_member("r", "bob"))
    own_redis.stop()
    await eventually(lambda: not a[0].connected and not b[0].connected)
    assert await a[0].health() is False
    assert a[0].status().connected is False
    # Unreachable: publications are dropped and counted; joins are refused.
    dropped = a[0].status().dropped
    a[0].publish_to_room("r", b'{"type":"lost"}')
    assert a[0].status().dropped == dropped + 1
    assert a[1].room[-1] == ("r", b'{"type":"lost"}', None)  # local members still get it
    with pytest.raises(ConnectionError):
        await a[0].room_members("r")
    late = member(a[0], "late")
    a[0].claim("r", late, replace=False, max_members=100)
    assert (await eventually(lambda: a[1].claims.get(late.session_id))).outcome is (
        ClaimOutcome.UNAVAILABLE
    )
    own_redis.start()  # empty: no persistence
    await eventually(lambda: a[0].connected and b[0].connected, timeout=15)
    assert await a[0].health() is True
    # Each node put its members back: the other still sees them, with nobody told
    # of a change that did not happen.
    assert await eventually(lambda: a[0].remote_member("r", "bob") == bob)
    assert await eventually(lambda: b[0].remote_member("r", "alice") == alice)
    members = redis_command(own_redis.port, "HKEYS", "hubbub:members:r")
    assert b"alice" in members
    assert b"bob" in members
    a[0].publish_to_room("r", b'{"type":"back"}')
    assert await eventually(lambda: b[1].room) == [("r", b'{"type":"back"}', None)]
    assert await eventually(lambda: a[1].room[-1]) == ("r", b'{"type":"back"}', None)
    assert [c for c in a[1].changes + b[1].changes if c[1] or c[2]] == []


@pytest.mark.parametrize("gone_while_cut_off", [True])
async def test_a_member_who_left_during_an_outage_is_announced_gone(
    make_redis_node: MakeNode, own_redis: RedisServer, gone_while_cut_off: bool
) -> None:
    a = await make_redis_node(own_redis.url)
    b = await make_redis_node(own_redis.url)
    alice = member(a[0], "alice")
    bob = member(b[0], "bob")
    await admitted(a, "r", alice)
    await admitted(b, "r", bob)
    a[1].members = {"r": [alice]}
    b[1].members = {"r": [bob]}
    await eventually(lambda: a[0].remote_member("r", "bob"))
    own_redis.stop()
    await eventually(lambda: not a[0].connected and not b[0].connected)
    b[0].release("r", bob)  # bob leaves while nobody can hear it
    b[1].members = {}
    own_redis.start()
    await eventually(lambda: a[0].connected and b[0].connected, timeout=15)
    assert await eventually(lambda: a[1].changes, timeout=15) == [("r", [], [bob])]


@pytest.mark.parametrize(
    "connection",
    [b"SUBSCRIBE", b"REPLY"],  # what each begins with: subscriber, publisher (CLIENT REPLY ON)
)
async def test_a_connection_of_its_own_that_stops_answering_is_noticed_and_made_again(
    make_redis_node: MakeNode,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    connection: bytes,
) -> None:
    """The subscriber (or publisher) connection goes silent without closing: the node
    notices within a heartbeat of its ping, connects again, and hears the room again."""
    proxy = FreezingProxy(redis_server.port)
    await proxy.start()
    try:
        heartbeat = 0.2
        a = await make_redis_node(proxy.url, heartbeat=heartbeat, node_timeout=1.0)
        b = await make_redis_node()
        await admitted(a, "r", member(a[0], "x"))
        await admitted(b, "r", member(b[0], "y"))
        b[0].publish_to_room("r", b'{"type":"before"}')
        await eventually(lambda: ("r", b'{"type":"before"}', None) in a[1].room)
        connections = len(proxy.opened)
        assert proxy.freeze(connection) == 1
        loop = asyncio.get_running_loop()
        frozen_at = loop.time()
        await eventually(lambda: not a[0].connected, timeout=5)
        # The ping of one heartbeat, answered within the next (plus a busy machine).
        assert loop.time() - frozen_at < 2 * heartbeat + 1.0
        assert "does not answer" in caplog.text
        await eventually(lambda: a[0].connected, timeout=10)
        assert len(proxy.opened) > connections
        b[0].publish_to_room("r", b'{"type":"after"}')
        await eventually(lambda: ("r", b'{"type":"after"}', None) in a[1].room)
        a[0].publish_to_room("r", b'{"type":"back"}')
        await eventually(lambda: ("r", b'{"type":"back"}', None) in b[1].room)
    finally:
        await proxy.close()


async def test_a_call_hears_when_its_callee_is_left_on_no_live_node(
    make_redis_node: MakeNode,
) -> None:
    """The callee's connections close on one node and its other node dies: the call's
    node is told once no live node reaches the callee, not before."""
    caller_node = await make_redis_node()
    phone = await make_redis_node()
    laptop = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    caller_node[0].user_here("alice", True)
    phone[0].user_here("bob", True)
    laptop[0].user_here("bob", True)
    await asyncio.sleep(0.2)
    call_id = caller_node[0].new_session_id()
    caller_node[0].place_call(call_id, "alice", "bob", b'{"type":"call-incoming"}')
    assert await eventually(lambda: caller_node[1].placed.get(call_id)) is CallPlacement.PLACED
    phone[0].user_here("bob", False)
    await asyncio.sleep(0.5)
    assert caller_node[1].moves == []  # still connected on the laptop's node
    for task in laptop[0]._tasks:  # dies without a word
        task.cancel()
    moves = await eventually(lambda: caller_node[1].moves, timeout=10)
    assert moves == [(call_id, "callee-gone", "bob", "")]
    laptop[0].connected = False  # its stop() must not touch Redis


async def test_what_a_node_says_of_its_members_reaches_the_others_and_the_listing(
    make_redis_node: MakeNode,
) -> None:
    a, b = await make_redis_node(), await make_redis_node()
    alice, bob = member(a[0], "alice", name="Alice"), member(b[0], "bob")
    room = "listed-r"
    await admitted(a, room, alice)
    await admitted(b, room, bob)
    await admitted(b, "listed-other", member(b[0], "carol"))
    busy = dataclasses.replace(alice, status="busy", reconnecting=True)
    a[0].update(room, busy)
    assert await eventually(lambda: b[0].remote_member(room, "alice") == busy)
    # Every node's rooms, by name, with every member in join order.
    listed = await b[0].rooms(10, "listed-")
    assert [(name, [m.user_id for m in members]) for name, members in listed] == [
        ("listed-other", ["carol"]),
        ("listed-r", ["alice", "bob"]),
    ]
    assert listed[1][1][0] == busy
    assert [name for name, _ in await a[0].rooms(1, "listed-other")] == ["listed-r"]
    # Leaving after chatting: the other node keeps when it was last seen.
    a[0].release(room, alice, 1234)
    assert await eventually(lambda: b[1].last_seen) == [(room, "alice", 1234)]
    b[0].release("listed-other", member(b[0], "carol"))  # not her session: she stays
    await asyncio.sleep(0.2)
    assert [name for name, _ in await a[0].rooms(10, "listed-")] == ["listed-other", "listed-r"]
    b[0].release(room, bob)  # the last one: the room is listed no more

    async def names() -> list[str]:
        return [name for name, _ in await a[0].rooms(10, "listed-")]

    async with asyncio.timeout(5):
        while await names() != ["listed-other"]:  # noqa: ASYNC110 - Redis, polled
            await asyncio.sleep(0.05)


def state_of(session_id: str, user_id: str, room: str) -> SessionState:
    return SessionState(
        session_id=session_id,
        room=room,
        user_id=user_id,
        resume_token="t0k",
        identity_user_id=None,
        room_names=[],
        room_prefixes=[""],
        grants=[],
        last_n=3,
        replay=[b"1", b"2", b"3"],
    )


async def test_a_session_is_handed_over_at_one_point_of_its_rooms_order(
    make_redis_node: MakeNode, redis_server: RedisServer
) -> None:
    """What the room gets before the taking node's mark is the old node's to deliver,
    what it gets after it the new node's: every message once, on one side of it."""
    a, b, c = [await make_redis_node() for _ in range(3)]
    alice = member(a[0], "alice")
    room = "handed"
    await admitted(a, room, alice)
    await admitted(c, room, member(c[0], "carol"))
    a[1].sessions[(alice.session_id, "t0k")] = (room, "alice")
    a[1].states[alice.session_id] = state_of(alice.session_id, "alice", room)
    # The wrong token: not found.
    stub = b[0].new_session_id()
    assert b[0].find_session(alice.session_id, "not-it", stub)
    found = await eventually(lambda: b[1].found.get(stub))
    assert found.located is Located.UNKNOWN
    # The right one: offered, with its room and user.
    assert b[0].find_session(alice.session_id, "t0k", stub)
    found = await eventually(lambda: b[1].found.get(stub) != found and b[1].found.get(stub))
    assert found == SessionFound(Located.THERE, alice.session_id, room, "alice")

    sent = 0
    storming = True

    async def storm() -> None:
        nonlocal sent
        while storming:
            c[0].publish_to_room(room, b"%d" % sent)
            sent += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(storm())
    await asyncio.sleep(0.1)
    b[0].take_session(room, alice.session_id, stub)
    handed = await eventually(lambda: b[1].handed.get(stub))
    assert handed == a[1].states[alice.session_id]
    await asyncio.sleep(0.1)
    storming = False
    await task
    await eventually(lambda: (b"%d" % (sent - 1),) in b[1].log)
    before = a[1].log[: a[1].log.index(("cut", alice.session_id))]
    after = b[1].log[b[1].log.index(("taking", alice.session_id)) + 1 :]
    assert before
    assert after
    assert [e[0] for e in before + after] == [b"%d" % i for i in range(sent)]
    # The place is the new session's, in the same place of the join order; the other
    # nodes see it there, and its old id leads to the new one.
    members = await c[0].room_members(room)
    assert (members[0].user_id, members[0].session_id) == ("alice", stub)
    assert await eventually(lambda: c[0].remote_member(room, "alice")) == Member("alice", stub)
    assert [m.user_id for m in b[0].remote_members(room)] == ["carol"]  # alice is its own now
    # Asked for by its old id, it is found where it is now.
    again = c[0].new_session_id()
    assert c[0].find_session(alice.session_id, "t0k", again)
    assert a[1].sessions.pop((alice.session_id, "t0k"))
    b[1].sessions[(stub, "t0k")] = (room, "alice")
    assert await eventually(lambda: c[1].found.get(again)) == SessionFound(
        Located.THERE, stub, room, "alice"
    )
    assert redis_command(redis_server.port, "GET", f"hubbub:moved:{alice.session_id}") == (
        f"${len(stub)}\r\n{stub}\r\n".encode()
    )


async def test_a_session_whose_node_died_is_said_gone_and_its_place_freed(
    make_redis_node: MakeNode,
) -> None:
    survivor = await make_redis_node()
    doomed = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    alice = member(doomed[0], "alice")
    await admitted(doomed, "r", alice)
    for task in doomed[0]._tasks:  # dies without a word
        task.cancel()
    doomed[0].connected = False
    await asyncio.sleep(1.3)  # its alive key expires
    stub = survivor[0].new_session_id()
    assert survivor[0].find_session(alice.session_id, "t0k", stub)
    found = await eventually(lambda: survivor[1].found.get(stub))
    assert found.located is Located.NODE_GONE
    # Reaped at once: the name is free.
    assert (await admitted(survivor, "r", member(survivor[0], "alice"))).outcome is (
        ClaimOutcome.ADMITTED
    )


async def test_a_stopping_node_gives_its_sessions_to_the_live_others_in_turn(
    make_redis_node: MakeNode,
) -> None:
    a, b, c = [await make_redis_node() for _ in range(3)]
    await eventually(lambda: len(a[0]._node.peers) == 2)
    for i in range(4):
        assert a[0].give_session(f"{a[0].node_id}.s{i}", "t", "r", f"u{i}")
    await eventually(lambda: len(b[1].adopted) + len(c[1].adopted) == 4)
    assert len(b[1].adopted) == len(c[1].adopted) == 2


async def test_a_member_is_reachable_for_calls_once_its_claim_is_answered(
    make_redis_node: MakeNode,
) -> None:
    """Its node tells Redis it reaches the user in the claim itself: a call placed
    from any node after the join was admitted finds the user (the node's word that
    its user is here, sent once the join is admitted, may come later)."""
    caller_node, callee_node = await make_redis_node(), await make_redis_node()
    await admitted(callee_node, "reach-r", member(callee_node[0], "bob"))
    call_id = caller_node[0].new_session_id()
    caller_node[0].place_call(call_id, "alice", "bob", b'{"type":"call-incoming"}')
    assert await eventually(lambda: caller_node[1].placed.get(call_id)) is CallPlacement.PLACED


# -- calls through the media server ----------------------------------------------

CALL_RULE = ModeRule(MediaSetting.AUTO, mesh_max=4, sfu_available=True)


def media_now(node: Node, room: str) -> SharedMedia | None:
    told = node[1].media.get(room)
    return told[-1] if told else None


async def test_a_rooms_mode_is_decided_once_from_every_nodes_senders(
    make_redis_node: MakeNode,
) -> None:
    first = await make_redis_node()
    second = await make_redis_node()
    await admitted(first, "call", member(first[0], "a"))
    await admitted(second, "call", member(second[0], "b"))
    first[0].count_senders("call", 3, CALL_RULE, "auto")
    second[0].count_senders("call", 2, CALL_RULE, "auto")  # 5 in all: past 4
    for node in (first, second):
        assert await eventually(lambda n=node: (m := media_now(n, "call")) and m.mode is Mode.SFU)
    # Each node alone is at or under the gap's lower end, in all they are not: one
    # decision for the room, so neither goes back.
    first[0].count_senders("call", 1, CALL_RULE, "auto")
    await asyncio.sleep(0.3)
    assert media_now(first, "call") == media_now(second, "call")
    assert media_now(first, "call").mode is Mode.SFU  # type: ignore[union-attr]
    second[0].count_senders("call", 1, CALL_RULE, "auto")  # 2 in all
    for node in (first, second):
        assert await eventually(lambda n=node: media_now(n, "call").mode is Mode.MESH)


async def test_a_nodes_count_goes_with_its_last_members_to_the_node_they_moved_to(
    make_redis_node: MakeNode, redis_url: str
) -> None:
    """A room whose members were all on one node, in SFU mode with 5 senders; they
    move to another node (a rolling restart). Nothing of it decides the mode, nor is
    the room's call forgotten when the first node is done with it: the second counts
    them anew (3 of them still send: above the gap, SFU stays)."""
    first = await make_redis_node()
    second = await make_redis_node()
    await admitted(first, "moving", member(first[0], "a"))
    first[0].count_senders("moving", 5, CALL_RULE, "auto")
    assert await eventually(lambda: (m := media_now(first, "moving")) and m.mode is Mode.SFU)
    taker = member(second[0], "a")
    second[0].take_session("moving", "whatever", taker.session_id)
    await eventually(lambda: second[1].takes)
    told = len(first[1].media["moving"])
    first[0].media_done("moving", handed_to=taker.session_id)
    second[0].count_senders("moving", 5, None, "auto")  # its members are here now
    await asyncio.sleep(0.3)
    assert len(first[1].media["moving"]) == told  # no decision, nothing published
    second[0].count_senders("moving", 3, CALL_RULE, "auto")  # two stopped sending
    await asyncio.sleep(0.3)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.hget(keys.media("moving"), "mode") == b"sfu"
        assert await client.hget(keys.media("moving"), f"s:{second[0].node_id}") == b"3"
        assert await client.hget(keys.media("moving"), f"s:{first[0].node_id}") is None
    finally:
        await client.aclose()
    second[0].count_senders("moving", 2, CALL_RULE, "auto")
    assert await eventually(lambda: (m := media_now(second, "moving")) and m.mode is Mode.MESH)


async def test_a_node_new_to_a_room_gets_its_calls_with_the_claim(
    make_redis_node: MakeNode,
) -> None:
    first = await make_redis_node()
    second = await make_redis_node()
    await admitted(first, "call", member(first[0], "a"))
    first[0].count_senders("call", 0, CALL_RULE, "setting")
    feed = MediaFeed(user_id="a", audio=True, video=False)
    first[0].share_feed("call", "a", feed)
    first[0].set_media_setting("call", MediaSetting.SFU, CALL_RULE)
    assert await eventually(lambda: (m := media_now(first, "call")) and m.mode is Mode.SFU)
    result = await admitted(second, "call", member(second[0], "b"))
    assert result.media is not None
    assert (result.media.mode, result.media.feeds) == (Mode.SFU, [feed])
    assert result.media.version == media_now(first, "call").version  # type: ignore[union-attr]


async def test_a_dead_nodes_feeds_and_senders_leave_the_rooms_calls(
    make_redis_node: MakeNode,
) -> None:
    survivor = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    doomed = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    await admitted(survivor, "dying", member(survivor[0], "stays"))
    await admitted(doomed, "dying", member(doomed[0], "goes"))
    survivor[0].count_senders("dying", 1, CALL_RULE, "auto")
    doomed[0].count_senders("dying", 4, CALL_RULE, "auto")
    doomed[0].share_feed("dying", "goes", MediaFeed(user_id="goes", audio=True, video=True))
    assert await eventually(
        lambda: (m := media_now(survivor, "dying")) and m.mode is Mode.SFU and m.feeds
    )
    for task in doomed[0]._tasks:
        task.cancel()
    await eventually(lambda: survivor[1].changes, timeout=10)
    # What the hub does on hearing members gone: count again.
    survivor[0].count_senders("dying", 1, CALL_RULE, "auto")
    after = await eventually(
        lambda: (m := media_now(survivor, "dying")) and m.mode is Mode.MESH and m
    )
    assert after.feeds == []
    doomed[0].connected = False


async def test_a_placement_whose_last_node_died_is_an_orphan_taken_once(
    make_redis_node: MakeNode,
) -> None:
    survivor = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    doomed = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    mine, theirs = survivor[0].placements(), doomed[0].placements()
    await admitted(survivor, "shared", member(survivor[0], "stays"))
    for room in ("alone", "shared"):
        await admitted(doomed, room, member(doomed[0], f"goes-{room}"))
    alone = await theirs.place("alone", new_placement("alone", "janus-1"), {"janus-1"})
    shared = await theirs.place("shared", new_placement("shared", "janus-1"), {"janus-1"})
    assert await mine.place("shared", new_placement("shared", "janus-2"), {"janus-1"}) == shared
    assert ("alone", alone) not in await mine.orphans()  # its node lives
    for task in doomed[0]._tasks:
        task.cancel()
    await eventually(lambda: survivor[1].changes, timeout=10)
    # The room the dead node alone used is an orphan; the one still used is not.
    orphans = await mine.orphans()
    assert ("alone", alone) in orphans
    assert all(room != "shared" for room, _ in orphans)
    assert await mine.take_orphan("alone", alone) is True
    assert await mine.take_orphan("alone", alone) is False  # taken: by one node only
    assert ("alone", alone) not in await mine.orphans()
    # Released by the last live node, the shared room is its to remove, as always.
    assert await mine.release("shared", shared) is True
    doomed[0].connected = False


async def test_an_orphan_placed_again_is_used_not_removed(make_redis_node: MakeNode) -> None:
    survivor = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    doomed = await make_redis_node(heartbeat=0.2, node_timeout=1.0)
    await admitted(doomed, "again", member(doomed[0], "goes"))
    placed = (
        await doomed[0].placements().place("again", new_placement("again", "janus-1"), {"janus-1"})
    )
    for task in doomed[0]._tasks:
        task.cancel()
    mine = survivor[0].placements()
    async with asyncio.timeout(10):  # the survivor reaps the dead node
        while ("again", placed) not in await mine.orphans():  # noqa: ASYNC110 - no event
            await asyncio.sleep(0.1)
    # A member joins the room on the survivor before anyone removes it: it is used.
    assert await mine.place("again", new_placement("again", "janus-2"), {"janus-1"}) == placed
    assert await mine.take_orphan("again", placed) is False
    assert ("again", placed) not in await mine.orphans()
    assert await mine.release("again", placed) is True
    doomed[0].connected = False


@pytest.mark.parametrize("setting", list(MediaSetting))
async def test_the_scripts_mode_table_is_next_modes(
    make_redis_node: MakeNode, setting: MediaSetting
) -> None:
    """media.lua decides the mode as hubbub.media.modes.next_mode does, for every
    case (the two must not drift apart)."""
    broker, _ = await make_redis_node()
    client = broker._client
    for now, senders, mesh_max, available in itertools.product(
        list(Mode), range(7), (1, 2, 4), (True, False)
    ):
        room = f"table-{setting}-{now}-{senders}-{mesh_max}-{available}"
        await client.hset(keys.media(room), mapping={"mode": now.value, "s:other": senders})
        rule = ModeRule(setting, mesh_max, sfu_available=available)
        command = scripts.media(
            media_key=keys.media(room),
            settings_key=keys.MEDIA_SETTINGS,
            version_key=keys.MEDIA_VERSION,
            op="senders",
            node=broker.node_id,
            value=0,
            user_id="",
            default=rule.default.value,
            mesh_max=mesh_max,
            sfu_available=available,
            back_at=BACK_TO_MESH_AT,
            room=room,
            room_channel=keys.room_channel(room),
            reason="auto",
        )
        await scripts.run(client, command)
        decided = (await client.hget(keys.media(room), "mode")).decode()
        expected = next_mode(setting, now, senders, mesh_max, sfu_available=available)
        assert decided == expected.value, (now, senders, mesh_max, available)
        await client.delete(keys.media(room))

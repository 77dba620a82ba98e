"""Calls between users on different nodes: a call rings its callee wherever it is
connected, is answered, declined, cancelled and hung up from any node, and busy,
user-unavailable and answered-elsewhere hold cluster-wide."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import expect_type
from tests.wsclient import Client


async def test_a_call_rings_on_other_nodes_and_is_answered_there(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path) as (n1, n2):
        alice = await Client.connect(n1.url)
        bob_phone = await Client.connect(n2.url)
        bob_laptop = await Client.connect(n1.url)
        carol = await Client.connect(n2.url)
        dave = await Client.connect(n2.url)
        clients = [alice, bob_phone, bob_laptop, carol, dave]
        try:
            await alice.join("a", "alice")
            await bob_phone.join("b", "bob")
            await bob_laptop.join("b-too", "bob")
            await carol.join("c", "carol")
            await dave.join("d", "dave")

            await alice.send({"type": "call-request", "targetUserId": "bob", "ref": "c"})
            ringing = await alice.expect("call-ringing")
            call_id = ringing["callId"]
            assert ringing == {
                "type": "call-ringing",
                "callId": call_id,
                "targetUserId": "bob",
                "ref": "c",
            }
            incoming = {"type": "call-incoming", "callId": call_id, "fromUserId": "alice"}
            assert await bob_phone.expect("call-incoming") == incoming  # on the other node
            assert await bob_laptop.expect("call-incoming") == incoming  # on the caller's

            # busy and already-in-call, whichever node asks
            await carol.send({"type": "call-request", "targetUserId": "bob", "ref": 1})
            assert (await carol.expect_error("busy"))["ref"] == 1
            await carol.send({"type": "call-request", "targetUserId": "alice"})
            await carol.expect_error("busy")
            await bob_phone.send({"type": "call-request", "targetUserId": "carol"})
            await bob_phone.expect_error("already-in-call")
            await dave.send({"type": "call-request", "targetUserId": "nobody"})
            await dave.expect_error("user-unavailable")

            # Answered on the other node: the caller hears it, the callee's other
            # connection (on the caller's node) is told it was answered elsewhere.
            await bob_phone.send({"type": "call-accept", "callId": call_id, "ref": 2})
            accepted = await bob_phone.expect("call-accepted")
            room = accepted["room"]
            assert accepted == {
                "type": "call-accepted",
                "callId": call_id,
                "room": room,
                "peerUserId": "alice",
                "ref": 2,
            }
            assert (await alice.expect("call-accepted"))["peerUserId"] == "bob"
            assert await bob_laptop.expect("call-answered-elsewhere") == {
                "type": "call-answered-elsewhere",
                "callId": call_id,
            }
            # A refused move made through the other node comes back there.
            await bob_laptop.send({"type": "call-accept", "callId": call_id})
            await bob_laptop.expect_error("call-not-ringing")
            await carol.send({"type": "call-end", "callId": call_id, "ref": "x"})
            assert (await carol.expect_error("no-such-call"))["ref"] == "x"

            # In the call's room, across the nodes.
            await alice.join(room, "alice")
            await bob_phone.join(room, "bob")
            await expect_type(alice, "user-joined")
            await bob_phone.send({"type": "call-end", "callId": call_id, "ref": "bye"})
            assert await bob_phone.expect("call-ended") == {
                "type": "call-ended",
                "callId": call_id,
                "reason": "hung-up",
                "byUserId": "bob",
                "ref": "bye",
            }
            ended = await expect_type(alice, "call-ended")
            assert (ended["reason"], ended["byUserId"]) == ("hung-up", "bob")

            # Both free again: declined from the other node...
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await expect_type(alice, "call-ringing"))["callId"]
            await expect_type(bob_phone, "call-incoming")
            await expect_type(bob_laptop, "call-incoming")
            await bob_phone.send({"type": "call-decline", "callId": call_id, "ref": 3})
            assert await expect_type(bob_phone, "call-declined") == {
                "type": "call-declined",
                "callId": call_id,
                "ref": 3,
            }
            declined = {"type": "call-declined", "callId": call_id}
            assert await expect_type(alice, "call-declined") == declined
            assert await expect_type(bob_laptop, "call-declined") == declined

            # ...cancelled by the caller while it rings on the other node...
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await expect_type(alice, "call-ringing"))["callId"]
            await expect_type(bob_phone, "call-incoming")
            await expect_type(bob_laptop, "call-incoming")
            await alice.send({"type": "call-cancel", "callId": call_id})
            cancelled = {"type": "call-cancelled", "callId": call_id}
            assert await expect_type(bob_phone, "call-cancelled") == cancelled
            assert await expect_type(bob_laptop, "call-cancelled") == cancelled
            await expect_type(alice, "call-cancelled")

            # ...and over when the connection that answered on the other node closes.
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await expect_type(alice, "call-ringing"))["callId"]
            await expect_type(bob_laptop, "call-incoming")
            await expect_type(bob_phone, "call-incoming")
            await bob_phone.send({"type": "call-accept", "callId": call_id})
            await expect_type(bob_phone, "call-accepted")
            await expect_type(alice, "call-accepted")
            await bob_phone.close()
            ended = await expect_type(alice, "call-ended")
            assert (ended["callId"], ended["reason"]) == (call_id, "disconnected")
            # bob is free again (his laptop is still connected, on the caller's node).
            await carol.send({"type": "call-request", "targetUserId": "bob"})
            await expect_type(carol, "call-ringing")
            assert (await expect_type(bob_laptop, "call-incoming"))["fromUserId"] == "carol"
        finally:
            for client in clients:
                await client.close()


async def test_a_call_whose_callee_leaves_its_room_on_the_other_node_ends(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(2, redis_url, tmp_path) as (n1, n2),
        await Client.connect(n1.url) as alice,
        await Client.connect(n2.url) as bob,
    ):
        await alice.join("a", "alice")
        await bob.join("b", "bob")
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await bob.send({"type": "call-accept", "callId": call_id})
        room = (await bob.expect("call-accepted"))["room"]
        await alice.expect("call-accepted")
        await alice.join(room, "alice")
        await bob.join(room, "bob")
        await expect_type(alice, "user-joined")
        await bob.send({"type": "leave-room"})
        ended = await expect_type(alice, "call-ended")
        assert (ended["callId"], ended["reason"]) == (call_id, "left")


async def test_a_ringing_call_is_missed_once_the_callees_last_connection_anywhere_closes(
    redis_url: str, tmp_path: Path
) -> None:
    """Not at the ring timeout: as soon as the callee has no connection left to ring,
    wherever its connections were."""
    ring_timeout = 60.0
    async with cluster(3, redis_url, tmp_path, "--call-ring-timeout", str(ring_timeout)) as (
        n1,
        n2,
        n3,
    ):
        alice = await Client.connect(n1.url)
        bob_phone = await Client.connect(n2.url)
        bob_laptop = await Client.connect(n3.url)
        bob_here = await Client.connect(n1.url)
        try:
            await alice.join("a", "alice")
            await bob_phone.join("b", "bob")
            await bob_laptop.join("b-too", "bob")
            await bob_here.join("b-here", "bob")
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await alice.expect("call-ringing"))["callId"]
            for bob in (bob_phone, bob_laptop, bob_here):
                await expect_type(bob, "call-incoming")
            # One by one; the call rings on while bob is connected somewhere.
            await bob_here.close()  # on the caller's node
            await bob_phone.close()
            await alice.nothing(within=1.0)
            loop = asyncio.get_running_loop()
            closed_at = loop.time()
            await bob_laptop.close()
            missed = await expect_type(alice, "call-missed", timeout=10)
            assert missed == {"type": "call-missed", "callId": call_id}
            assert loop.time() - closed_at < 10 < ring_timeout
            # Both free: bob, back on another node, can be called again at once.
            async with await Client.connect(n2.url) as back:
                await back.join("b", "bob")
                await alice.send({"type": "call-request", "targetUserId": "bob"})
                await expect_type(alice, "call-ringing")
                await expect_type(back, "call-incoming")
        finally:
            for client in (alice, bob_phone, bob_laptop, bob_here):
                await client.close()

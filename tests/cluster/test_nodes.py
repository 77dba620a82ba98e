"""Three ``hubbub serve`` nodes on one Redis, clients spread over them: what a client
sees must not depend on which node it reached."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster.nodes import GONE_WITHIN, cluster
from tests.tokens import token
from tests.wsclient import Client

SLACK = 5.0
"""Scheduling on a busy 2-core machine, on top of the documented bound."""


async def expect_type(client: Client, kind: str, timeout: float = 10.0) -> dict:
    """The next message of type ``kind``, skipping ``chat-ack`` and the like."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.recv(timeout)
            if message["type"] == kind:
                return message


async def test_every_message_crosses_nodes(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(3, redis_url, tmp_path, database_url=postgres_url) as (n1, n2, n3):
        alice = await Client.connect(n1.url)
        bob = await Client.connect(n2.url)
        carol = await Client.connect(n3.url)
        try:
            joined = await alice.join("team", "alice")
            assert joined["participants"] == []
            assert joined["sessionId"] != ""
            joined = await bob.join("team", "bob")
            assert [p["userId"] for p in joined["participants"]] == ["alice"]
            assert all(p["polite"] for p in joined["participants"])
            seen = await alice.expect("user-joined")
            assert (seen["userId"], seen["polite"]) == ("bob", False)
            joined = await carol.join("team", "carol")
            assert [p["userId"] for p in joined["participants"]] == ["alice", "bob"]
            assert (await alice.expect("user-joined"))["userId"] == "carol"
            assert (await bob.expect("user-joined"))["userId"] == "carol"

            # One identity, one place, cluster-wide.
            async with await Client.connect(n3.url) as impostor:
                await impostor.send({"type": "join-room", "room": "team", "userId": "alice"})
                await impostor.expect_error("user-id-taken")

            # signal, both ways, between every pair of nodes
            for sender, target, name in (
                (alice, "carol", "alice"),
                (carol, "bob", "carol"),
                (bob, "alice", "bob"),
            ):
                offer = {"type": "offer", "sdp": f"v=0 from {name}"}
                await sender.send({"type": "signal", "targetUserId": target, "signal": offer})
            relayed = await carol.expect("signal")
            assert relayed == {
                "type": "signal",
                "fromUserId": "alice",
                "signal": {"type": "offer", "sdp": "v=0 from alice"},
            }
            assert (await bob.expect("signal"))["fromUserId"] == "carol"
            assert (await alice.expect("signal"))["fromUserId"] == "bob"
            await alice.send({"type": "signal", "targetUserId": "nobody", "signal": {}})
            await alice.expect_error("no-such-peer")

            # chat: stored once (PostgreSQL), numbered, acknowledged, relayed everywhere
            await bob.send({"type": "chat", "message": "hello", "clientId": "c1"})
            ack = await bob.expect("chat-ack")
            for reader in (alice, carol):
                chat = await reader.expect("chat")
                assert (chat["message"], chat["userId"], chat["seq"]) == (
                    "hello",
                    "bob",
                    ack["seq"],
                )
            # the same clientId through another node is still the same message
            await bob.send({"type": "chat", "message": "hello", "clientId": "c1"})
            again = await bob.expect("chat-ack")
            assert again["duplicate"] is True
            assert again["seq"] == ack["seq"]

            # history, read on a node that did not store the message
            await carol.send({"type": "history", "ref": 1})
            page = await carol.expect("history")
            assert [m["message"] for m in page["messages"]] == ["hello"]

            # a late joiner on a third node gets the history in room-joined
            async with await Client.connect(n1.url) as dave:
                joined = await dave.join("team", "dave")
                assert [m["message"] for m in joined["history"]] == ["hello"]
                assert joined["lastSeq"] == ack["seq"]
                for member in (alice, bob, carol):
                    assert (await member.expect("user-joined"))["userId"] == "dave"
            for member in (alice, bob, carol):
                assert (await expect_type(member, "user-left"))["userId"] == "dave"

            # ping stays local; leave-room and a closed connection are both heard
            await carol.send({"type": "ping", "ref": "p"})
            assert (await carol.expect("pong"))["ref"] == "p"
            await carol.send({"type": "leave-room"})
            await carol.expect("room-left")
            assert (await alice.expect("user-left"))["userId"] == "carol"
            assert (await bob.expect("user-left"))["userId"] == "carol"
            await bob.close()
            assert (await alice.expect("user-left"))["userId"] == "bob"
            # the place is free again, through any node
            assert (await carol.join("team", "bob"))["userId"] == "bob"
        finally:
            for client in (alice, bob, carol):
                await client.close()


async def test_sequence_numbers_stay_gapless_with_every_node_writing(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with cluster(3, redis_url, tmp_path, database_url=postgres_url) as nodes:
        clients = [await Client.connect(node.url) for node in nodes]
        try:
            for index, client in enumerate(clients):
                await client.join("storm", f"writer{index}")
            per_writer = 40
            for client in clients:
                for i in range(per_writer):
                    await client.send({"type": "chat", "message": str(i), "clientId": f"m{i}"})
            seqs = []
            for client in clients:
                for _ in range(per_writer):
                    seqs.append((await expect_type(client, "chat-ack"))["seq"])
            assert sorted(seqs) == list(range(1, 3 * per_writer + 1))
        finally:
            for client in clients:
                await client.close()


async def test_a_token_holder_replaces_its_session_on_another_node(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(3, redis_url, tmp_path, tokens=True) as (n1, n2, n3):
        watcher = await Client.connect(n3.url)
        old = await Client.connect(n1.url)
        new = await Client.connect(n2.url)
        try:
            await watcher.join("room", token=token("watcher"))
            await old.join("room", token=token("alice"))
            assert (await watcher.expect("user-joined"))["userId"] == "alice"
            joined = await new.join("room", token=token("alice"))
            assert [p["userId"] for p in joined["participants"]] == ["watcher"]
            assert await old.closed_with() == 4009
            # the room hears the old one go before the new one comes
            assert (await watcher.expect("user-left"))["userId"] == "alice"
            assert (await watcher.expect("user-joined"))["userId"] == "alice"
            await watcher.nothing(0.5)
            await watcher.send({"type": "signal", "targetUserId": "alice", "signal": {"x": 1}})
            assert (await new.expect("signal"))["fromUserId"] == "watcher"
        finally:
            for client in (watcher, old, new):
                await client.close()


async def test_a_killed_node_is_announced_gone(redis_url: str, tmp_path: Path) -> None:
    async with cluster(3, redis_url, tmp_path) as (n1, n2, n3):
        stays = [await Client.connect(n1.url), await Client.connect(n2.url)]
        doomed = await Client.connect(n3.url)
        try:
            await stays[0].join("r", "one")
            await stays[1].join("r", "two")
            await doomed.join("r", "three")
            for client in stays:
                while (await expect_type(client, "user-joined"))["userId"] != "three":
                    pass
            loop = asyncio.get_running_loop()
            n3.kill()
            killed_at = loop.time()
            for client in stays:
                left = await expect_type(client, "user-left", timeout=GONE_WITHIN + SLACK + 5)
                assert left["userId"] == "three"
            took = loop.time() - killed_at
            assert took < GONE_WITHIN + SLACK, took
            # and its user id is free again
            async with await Client.connect(n1.url) as again:
                assert (await again.join("r", "three"))["userId"] == "three"
        finally:
            for client in [*stays, doomed]:
                await client.close()


async def test_readyz_and_server_status_show_the_cluster(redis_url: str, tmp_path: Path) -> None:
    key = "cluster-test-api-key-0123456789"
    async with (
        cluster(1, redis_url, tmp_path, "--api-key", key) as (node,),
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        async with http.get(node.url + "/readyz") as response:
            assert response.status == 200
            body = await response.json()
            assert body["checks"]["broker"] is True
        async with await Client.connect(node.url) as client:
            await client.join("room", "ann")  # a claim: sent through Redis
        async with http.get(node.url + "/api/server") as response:
            status = json.loads(await response.text())
        assert status["cluster"]["connected"] is True
        assert len(status["cluster"]["node"]) == 8
        assert set(status["cluster"]) == {
            "node",
            "connected",
            "sent",
            "dropped",
            "pending",
            "lagSeconds",
        }
        assert status["cluster"]["sent"] > 0
        assert status["cluster"]["dropped"] == 0
        async with http.get(node.url + "/metrics") as response:
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        assert families["hubbub_cluster_connected"].samples[0].value == 1
        assert families["hubbub_broker_sent"].type == "counter"
        assert families["hubbub_broker_sent"].samples[0].value > 0
        assert families["hubbub_broker_dropped"].samples[0].value == 0
        assert families["hubbub_broker_pending"].type == "gauge"

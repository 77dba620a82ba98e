"""What a room looks like is the same from every node: the HTTP API's room listings
and room details (members, their status and connection, offline members and when
they were last seen) and a joiner's room-joined, whichever node is asked."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp

from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import expect_type
from tests.cluster.test_resume import proxy_to
from tests.faults.resuming import wait_for
from tests.wsclient import Client

KEY = "cluster-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url, headers=AUTH) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


async def test_rooms_members_status_and_last_seen_read_the_same_from_every_node(
    redis_url: str, postgres_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(
            3,
            redis_url,
            tmp_path,
            "--api-key",
            KEY,
            "--resume-grace",
            "60",
            database_url=postgres_url,
        ) as nodes,
        aiohttp.ClientSession() as http,
    ):
        n1, n2, n3 = nodes
        proxy = proxy_to(n3.url)
        erin_url = await proxy.start()
        alice = await Client.connect(n1.url)
        bob = await Client.connect(n2.url)
        carol = await Client.connect(n3.url)
        dave = await Client.connect(n2.url)
        erin = await Client.connect(erin_url)
        clients = [alice, bob, carol, dave, erin]
        try:
            await alice.join("team", "alice")
            await bob.join("team", "bob")
            await carol.join("team", "carol")
            await erin.join("team", "erin")
            await dave.join("other", "dave")
            while (await expect_type(alice, "user-joined"))["userId"] != "erin":
                pass

            # A status, a member who chatted and left, a connection lost: each made on
            # one node, each seen alike from all.
            await alice.send({"type": "presence", "status": "away"})
            await bob.send({"type": "chat", "message": "bye", "clientId": "b1"})
            await expect_type(bob, "chat-ack")
            await bob.send({"type": "leave-room"})
            await expect_type(bob, "room-left")
            assert proxy.cut_one(random.Random(3))
            for name in ("presence", "chat", "user-left", "presence", "participant-updated"):
                await expect_type(carol, name)

            expected_members = [
                {"userId": "alice", "status": "away"},
                {"userId": "carol", "status": "online"},
                {"userId": "erin", "status": "online"},
            ]

            async def details(node_url: str) -> dict[str, Any]:
                return await get(http, f"{node_url}/api/rooms/team")

            async def settled() -> bool:
                shown = [await details(node.url) for node in nodes]
                return all(
                    [{k: m[k] for k in ("userId", "status")} for m in room["members"]]
                    == expected_members
                    and [o["userId"] for o in room["offline"]] == ["bob"]
                    for room in shown
                )

            async with asyncio.timeout(10):
                while not await settled():  # noqa: ASYNC110 - the nodes' store writes
                    await asyncio.sleep(0.1)
            shown = [await details(node.url) for node in nodes]
            assert shown[0] == shown[1] == shown[2]
            assert shown[0]["lastSeq"] == 1
            assert shown[0]["offline"][0]["lastSeen"] > 0

            listings = [await get(http, f"{node.url}/api/rooms") for node in nodes]
            assert listings[0] == listings[1] == listings[2]
            assert [room["name"] for room in listings[0]["rooms"]] == ["other", "team"]
            team = listings[0]["rooms"][1]
            assert [p["userId"] for p in team["participants"]] == ["alice", "carol", "erin"]
            assert team["lastSeq"] == 1
            paged = await get(http, f"{n3.url}/api/rooms?limit=1")
            assert ([r["name"] for r in paged["rooms"]], paged["next"]) == (["other"], "other")
            paged = await get(http, f"{n3.url}/api/rooms?limit=1&after=other")
            assert ([r["name"] for r in paged["rooms"]], paged["next"]) == (["team"], None)

            # A joiner through each node sees the room alike: who is there, with what
            # status and connection, who chatted and left, and when.
            joined = []
            for index, node in enumerate(nodes):
                async with await Client.connect(node.url) as probe:
                    joined.append(await probe.join("team", f"probe{index}"))
                await wait_for(lambda: True, 0.1)
            views = [
                (
                    [
                        (p["userId"], p["status"], p.get("connection"))
                        for p in room_joined["participants"]
                        if not p["userId"].startswith("probe")
                    ],
                    [(o["userId"], o["lastSeen"]) for o in room_joined["offline"]],
                    room_joined["lastSeq"],
                )
                for room_joined in joined
            ]
            assert views[0] == views[1] == views[2], views
            assert views[0][0] == [
                ("alice", "away", None),
                ("carol", "online", None),
                ("erin", "online", "reconnecting"),
            ]
            assert [user for user, _ in views[0][1]][:1] == ["bob"]
            assert views[0][1][0][1] == shown[0]["offline"][0]["lastSeen"]
        finally:
            for client in clients:
                await client.close()
            await proxy.close()

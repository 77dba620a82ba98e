"""An admin's removal and a room's end reach members on every node: asked through
the HTTP API of any node (one with no member in the room included), or in the
room by a member with the admin grant."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.cluster.nodes import cluster
from tests.cluster.test_nodes import expect_type
from tests.tokens import token
from tests.wsclient import Client

KEY = "cluster-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ADMIN = ["join", "chat", "signal", "admin"]


async def delete(http: aiohttp.ClientSession, url: str, status: int) -> dict:
    async with http.delete(url, headers=AUTH) as response:
        body = await response.json()
        assert response.status == status, body
        return body


async def test_the_http_api_of_any_node_removes_and_ends_across_nodes(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        cluster(3, redis_url, tmp_path, "--api-key", KEY) as (n1, n2, n3),
        aiohttp.ClientSession() as http,
    ):
        alice = await Client.connect(n1.url)
        bob = await Client.connect(n2.url)
        carol = await Client.connect(n2.url)
        dave = await Client.connect(n2.url)
        clients = [alice, bob, carol, dave]
        try:
            await alice.join("team", "alice")
            await bob.join("team", "bob")
            await carol.join("team", "carol")
            await dave.join("other", "dave")
            for _ in range(2):
                await expect_type(alice, "user-joined")
            await expect_type(bob, "user-joined")

            # Node 3 has nobody in "team": the cluster knows where bob is.
            removed = await delete(http, f"{n3.url}/api/rooms/team/participants/bob", 200)
            assert removed == {"removed": "bob"}
            assert await bob.closed_with() == 4003
            assert (await expect_type(alice, "user-left"))["userId"] == "bob"
            assert (await expect_type(carol, "user-left"))["userId"] == "bob"
            gone = await delete(http, f"{n3.url}/api/rooms/team/participants/ghost", 404)
            assert gone["error"]["code"] == "no-such-participant"

            ended = await delete(http, f"{n3.url}/api/rooms/team", 200)
            assert ended == {"ended": "team", "members": 2}
            assert await alice.closed_with() == 4004
            assert await carol.closed_with() == 4004
            # Another room on the same node is untouched.
            await dave.send({"type": "ping", "ref": 1})
            assert (await dave.expect("pong"))["ref"] == 1
            await delete(http, f"{n3.url}/api/rooms/team", 404)
        finally:
            for client in clients:
                await client.close()


async def test_an_admin_in_the_room_removes_and_ends_across_nodes(
    redis_url: str, tmp_path: Path
) -> None:
    async with cluster(2, redis_url, tmp_path, tokens=True) as (n1, n2):
        admin = await Client.connect(n1.url)
        erin = await Client.connect(n2.url)
        frank = await Client.connect(n2.url)
        clients = [admin, erin, frank]
        try:
            await admin.join("team", token=token("admin", "team", grants=ADMIN))
            await erin.join("team", token=token("erin", "team"))
            await frank.join("team", token=token("frank", "team"))
            for _ in range(2):
                await expect_type(admin, "user-joined")
            await admin.send({"type": "remove-participant", "userId": "erin", "ref": "r"})
            assert await expect_type(admin, "participant-removed") == {
                "type": "participant-removed",
                "userId": "erin",
                "ref": "r",
            }
            assert await erin.closed_with() == 4003
            assert (await expect_type(frank, "user-left"))["userId"] == "erin"
            assert (await expect_type(admin, "user-left"))["userId"] == "erin"

            await admin.send({"type": "end-room", "ref": "e"})
            assert (await expect_type(admin, "room-ended"))["room"] == "team"
            assert await frank.closed_with() == 4004
        finally:
            for client in clients:
                await client.close()

"""The seed's protocol over real sockets, field for field, as the seed's clients read it."""

from __future__ import annotations

import aiohttp

from tests.wsclient import Client


async def test_seed_flow_exact_fields(hub_url: str) -> None:
    """join-room / signal / chat / close, and the fields the seed's ConferenceClient reads."""
    async with (
        await Client.connect(hub_url) as alice,
        await Client.connect(hub_url) as bob,
        await Client.connect(hub_url) as carol,
    ):
        await alice.send({"type": "join-room", "room": "seed", "userId": "alice"})
        await alice.expect("room-joined")
        await bob.send({"type": "join-room", "room": "seed", "userId": "bob"})
        await bob.expect("room-joined")
        joined = await alice.recv()
        assert joined["type"] == "user-joined"
        assert joined["userId"] == "bob"

        offer = {
            "type": "offer",
            "sdp": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"},
        }
        await alice.send({"type": "signal", "targetUserId": "bob", "signal": offer})
        relayed = await bob.recv()
        assert relayed == {"type": "signal", "signal": offer, "fromUserId": "alice"}

        candidate = {
            "type": "ice-candidate",
            "candidate": {
                "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        }
        await bob.send({"type": "signal", "targetUserId": "alice", "signal": candidate})
        assert await alice.recv() == {"type": "signal", "signal": candidate, "fromUserId": "bob"}

        await carol.send({"type": "join-room", "room": "seed", "userId": "carol"})
        await carol.expect("room-joined")
        for member in (alice, bob):
            assert (await member.recv())["userId"] == "carol"

        await bob.send({"type": "chat", "message": "hello, room"})
        for member in (alice, carol):
            chat = await member.recv()
            # The seed's fields as they are; hubbub's additions beside them.
            assert {k: chat[k] for k in ("type", "message", "userId")} == {
                "type": "chat",
                "message": "hello, room",
                "userId": "bob",
            }
            assert set(chat) == {"type", "message", "userId", "id", "seq", "ts"}
        # The seed does not echo chat to its sender: bob gets an acknowledgement
        # (a type the seed's clients ignore), not a copy.
        ack = await bob.expect("chat-ack")
        assert ack["seq"] == chat["seq"]
        await bob.nothing()

        await carol.ws.close()
        for member in (alice, bob):
            assert await member.recv() == {"type": "user-left", "userId": "carol"}


async def test_both_paths_accept_the_upgrade(hub_url: str) -> None:
    async with await Client.connect(hub_url, "/") as a, await Client.connect(hub_url, "/ws") as b:
        await a.join("paths", "a")
        await b.join("paths", "b")
        assert (await a.expect("user-joined"))["userId"] == "b"


async def test_http_routes(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(hub_url + "/healthz") as response:
            assert response.status == 200
            body = await response.json()
            assert body["status"] == "ok"
        async with http.get(hub_url + "/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert "hubbub" in await response.text()
        async with http.get(hub_url + "/ws") as response:
            assert response.status == 400  # /ws is for WebSocket upgrades only


async def test_rooms_are_isolated(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as a1,
        await Client.connect(hub_url) as a2,
        await Client.connect(hub_url) as b1,
        await Client.connect(hub_url) as b2,
    ):
        await a1.join("A", "one")
        await a2.join("A", "two")
        await a1.expect("user-joined")
        await b1.join("B", "two-b")
        await b2.join("B", "b-witness")
        await b1.expect("user-joined")
        await a1.send({"type": "chat", "message": "in A"})
        assert (await a2.recv())["message"] == "in A"
        await a1.expect("chat-ack")
        await b1.nothing()
        # a user in room B cannot signal into room A, even naming a member of A
        await b1.send({"type": "signal", "targetUserId": "one", "signal": {}})
        await b1.expect_error("no-such-peer")
        await a1.nothing()
        await b1.ws.close()
        # the witness in B hears b1 leave: then nobody in A has anything coming
        assert await b2.expect("user-left") == {"type": "user-left", "userId": "two-b"}
        await a1.nothing()
        await a2.nothing()

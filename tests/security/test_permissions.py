"""Grants and rooms over real sockets: what a token allows, and nothing more."""

from __future__ import annotations

import aiohttp

from hubbub.server import ServerSettings
from tests.tokens import SECRET, token, token_settings
from tests.wsclient import Client

API_KEY = "api-key-for-tests"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_only_the_granted_rooms(start_hub) -> None:
    url = await start_hub(token_settings())
    scoped = token("alice", ["team", "support-*"])
    async with await Client.connect(url) as alice:
        for room in ("other", "teams", "suppor", "team-x"):
            await alice.send({"type": "join-room", "room": room, "token": scoped})
            await alice.expect_error("forbidden")
        assert (await alice.join("support-42", token=scoped))["room"] == "support-42"
        assert (await alice.join("team", token=scoped))["room"] == "team"


async def test_each_action_needs_its_grant(start_hub) -> None:
    url = await start_hub(token_settings())
    async with await Client.connect(url) as viewer, await Client.connect(url) as speaker:
        await speaker.join("team", token=token("speaker", "team"))
        joined = await viewer.join("team", token=token("viewer", "team", grants=["join"]))
        assert joined["grants"] == ["join"]
        participant = joined["participants"][0]
        assert participant["grants"] == ["chat", "join", "publish", "screen", "signal"]
        announced = await speaker.expect("user-joined")
        assert announced["grants"] == ["join"]
        await viewer.send({"type": "chat", "message": "hi", "ref": "c"})
        assert (await viewer.expect_error("forbidden"))["ref"] == "c"
        await viewer.send({"type": "signal", "targetUserId": "speaker", "signal": {}})
        await viewer.expect_error("forbidden")
        await viewer.send({"type": "remove-participant", "userId": "speaker"})
        await viewer.expect_error("forbidden")
        await viewer.send({"type": "end-room"})
        await viewer.expect_error("forbidden")
        await speaker.nothing()
        # the speaker may talk to the viewer, who may listen
        await speaker.send({"type": "chat", "message": "welcome"})
        assert (await viewer.expect("chat"))["message"] == "welcome"
    async with await Client.connect(url) as nobody:
        await nobody.send({"type": "join-room", "room": "team", "token": token("x", grants=[])})
        await nobody.expect_error("forbidden")


async def test_no_signalling_into_another_room(start_hub) -> None:
    url = await start_hub(token_settings())
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("room-1", token=token("a"))
        await b.join("room-2", token=token("b"))
        await a.send({"type": "signal", "targetUserId": "b", "signal": {"type": "offer"}})
        await a.expect_error("no-such-peer")
        await a.send({"type": "chat", "message": "anyone?"})
        await a.expect("chat-ack")  # relayed by now, to whoever it went to
        await b.nothing()


async def test_hidden_members_are_not_announced(start_hub) -> None:
    url = await start_hub(token_settings())
    async with (
        await Client.connect(url) as alice,
        await Client.connect(url) as recorder,
        await Client.connect(url) as bob,
    ):
        await alice.join("team", token=token("alice"))
        joined = await recorder.join("team", token=token("rec", grants=["join", "hidden"]))
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        await alice.nothing()
        joined = await bob.join("team", token=token("bob"))
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        assert (await alice.expect("user-joined"))["userId"] == "bob"
        # it sees the room come and go, and hears it
        assert (await recorder.expect("user-joined"))["userId"] == "bob"
        await alice.send({"type": "chat", "message": "on the record"})
        assert (await recorder.expect("chat"))["message"] == "on the record"
        await bob.expect("chat")
        await alice.expect("chat-ack")
        await recorder.send({"type": "leave-room"})
        await recorder.expect("room-left")
        await alice.nothing()
        await bob.nothing()


async def test_admin_removes_a_participant_and_ends_the_room(start_hub) -> None:
    url = await start_hub(token_settings())
    admin_token = token("mod", grants=["join", "chat", "admin"])
    async with (
        await Client.connect(url) as mod,
        await Client.connect(url) as alice,
        await Client.connect(url) as bob,
    ):
        await mod.join("team", token=admin_token)
        await alice.join("team", token=token("alice"))
        await bob.join("team", token=token("bob"))
        await mod.expect("user-joined")
        await mod.expect("user-joined")
        await alice.expect("user-joined")
        await mod.send({"type": "remove-participant", "userId": "nobody", "ref": 1})
        await mod.expect_error("no-such-peer")
        await mod.send({"type": "remove-participant", "userId": "alice", "ref": 2})
        assert await alice.closed_with() == 4003
        assert await bob.recv() == {"type": "user-left", "userId": "alice"}
        assert await mod.recv() == {"type": "user-left", "userId": "alice"}
        assert await mod.recv() == {"type": "participant-removed", "userId": "alice", "ref": 2}
        await mod.send({"type": "end-room", "ref": 3})
        assert await bob.closed_with() == 4004
        assert await mod.recv() == {"type": "room-ended", "room": "team", "ref": 3}
        # the admin is out of the room and still connected
        await mod.send({"type": "chat", "message": "hello?"})
        await mod.expect_error("not-in-room")


async def test_admin_over_the_http_api(start_hub) -> None:
    url = await start_hub(token_settings(api_key=API_KEY))
    async with (
        aiohttp.ClientSession() as http,
        await Client.connect(url) as alice,
        await Client.connect(url) as bob,
    ):
        async with http.post(
            url + "/api/tokens",
            json={"userId": "alice", "rooms": ["team"], "name": "Alice", "ttl": 60},
            headers=AUTH,
        ) as response:
            assert response.status == 201
            minted = await response.json()
        joined = await alice.join("team", token=minted["token"])
        assert (joined["userId"], joined["name"]) == ("alice", "Alice")
        await bob.join("team", token=token("bob"))
        await alice.expect("user-joined")

        async with http.delete(url + "/api/rooms/team/participants/bob") as response:
            assert response.status == 401
        async with http.delete(url + "/api/rooms/team/participants/carol", headers=AUTH) as r:
            assert r.status == 404
            assert (await r.json())["error"]["code"] == "no-such-participant"
        async with http.delete(url + "/api/rooms/team/participants/bob", headers=AUTH) as r:
            assert r.status == 200
        assert await bob.closed_with() == 4003
        assert await alice.recv() == {"type": "user-left", "userId": "bob"}
        async with http.delete(url + "/api/rooms/team", headers=AUTH) as response:
            assert response.status == 200
            assert await response.json() == {"ended": "team", "members": 1}
        assert await alice.closed_with() == 4004
        async with http.delete(url + "/api/rooms/team", headers=AUTH) as response:
            assert response.status == 404


async def test_minting_refuses_what_it_cannot_sign(start_hub) -> None:
    url = await start_hub(ServerSettings(api_key=API_KEY))
    async with aiohttp.ClientSession() as http:
        body = {"userId": "alice", "rooms": ["team"]}
        async with http.post(url + "/api/tokens", json=body, headers=AUTH) as response:
            assert response.status == 409
            assert (await response.json())["error"]["code"] == "minting-unavailable"
    url = await start_hub(ServerSettings(api_key=API_KEY, token_secret=SECRET))
    async with aiohttp.ClientSession() as http:
        for bad in (
            {"userId": "alice"},
            {"userId": "alice", "rooms": ["team"], "grants": ["root"]},
            {"userId": "alice", "rooms": ["team"], "ttl": 0},
            {"userId": "alice", "rooms": ["team"], "extra": True},
            {"userId": "", "rooms": ["team"]},
        ):
            async with http.post(url + "/api/tokens", json=bad, headers=AUTH) as response:
                assert response.status == 400, bad
                assert (await response.json())["error"]["code"] == "bad-request"
        async with http.post(url + "/api/tokens", json=body) as response:
            assert response.status == 401

"""hubbub's additions and every error code, over real sockets."""

from __future__ import annotations

import pytest

from tests.wsclient import Client


async def test_room_joined_lists_the_participants(hub_url: str) -> None:
    async with await Client.connect(hub_url) as a, await Client.connect(hub_url) as b:
        first = await a.join("r", "alice", ref="j1")
        assert first["participants"] == []
        assert first["ref"] == "j1"
        assert first["room"] == "r"
        second = await b.join("r")
        assert second["userId"].startswith("user-")
        assert second["sessionId"] != first["sessionId"]
        assert second["participants"] == [{"userId": "alice", "polite": True, "status": "online"}]
        assert await a.recv() == {
            "type": "user-joined",
            "userId": second["userId"],
            "polite": False,
            "status": "online",
        }


async def test_leave_room_and_switching_rooms(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as a,
        await Client.connect(hub_url) as b,
        await Client.connect(hub_url) as c,
    ):
        await a.join("one", "a")
        await b.join("one", "b")
        await a.expect("user-joined")
        await c.join("two", "c")
        await b.join("two", "b")  # switching rooms leaves "one"
        assert await a.recv() == {"type": "user-left", "userId": "b"}
        assert (await c.expect("user-joined"))["userId"] == "b"
        await b.send({"type": "leave-room", "ref": 5})
        assert await b.recv() == {"type": "room-left", "room": "two", "ref": 5}
        assert await c.recv() == {"type": "user-left", "userId": "b"}
        await b.send({"type": "leave-room"})
        await b.expect_error("not-in-room")


async def test_user_id_taken_keeps_the_present_member(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as alice,
        await Client.connect(hub_url) as bob,
        await Client.connect(hub_url) as mallory,
    ):
        await alice.join("r", "alice")
        await bob.join("r", "bob")
        await alice.expect("user-joined")
        await mallory.send({"type": "join-room", "room": "r", "userId": "alice"})
        await mallory.expect_error("user-id-taken")
        await alice.nothing()
        await bob.send({"type": "signal", "targetUserId": "alice", "signal": {"n": 1}})
        assert (await alice.recv())["signal"] == {"n": 1}
        await mallory.nothing()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad-json"),
        ('{"type": "join-room", "room": 3}', "bad-message"),
        ('{"type": "teleport", "ref": 1}', "unknown-type"),
        ('{"type": "chat", "message": "hi"}', "not-in-room"),
        ('{"type": "join-room", "room": "' + "r" * 200 + '"}', "too-large"),
        ("[" * 40 + "]" * 40, "too-deep"),
    ],
)
async def test_error_codes_keep_the_connection_open(hub_url: str, frame: str, code: str) -> None:
    async with await Client.connect(hub_url) as client:
        await client.send(frame)
        error = await client.expect_error(code)
        assert set(error) <= {"type", "code", "message", "ref"}
        await client.send({"type": "ping", "ref": "still-open"})
        assert await client.recv() == {"type": "pong", "ref": "still-open"}


async def test_no_such_peer_and_room_full(start_hub) -> None:
    url = await start_hub(max_participants=2)
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as b,
        await Client.connect(url) as c,
    ):
        await a.join("r", "a")
        await a.send({"type": "signal", "targetUserId": "nobody", "signal": {}, "ref": 1})
        assert (await a.expect_error("no-such-peer"))["ref"] == 1
        await b.join("r", "b")
        await c.send({"type": "join-room", "room": "r", "userId": "c"})
        await c.expect_error("room-full")


async def test_already_in_room_and_binary(hub_url: str) -> None:
    async with await Client.connect(hub_url) as a:
        await a.join("r", "a")
        await a.send({"type": "join-room", "room": "r", "userId": "a2"})
        await a.expect_error("already-in-room")
        await a.ws.send_bytes(b"\x00\x01")
        await a.expect_error("binary-not-supported")


async def test_rate_limited(start_hub) -> None:
    # One message an hour once the burst is spent: no token comes back during the test,
    # however slowly a busy machine runs it.
    url = await start_hub(message_rate=1 / 3600, message_burst=3, flood_disconnect_after=1000)
    async with await Client.connect(url) as a:
        for i in range(5):
            await a.send({"type": "ping", "ref": i})
        replies = [await a.recv() for _ in range(4)]
        assert replies[:3] == [{"type": "pong", "ref": i} for i in range(3)]
        assert replies[3]["code"] == "rate-limited"  # (a dropped frame is not read: no ref)
        await a.nothing(within=0.5)  # one refusal for the run of drops

"""Presence, last seen and typing over real sockets, on both store backends, and
across restarts of a real ``hubbub serve`` process."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.process import hubbub_serve
from tests.tokens import token, token_settings
from tests.wsclient import Client


async def test_status_is_set_shown_and_carried_by_participants(start_hub) -> None:
    url = await start_hub()
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice", status="busy")
        joined = await b.join("r", "bob")
        assert joined["participants"] == [{"userId": "alice", "polite": True, "status": "busy"}]
        assert await a.expect("user-joined") == {
            "type": "user-joined",
            "userId": "bob",
            "polite": False,
            "status": "online",
        }
        await b.send({"type": "presence", "status": "away", "ref": "p1"})
        assert await b.expect("presence") == {
            "type": "presence",
            "userId": "bob",
            "status": "away",
            "ref": "p1",
        }
        assert await a.expect("presence") == {"type": "presence", "userId": "bob", "status": "away"}
        # The same status again: answered, but the room hears nothing new.
        await b.send({"type": "presence", "status": "away"})
        await b.expect("presence")
        await a.nothing()
        async with await Client.connect(url) as c:
            joined = await c.join("r", "carol")
            assert [(p["userId"], p["status"]) for p in joined["participants"]] == [
                ("alice", "busy"),
                ("bob", "away"),
            ]


async def test_a_status_set_outside_a_room_applies_to_the_next_join(start_hub) -> None:
    url = await start_hub()
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        await b.send({"type": "presence", "status": "busy", "ref": 1})
        assert await b.expect("presence") == {"type": "presence", "status": "busy", "ref": 1}
        joined = await b.join("r", "bob")
        assert joined["status"] == "busy"
        assert (await a.expect("user-joined"))["status"] == "busy"


@pytest.mark.parametrize(
    "message",
    [
        {"type": "presence", "status": "offline", "ref": 1},
        {"type": "presence", "status": "sleeping", "ref": 1},
        {"type": "presence", "ref": 1},
        {"type": "presence", "status": 3, "ref": 1},
        {"type": "join-room", "room": "r", "userId": "bob", "status": "gone", "ref": 1},
        {"type": "typing", "ref": 1},
        {"type": "typing", "active": "yes", "ref": 1},
    ],
)
async def test_bad_presence_and_typing_are_refused(start_hub, message: dict) -> None:
    url = await start_hub()
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        if message["type"] == "typing":
            await b.join("r", "bob")
            await a.expect("user-joined")
        await b.send(message)
        error = await b.expect_error("bad-message")
        assert error["ref"] == 1
        await a.nothing()


async def test_presence_is_rate_limited(start_hub) -> None:
    url = await start_hub(presence_rate=0.01, presence_burst=2)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        await b.join("r", "bob")
        await a.expect("user-joined")
        for status in ("away", "busy"):
            await b.send({"type": "presence", "status": status})
            await b.expect("presence")
            assert (await a.expect("presence"))["status"] == status
        await b.send({"type": "presence", "status": "online", "ref": "over"})
        error = await b.expect_error("rate-limited")
        assert error["ref"] == "over"
        await a.nothing()


async def test_typing_is_relayed_and_stops_with_chat_and_with_leaving(start_hub) -> None:
    url = await start_hub()
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        await b.join("r", "bob")
        await a.expect("user-joined")
        await b.send({"type": "typing", "active": True})
        assert await a.expect("typing") == {"type": "typing", "userId": "bob", "active": True}
        await b.send({"type": "typing", "active": False})
        assert await a.expect("typing") == {"type": "typing", "userId": "bob", "active": False}
        # A stop from someone the room does not see typing: nothing.
        await b.send({"type": "typing", "active": False})
        await a.nothing()
        # Sending the message ends the typing, just before the message.
        await b.send({"type": "typing", "active": True})
        await a.expect("typing")
        await b.send({"type": "chat", "message": "done"})
        assert await a.expect("typing") == {"type": "typing", "userId": "bob", "active": False}
        assert (await a.expect("chat"))["message"] == "done"
        await b.expect("chat-ack")
        # Leaving ends it too, just before user-left.
        await b.send({"type": "typing", "active": True})
        await a.expect("typing")
        await b.send({"type": "leave-room"})
        assert await a.expect("typing") == {"type": "typing", "userId": "bob", "active": False}
        assert await a.expect("user-left") == {"type": "user-left", "userId": "bob"}
        assert (await a.expect("presence"))["status"] == "offline"  # bob chatted
        await b.expect("room-left")
        await b.send({"type": "typing", "active": True, "ref": 9})
        assert (await b.expect_error("not-in-room"))["ref"] == 9


async def test_a_lost_connection_ends_typing(start_hub) -> None:
    url = await start_hub()
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        b = await Client.connect(url)
        await b.join("r", "bob")
        await a.expect("user-joined")
        await b.send({"type": "typing", "active": True})
        await a.expect("typing")
        await b.close()
        assert await a.expect("typing") == {"type": "typing", "userId": "bob", "active": False}
        assert await a.expect("user-left") == {"type": "user-left", "userId": "bob"}
        await a.nothing()  # bob never chatted: not one of the room's offline members


async def test_typing_is_rate_limited(start_hub) -> None:
    url = await start_hub(typing_rate=0.01, typing_burst=3)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "alice")
        await b.join("r", "bob")
        await a.expect("user-joined")
        for _ in range(3):
            await b.send({"type": "typing", "active": True})
            await a.expect("typing")
        await b.send({"type": "typing", "active": True, "ref": "t4"})
        assert (await b.expect_error("rate-limited"))["ref"] == "t4"
        await a.nothing()
        # A stop is never refused: the room must not be left seeing bob type.
        await b.send({"type": "typing", "active": False})
        assert (await a.expect("typing"))["active"] is False


async def test_typing_needs_the_chat_grant_and_a_hidden_member_types_unseen(start_hub) -> None:
    url = await start_hub(token_settings())
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as reader,
        await Client.connect(url) as bot,
    ):
        await a.join("team", token=token("alice", "team"))
        await reader.join("team", token=token("reader", "team", grants=["join"]))
        await a.expect("user-joined")
        await reader.send({"type": "typing", "active": True, "ref": 1})
        assert (await reader.expect_error("forbidden"))["ref"] == 1
        await bot.join("team", token=token("bot", "team", grants=["join", "chat", "hidden"]))
        await bot.send({"type": "typing", "active": True})
        await bot.send({"type": "presence", "status": "busy", "ref": 2})
        assert (await bot.expect("presence"))["ref"] == 2
        await a.nothing()


async def test_offline_members_and_their_last_seen(start_hub, store_settings) -> None:
    url = await start_hub(store_settings)
    async with await Client.connect(url) as a:
        await a.join("r", "alice")
        before = int(time.time() * 1000)
        b = await Client.connect(url)
        quiet = await Client.connect(url)
        await b.join("r", "bob")
        await quiet.join("r", "quiet")
        await b.expect("user-joined")
        await b.send({"type": "chat", "message": "hello"})
        await b.expect("chat-ack")
        await b.close()
        messages = [await a.recv() for _ in range(5)]
        after = int(time.time() * 1000)
        assert [(m["type"], m.get("userId")) for m in messages] == [
            ("user-joined", "bob"),
            ("user-joined", "quiet"),
            ("chat", "bob"),
            ("user-left", "bob"),
            ("presence", "bob"),
        ]
        offline = messages[4]
        assert offline["status"] == "offline"
        assert before <= offline["lastSeen"] <= after
        await quiet.close()
        # quiet never chatted: not one of the room's offline members
        assert await a.recv() == {"type": "user-left", "userId": "quiet"}
        await a.nothing()
        async with await Client.connect(url) as c:
            joined = await c.join("r", "carol")
            assert joined["offline"] == [{"userId": "bob", "lastSeen": offline["lastSeen"]}]
            # Back in the room: no longer offline.
            async with await Client.connect(url) as b:
                await b.join("r", "bob")
                async with await Client.connect(url) as d:
                    joined = await d.join("r", "dave")
                    assert "offline" not in joined
                    assert "bob" in [p["userId"] for p in joined["participants"]]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_last_seen_outlives_a_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        store = ("--database-url", request.getfixturevalue("postgres_url"))
    else:
        store = ("--data-dir", str(tmp_path))
    async with hubbub_serve(*store) as (url, process):
        async with await Client.connect(url) as a, await Client.connect(url) as b:
            await a.join("r", "alice")
            await b.join("r", "bob")
            await a.expect("user-joined")
            await b.send({"type": "chat", "message": "hi"})
            await b.expect("chat-ack")
            await a.expect("chat")
            await a.send({"type": "chat", "message": "hi bob"})
            await a.expect("chat-ack")
            await b.expect("chat")
            await b.send({"type": "leave-room"})
            await b.expect("room-left")
            await a.expect("user-left")
            bob_seen = (await a.expect("presence"))["lastSeen"]
            # alice stays until the server stops
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    async with hubbub_serve(*store) as (url, _), await Client.connect(url) as c:
        joined = await c.join("r", "carol")
        offline = {m["userId"]: m["lastSeen"] for m in joined["offline"]}
        assert offline["bob"] == bob_seen
        assert offline["alice"] >= bob_seen  # alice was there until the shutdown
        assert list(offline) == ["alice", "bob"]  # most recently seen first

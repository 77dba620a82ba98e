"""Joins, leaves and chat sent back to back, over real sockets: nothing a client
sends is lost while a room loads or waits for its stored chat, no member lands in a
room the server has forgotten, and every member's view of its room is one story."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.settings import ServerSettings
from tests.conftest import ServerFactory
from tests.tokens import token, token_settings
from tests.unit.test_waiting import View
from tests.wsclient import Client


async def test_a_chat_sent_behind_two_joins_is_acknowledged_every_time(hub_url: str) -> None:
    for attempt in range(20):
        async with await Client.connect(hub_url) as client:
            for message in (
                {"type": "join-room", "room": f"A{attempt}", "userId": "alice"},
                {"type": "join-room", "room": f"B{attempt}", "userId": "alice"},
                {"type": "chat", "message": "hi", "clientId": f"c{attempt}", "ref": "m"},
            ):
                await client.send(message)
            assert (await client.expect("room-joined"))["room"] == f"A{attempt}"
            assert (await client.expect("room-joined"))["room"] == f"B{attempt}"
            ack = await client.expect("chat-ack")
            assert (ack["clientId"], ack["ref"]) == (f"c{attempt}", "m"), attempt


async def test_a_reload_of_the_only_member_keeps_its_room(start_hub: ServerFactory) -> None:
    url = await start_hub(token_settings())
    alice = token("alice")
    async with await Client.connect(url) as tab1, await Client.connect(url) as tab2:
        await tab1.join("R", token=alice)
        await tab2.join("R", token=alice)
        assert await tab1.closed_with() == 4009
        async with await Client.connect(url) as bob:
            joined = await bob.join("R", token=token("bob"))
            assert [p["userId"] for p in joined["participants"]] == ["alice"]
            assert (await tab2.expect("user-joined"))["userId"] == "bob"


async def test_a_leave_while_the_room_loads_orphans_nobody(hub_url: str) -> None:
    for attempt in range(10):
        room = f"R{attempt}"
        async with await Client.connect(hub_url) as c1, await Client.connect(hub_url) as c2:
            await c1.send({"type": "join-room", "room": room, "userId": "one"})
            await c1.send({"type": "leave-room"})
            await c2.send({"type": "join-room", "room": room, "userId": "two"})
            await c1.expect("room-joined")
            # c2's join may come while c1 is there (it waited for the room with c1's)
            while (await c1.recv())["type"] != "room-left":
                pass
            await c2.expect("room-joined")
            async with await Client.connect(hub_url) as c3:
                joined = await c3.join(room, "three")
                assert [p["userId"] for p in joined["participants"]] == ["two"], attempt
                async with await Client.connect(hub_url) as c4:
                    await c4.send({"type": "join-room", "room": room, "userId": "two"})
                    await c4.expect_error("user-id-taken")


async def read_view(client: Client, view: View, until: Any) -> None:
    """Read into ``view`` until a message matches ``until``."""
    while True:
        message = await client.recv()
        view.see(message)
        if until(message):
            return


async def test_members_see_one_story_while_chat_is_being_stored(
    start_hub: ServerFactory,
) -> None:
    # The store's batch waits long enough for everything below to arrive meanwhile.
    url = await start_hub(ServerSettings(store_batch_delay=0.3))
    async with (
        await Client.connect(url) as w,
        await Client.connect(url) as x,
        await Client.connect(url) as y,
    ):
        await w.join("room", "W")
        await w.send({"type": "chat", "message": "first", "clientId": "w1"})
        await x.send({"type": "join-room", "room": "room", "userId": "X"})
        await x.send({"type": "signal", "targetUserId": "W", "signal": {"sdp": "offer"}})
        await y.send({"type": "join-room", "room": "room", "userId": "Y"})
        views = {"w": View("w"), "x": View("x"), "y": View("y")}
        views["w"].members = set()
        await read_view(w, views["w"], lambda m: m["type"] == "signal")
        await read_view(x, views["x"], lambda m: m.get("userId") == "Y")
        await read_view(y, views["y"], lambda m: m["type"] == "room-joined")
        # W's own messages, and a witness that nothing else was sent before it
        await asyncio.gather(*(c.send({"type": "ping", "ref": "end"}) for c in (w, x, y)))
        for name, client in (("w", w), ("x", x), ("y", y)):
            await read_view(client, views[name], lambda m: m["type"] == "pong")
        assert views["w"].members == {"X", "Y"}
        assert views["x"].members == {"W", "Y"}
        assert views["y"].members == {"W", "X"}


async def test_room_joined_carries_no_message_retention_removed(
    start_hub: ServerFactory,
) -> None:
    url = await start_hub(ServerSettings(retention_messages=2, retention_interval=0.05))
    async with await Client.connect(url) as alice:
        await alice.join("room", "alice")
        for n in range(5):
            await alice.send({"type": "chat", "message": f"m{n}", "clientId": f"c{n}"})
            await alice.expect("chat-ack")
        # until the retention task has run: history holds the last two only
        for _ in range(100):
            await alice.send({"type": "history", "ref": "h"})
            page = await alice.expect("history")
            if len(page["messages"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert [m["message"] for m in page["messages"]] == ["m3", "m4"]
        async with await Client.connect(url) as bob:
            joined = await bob.join("room", "bob")
            assert [m["message"] for m in joined["history"]] == ["m3", "m4"]

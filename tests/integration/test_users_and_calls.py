"""Users reached by id, notifications and calls, over real sockets against a real
server, on both store backends where the store is involved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from hubbub.server import ServerSettings, start_server
from tests.tokens import token, token_settings
from tests.wsclient import Client

KEY = "api-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}


@contextlib.asynccontextmanager
async def running(settings: ServerSettings) -> AsyncIterator[str]:
    runner, url = await start_server(replace(settings, host="127.0.0.1", port=0, api_key=KEY))
    try:
        yield url
    finally:
        await runner.cleanup()


async def notify(
    http: aiohttp.ClientSession, url: str, user: str, body: Any, status: int = 201
) -> dict[str, Any]:
    async with http.post(f"{url}/api/users/{user}/notifications", json=body, headers=AUTH) as r:
        reply = await r.json()
        assert r.status == status, reply
        return reply


async def tokened(url: str, user: str, rooms: list[str] | str = "lobby") -> Client:
    """A connection that showed its token in the handshake."""
    return await Client.connect(url, protocols=["hubbub", "hubbub.token." + token(user, rooms)])


# -- notifications ---------------------------------------------------------------


async def test_a_notification_reaches_every_connection_of_its_user_wherever_they_are(
    store_settings: ServerSettings,
) -> None:
    async with (
        running(store_settings) as url,
        aiohttp.ClientSession() as http,
        await Client.connect(url) as phone,
        await Client.connect(url) as laptop,
        await Client.connect(url) as other,
    ):
        await phone.join("family", "bob")
        await laptop.join("work", "bob")
        await other.join("work", "alice")
        await laptop.expect("user-joined")
        sent = await notify(
            http, url, "bob", {"title": "Invoice", "body": "ready", "data": {"n": [1, 2]}}
        )
        assert sent["connections"] == 2
        assert sent["duplicate"] is False
        expected = {
            "type": "notification",
            "id": sent["id"],
            "ts": sent["ts"],
            "title": "Invoice",
            "body": "ready",
            "data": {"n": [1, 2]},
        }
        assert await phone.expect("notification") == expected
        assert await laptop.expect("notification") == expected
        await other.nothing()
        # Retried with the same key: nothing new is stored or delivered.
        keyed = await notify(http, url, "bob", {"title": "Once", "key": "k-1"})
        await phone.expect("notification")
        await laptop.expect("notification")
        again = await notify(http, url, "bob", {"title": "Once", "key": "k-1"}, status=200)
        assert (again["id"], again["duplicate"], again["connections"]) == (keyed["id"], True, 0)
        await phone.nothing()
        # Read on the phone: the laptop is told as well.
        await phone.send({"type": "notification-read", "ids": [sent["id"], 10**9], "ref": 1})
        assert await phone.expect("notification-read") == {
            "type": "notification-read",
            "ids": [sent["id"]],
            "ref": 1,
        }
        assert await laptop.expect("notification-read") == {
            "type": "notification-read",
            "ids": [sent["id"]],
        }
        await laptop.send({"type": "notifications", "ref": "n"})
        listed = await laptop.expect("notifications")
        assert [n["id"] for n in listed["notifications"]] == [keyed["id"]]
        assert listed["ref"] == "n"


async def test_unread_notifications_wait_for_the_next_connect_and_survive_a_restart(
    store_settings: ServerSettings,
) -> None:
    async with running(store_settings) as url, aiohttp.ClientSession() as http:
        first = await notify(http, url, "carol", {"title": "one"})
        assert first["connections"] == 0
        second = await notify(http, url, "carol", {"body": "two"})
        read_later = await notify(http, url, "carol", {"body": "three"})
        async with await Client.connect(url) as carol:
            await carol.join("r", "carol")
            listed = await carol.expect("notifications")
            assert [n["id"] for n in listed["notifications"]] == [
                first["id"],
                second["id"],
                read_later["id"],
            ]
            assert listed["notifications"][0] == {
                "id": first["id"],
                "ts": first["ts"],
                "title": "one",
            }
            await carol.send({"type": "notification-read", "ids": [read_later["id"]]})
            assert (await carol.expect("notification-read"))["ids"] == [read_later["id"]]
    # The server is gone; a new one on the same store still has them unread.
    async with running(store_settings) as url, aiohttp.ClientSession() as http:
        async with await Client.connect(url) as carol:
            await carol.join("elsewhere", "carol")
            listed = await carol.expect("notifications")
            assert [n["id"] for n in listed["notifications"]] == [first["id"], second["id"]]
            assert listed.get("more") is None
        async with http.get(f"{url}/api/users/carol/notifications?limit=1", headers=AUTH) as r:
            assert r.status == 200
            body = await r.json()
        assert body == {
            "notifications": [{"id": first["id"], "ts": first["ts"], "title": "one"}],
            "more": True,
        }
        # A later notification's id is larger: ids go on across the restart.
        later = await notify(http, url, "carol", {"title": "after"})
        assert later["id"] > read_later["id"]


async def test_many_connecting_at_once_each_get_their_own_unread(tmp_path: Path) -> None:
    """Their reads go to the store together: each still gets exactly its own."""
    users = [f"user{n}" for n in range(40)]
    async with running(ServerSettings(data_dir=tmp_path)) as url, aiohttp.ClientSession() as http:
        sent = {user: await notify(http, url, user, {"title": user}) for user in users[::2]}
        clients = await asyncio.gather(*(Client.connect(url) for _ in users))
        try:
            await asyncio.gather(
                *(
                    client.send({"type": "join-room", "room": "r", "userId": user})
                    for client, user in zip(clients, users, strict=True)
                )
            )
            for client, user in zip(clients, users, strict=True):
                await client.expect("room-joined")
                seen = []
                while "notifications" not in seen and user in sent:
                    message = await client.recv()
                    seen.append(message["type"])
                    if message["type"] == "notifications":
                        assert [n["id"] for n in message["notifications"]] == [sent[user]["id"]]
                        assert message["notifications"][0]["title"] == user
                await client.send({"type": "ping"})
            for client, user in zip(clients, users, strict=True):
                while (message := await client.recv())["type"] == "user-joined":
                    pass
                assert message["type"] == "pong", (user, message)
        finally:
            await asyncio.gather(*(client.close() for client in clients))


async def test_a_backend_marks_read_and_every_connection_hears_of_it(tmp_path: Path) -> None:
    async with (
        running(ServerSettings(data_dir=tmp_path)) as url,
        aiohttp.ClientSession() as http,
        await Client.connect(url) as dave,
    ):
        await dave.join("r", "dave")
        sent = await notify(http, url, "dave", {"title": "t"})
        await dave.expect("notification")
        read = f"{url}/api/users/dave/notifications/read"
        async with http.post(read, json={"ids": [sent["id"], 999]}, headers=AUTH) as r:
            assert r.status == 200
            assert await r.json() == {"read": [sent["id"]]}
        assert await dave.expect("notification-read") == {
            "type": "notification-read",
            "ids": [sent["id"]],
        }
        async with http.post(read, json={"ids": [sent["id"]]}, headers=AUTH) as r:
            assert await r.json() == {"read": []}
        await dave.nothing()


async def test_the_notification_api_refuses_what_it_cannot_take(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path, limits=replace(ServerSettings().limits))
    settings = replace(settings, limits=replace(settings.limits, max_notification_bytes=100))
    async with running(settings) as url, aiohttp.ClientSession() as http:
        endpoint = f"{url}/api/users/erin/notifications"
        async with http.post(endpoint, json={"title": "x"}) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "unauthorized"
        for body, status, code in (
            ({}, 400, "bad-request"),
            ({"title": 5}, 400, "bad-request"),
            ({"title": "x", "extra": 1}, 400, "bad-request"),
            ({"title": "x", "key": ""}, 400, "bad-request"),
            ({"title": "x", "key": "k" * 129}, 400, "bad-request"),
            ({"body": "x" * 200}, 413, "too-large"),
            ("not an object", 400, "bad-request"),
        ):
            async with http.post(endpoint, json=body, headers=AUTH) as r:
                assert r.status == status, body
                assert (await r.json())["error"]["code"] == code, body
        async with http.post(endpoint, data=b"{nope", headers=AUTH) as r:
            assert r.status == 400
            assert (await r.json())["error"]["code"] == "bad-json"
        too_long_user = "u" * 65
        async with http.post(
            f"{url}/api/users/{too_long_user}/notifications", json={"title": "x"}, headers=AUTH
        ) as r:
            assert r.status == 400
        for query in ("limit=0", "limit=x"):
            async with http.get(f"{endpoint}?{query}", headers=AUTH) as r:
                assert r.status == 400, query
        read = f"{endpoint}/read"
        for body in ({"ids": []}, {"ids": ["1"]}, {}, {"ids": list(range(1, 102))}):
            async with http.post(read, json=body, headers=AUTH) as r:
                assert r.status == 400, body
                assert (await r.json())["error"]["code"] == "bad-request"
        async with http.get(f"{url}/api/openapi.json") as r:
            paths = (await r.json())["paths"]
        assert set(paths["/api/users/{user_id}/notifications"]) == {"get", "post"}
        assert "post" in paths["/api/users/{user_id}/notifications/read"]


async def test_notification_messages_need_an_identity(hub_url: str) -> None:
    async with await Client.connect(hub_url) as anonymous:
        await anonymous.send({"type": "notifications", "ref": 1})
        assert (await anonymous.expect_error("unidentified"))["ref"] == 1
        await anonymous.send({"type": "notification-read", "ids": [1]})
        await anonymous.expect_error("unidentified")
        await anonymous.join("r", "frank")
        await anonymous.send({"type": "notification-read", "ids": []})
        await anonymous.expect_error("bad-message")
        await anonymous.send({"type": "notification-read", "ids": list(range(1, 102))})
        await anonymous.expect_error("too-large")
        await anonymous.send({"type": "notifications", "ref": 2})
        assert await anonymous.expect("notifications") == {
            "type": "notifications",
            "notifications": [],
            "ref": 2,
        }


async def test_a_token_at_connect_makes_the_user_reachable_before_any_join(
    tmp_path: Path,
) -> None:
    async with (
        running(token_settings(data_dir=tmp_path)) as url,
        aiohttp.ClientSession() as http,
        await tokened(url, "gina") as gina,
    ):
        await notify(http, url, "gina", {"title": "before any room"})
        assert (await gina.expect("notification"))["title"] == "before any room"


# -- calls -------------------------------------------------------------------------


async def test_a_call_rings_every_connection_and_is_taken_on_one(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as alice,
        await Client.connect(hub_url) as bob_phone,
        await Client.connect(hub_url) as bob_laptop,
    ):
        await alice.join("lobby", "alice")
        await bob_phone.join("home", "bob")
        await bob_laptop.join("office", "bob")
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
        assert await bob_phone.expect("call-incoming") == incoming
        assert await bob_laptop.expect("call-incoming") == incoming
        await bob_laptop.send({"type": "call-accept", "callId": call_id, "ref": 1})
        accepted = await bob_laptop.expect("call-accepted")
        room = accepted["room"]
        assert accepted == {
            "type": "call-accepted",
            "callId": call_id,
            "room": room,
            "peerUserId": "alice",
            "ref": 1,
        }
        assert await alice.expect("call-accepted") == {
            "type": "call-accepted",
            "callId": call_id,
            "room": room,
            "peerUserId": "bob",
        }
        assert await bob_phone.expect("call-answered-elsewhere") == {
            "type": "call-answered-elsewhere",
            "callId": call_id,
        }
        await bob_phone.send({"type": "call-accept", "callId": call_id})
        await bob_phone.expect_error("call-not-ringing")
        await bob_phone.send({"type": "call-decline", "callId": call_id})
        await bob_phone.expect_error("call-not-ringing")
        await alice.send({"type": "call-cancel", "callId": call_id})
        await alice.expect_error("call-not-ringing")
        await alice.send({"type": "call-accept", "callId": call_id})
        await alice.expect_error("forbidden")
        # Both go to the call's room and signal there.
        await alice.join(room, "alice")
        joined = await bob_laptop.join(room, "bob")
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        await alice.expect("user-joined")
        await bob_laptop.send({"type": "signal", "targetUserId": "alice", "signal": {"sdp": 1}})
        assert (await alice.expect("signal"))["fromUserId"] == "bob"
        await bob_laptop.send({"type": "call-end", "callId": call_id, "ref": "bye"})
        assert await bob_laptop.expect("call-ended") == {
            "type": "call-ended",
            "callId": call_id,
            "reason": "hung-up",
            "byUserId": "bob",
            "ref": "bye",
        }
        assert (await alice.expect("call-ended"))["reason"] == "hung-up"
        await bob_phone.nothing()
        await alice.send({"type": "call-end", "callId": call_id})
        await alice.expect_error("no-such-call")


async def test_decline_and_cancel(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as alice,
        await Client.connect(hub_url) as bob,
        await Client.connect(hub_url) as bob_too,
    ):
        await alice.join("lobby", "alice")
        await bob.join("lobby", "bob")
        await bob_too.join("elsewhere", "bob")
        await alice.expect("user-joined")
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await bob_too.expect("call-incoming")
        await alice.send({"type": "call-end", "callId": call_id})
        await alice.expect_error("call-not-active")
        await bob.send({"type": "call-cancel", "callId": call_id})
        await bob.expect_error("forbidden")
        await bob.send({"type": "call-decline", "callId": call_id, "ref": 2})
        assert await bob.expect("call-declined") == {
            "type": "call-declined",
            "callId": call_id,
            "ref": 2,
        }
        assert await bob_too.expect("call-declined") == {"type": "call-declined", "callId": call_id}
        assert await alice.expect("call-declined") == {"type": "call-declined", "callId": call_id}
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await bob_too.expect("call-incoming")
        await alice.send({"type": "call-cancel", "callId": call_id, "ref": 3})
        assert await alice.expect("call-cancelled") == {
            "type": "call-cancelled",
            "callId": call_id,
            "ref": 3,
        }
        cancelled = {"type": "call-cancelled", "callId": call_id}
        assert await bob.expect("call-cancelled") == cancelled
        assert await bob_too.expect("call-cancelled") == cancelled
        await bob.send({"type": "call-accept", "callId": call_id})
        await bob.expect_error("no-such-call")


async def test_an_unanswered_call_is_missed_by_both(start_hub) -> None:
    url = await start_hub(call_ring_timeout=1.0)
    async with await Client.connect(url) as alice, await Client.connect(url) as bob:
        await alice.join("a", "alice")
        await bob.join("b", "bob")
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        # The server's own timer ends it: about a second, checked about once a second.
        missed = {"type": "call-missed", "callId": call_id}
        assert await alice.expect("call-missed", timeout=15) == missed
        assert await bob.expect("call-missed", timeout=15) == missed
        # Kept for bob as a notification, shown now, and again until he reads it.
        push = await bob.expect("notification")
        assert (push["body"], push["data"]) == (
            "Missed call from alice",
            {"kind": "missed-call", "fromUserId": "alice", "callId": call_id},
        )
        await bob.send({"type": "call-accept", "callId": call_id})
        await bob.expect_error("no-such-call")
    async with await Client.connect(url) as bob:
        await bob.join("b", "bob")
        [waiting] = (await bob.expect("notifications"))["notifications"]
        assert (waiting["id"], waiting["title"]) == (push["id"], "Missed call")


async def test_busy_unavailable_and_the_other_refusals(hub_url: str) -> None:
    async with (
        await Client.connect(hub_url) as alice,
        await Client.connect(hub_url) as bob,
        await Client.connect(hub_url) as carol,
        await Client.connect(hub_url) as nobody,
    ):
        await nobody.send({"type": "call-request", "targetUserId": "bob", "ref": 1})
        assert (await nobody.expect_error("unidentified"))["ref"] == 1
        await nobody.send({"type": "call-accept", "callId": "x"})
        await nobody.expect_error("unidentified")
        await alice.join("a", "alice")
        await bob.join("b", "bob")
        await carol.join("c", "carol")
        for message, code in (
            ({"type": "call-request", "targetUserId": "ghost"}, "user-unavailable"),
            ({"type": "call-request", "targetUserId": "alice"}, "bad-message"),
            ({"type": "call-request", "targetUserId": "x" * 65}, "too-large"),
            ({"type": "call-request"}, "bad-message"),
            ({"type": "call-accept", "callId": "nope"}, "no-such-call"),
            ({"type": "call-decline", "callId": "nope"}, "no-such-call"),
            ({"type": "call-cancel", "callId": "nope"}, "no-such-call"),
            ({"type": "call-end", "callId": "nope"}, "no-such-call"),
            ({"type": "call-end", "callId": 5}, "bad-message"),
        ):
            await alice.send(message)
            await alice.expect_error(code)
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await carol.send({"type": "call-request", "targetUserId": "bob", "ref": "c"})
        assert (await carol.expect_error("busy"))["ref"] == "c"
        await bob.nothing()
        await carol.send({"type": "call-request", "targetUserId": "alice"})
        await carol.expect_error("busy")
        await alice.send({"type": "call-request", "targetUserId": "carol"})
        await alice.expect_error("already-in-call")
        await carol.send({"type": "call-accept", "callId": call_id})
        await carol.expect_error("no-such-call")  # not carol's call
        # Busy while talking too.
        await bob.send({"type": "call-accept", "callId": call_id})
        await bob.expect("call-accepted")
        await alice.expect("call-accepted")
        await carol.send({"type": "call-request", "targetUserId": "bob"})
        await carol.expect_error("busy")


async def missed_call_shown(client: Client, call_id: str) -> None:
    """The missed call reaches a connection made just after it: in the unread
    ``notifications`` if it was stored before the connection read them, live as a
    ``notification`` if after, or both if the two crossed (then the other copy is
    read too, within a few seconds, so that it does not stand in the next step's way)."""
    forms: set[str] = set()
    while not forms:
        message = await client.recv()
        shown = message.get("notifications", [message])
        if any(n.get("data", {}).get("callId") == call_id for n in shown):
            forms.add(message["type"])
    with contextlib.suppress(TimeoutError):
        while True:
            message = await client.recv(timeout=3)
            assert message["type"] in {"notification", "notifications"} - forms, message
            forms.add(message["type"])


async def test_a_party_that_goes_ends_the_call(hub_url: str) -> None:
    async with await Client.connect(hub_url) as alice:
        await alice.join("a", "alice")
        # The callee's only connection closes while it rings: missed.
        async with await Client.connect(hub_url) as bob:
            await bob.join("b", "bob")
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await alice.expect("call-ringing"))["callId"]
            await bob.expect("call-incoming")
        assert await alice.expect("call-missed") == {"type": "call-missed", "callId": call_id}
        # In a call, the callee's connection closes: ended, disconnected.
        async with await Client.connect(hub_url) as bob:
            await bob.join("b", "bob")
            # The missed call waits for bob from then on, unread.
            await missed_call_shown(bob, call_id)
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await alice.expect("call-ringing"))["callId"]
            await bob.expect("call-incoming")
            await bob.send({"type": "call-accept", "callId": call_id})
            await bob.expect("call-accepted")
            await alice.expect("call-accepted")
        assert await alice.expect("call-ended") == {
            "type": "call-ended",
            "callId": call_id,
            "reason": "disconnected",
            "byUserId": "bob",
        }
        # The caller leaves the call's room: ended, left.
        async with await Client.connect(hub_url) as bob:
            await bob.join("b", "bob")
            await bob.expect("notifications")
            await alice.send({"type": "call-request", "targetUserId": "bob"})
            call_id = (await alice.expect("call-ringing"))["callId"]
            await bob.expect("call-incoming")
            await bob.send({"type": "call-accept", "callId": call_id})
            room = (await bob.expect("call-accepted"))["room"]
            await alice.expect("call-accepted")
            await alice.join(room, "alice")
            await alice.send({"type": "leave-room"})
            ended = {"type": "call-ended", "callId": call_id, "reason": "left", "byUserId": "alice"}
            assert await alice.expect("call-ended") == ended
            assert await bob.expect("call-ended") == ended
            await alice.expect("room-left")


async def test_token_mode_lets_both_parties_into_the_call_room_and_nobody_else(
    tmp_path: Path,
) -> None:
    async with (
        running(token_settings(data_dir=tmp_path)) as url,
        await tokened(url, "alice") as alice,
        await tokened(url, "bob") as bob,
        await tokened(url, "mallory") as mallory,
    ):
        # Reachable from the handshake on: no room joined to be called.
        await alice.send({"type": "call-request", "targetUserId": "bob"})
        call_id = (await alice.expect("call-ringing"))["callId"]
        await bob.expect("call-incoming")
        await bob.send({"type": "call-accept", "callId": call_id})
        room = (await bob.expect("call-accepted"))["room"]
        await alice.expect("call-accepted")
        await mallory.send({"type": "join-room", "room": room})
        await mallory.expect_error("forbidden")
        await alice.join(room)
        joined = await bob.join(room)
        assert joined["userId"] == "bob"
        assert [p["userId"] for p in joined["participants"]] == ["alice"]
        await alice.expect("user-joined")
        await bob.send({"type": "call-end", "callId": call_id})
        await bob.expect("call-ended")
        await alice.expect("call-ended")
        # The call is over: its room admits nobody new on the strength of it.
        await alice.send({"type": "leave-room"})
        await alice.expect("room-left")
        await alice.send({"type": "join-room", "room": room})
        await alice.expect_error("forbidden")

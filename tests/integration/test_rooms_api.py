"""The HTTP API for rooms over real sockets: broadcast, listing, one room, its history."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from urllib.parse import quote

import aiohttp
import pytest

from hubbub.server import ServerSettings, http_api
from tests.tokens import token, token_settings
from tests.wsclient import Client

KEY = "rooms-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def api(start_hub, store_settings: ServerSettings):
    """(base URL, HTTP session) of a server with an API key, on each store backend."""
    url = await start_hub(replace(store_settings, api_key=KEY))
    async with aiohttp.ClientSession(headers=AUTH) as http:
        yield url, http


async def _error(response: aiohttp.ClientResponse) -> tuple[int, str]:
    return response.status, (await response.json())["error"]["code"]


def _post_head(path: str, headers: bytes) -> bytes:
    """The head of an API POST with a JSON body, ``headers`` (lines) added."""
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        b"Content-Type: application/json\r\n%s\r\n" % (path.encode(), KEY.encode(), headers)
    )


def _chunked(pieces: list[bytes]) -> list[bytes]:
    """``pieces`` as the chunks of a chunked body, and its last (empty) chunk."""
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


async def _post_in_pieces(url: str, path: str, head: bytes, pieces: list[bytes]) -> bytes:
    """POST with the body written piece by piece, a pause after each (as it comes over
    a slow network, or bigger than a packet); the answer, head and body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(_post_head(path, b"Connection: close\r\n" + head))
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.1)
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_that_comes_in_pieces_is_read_whole(api, chunked: bool) -> None:
    url, _ = api
    body = json.dumps({"event": "slow", "data": {"text": "x" * 3000}}).encode()
    pieces = [body[:10], body[10:1500], body[1500:]]
    if chunked:
        head = b"Transfer-Encoding: chunked\r\n"
        pieces = _chunked(pieces)
    else:
        head = b"Content-Length: %d\r\n" % len(body)
    async with await Client.connect(url) as member:
        await member.join("slow", "alice")
        answer = await _post_in_pieces(url, "/api/rooms/slow/broadcast", head, pieces)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        received = await member.expect("broadcast")
        assert received["data"] == {"text": "x" * 3000}
    # Over the bound, however it comes, is still refused.
    big = json.dumps({"data": "x" * 70_000}).encode()
    answer = await _post_in_pieces(
        url,
        "/api/rooms/slow/broadcast",
        b"Transfer-Encoding: chunked\r\n",
        _chunked([big[i : i + 20_000] for i in range(0, len(big), 20_000)]),
    )
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]


async def _post_a_part(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has sent a broadcast's head and the first 9 of its 100 bytes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_post_head("/api/rooms/r/broadcast", b"Content-Length: 100\r\n") + b'{"data":1')
    return reader, writer


async def test_a_client_that_leaves_before_its_body_is_whole_costs_no_traceback(api) -> None:
    """The server waits for the rest of a body; a client that ends its side of the
    connection instead is answered 400 (if it still reads), and nothing is logged as
    an error (the test fails on any)."""
    reader, writer = await _post_a_part(api[0])
    try:
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is waiting for the rest
        writer.write_eof()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:300]


async def test_a_body_that_stops_coming_is_answered_408(
    api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends part of a body and then nothing does not hold its request
    for good: after ``BODY_TIMEOUT`` (10 s; here 0.5) without a byte, 408."""
    monkeypatch.setattr(http_api, "BODY_TIMEOUT", 0.5, raising=False)
    reader, writer = await _post_a_part(api[0])
    try:
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), head
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert body["error"]["code"] == "body-timeout", body


async def test_broadcast_reaches_everyone_in_the_room_in_order(api) -> None:
    url, http = api
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as b,
        await Client.connect(url) as elsewhere,
    ):
        await a.join("team", "alice")
        await b.join("team", "bob")
        await a.expect("user-joined")
        await elsewhere.join("other", "carol")
        await b.send({"type": "chat", "message": "before"})
        await b.expect("chat-ack")
        body = {"event": "deploy", "data": {"version": "1.4.2", "notes": ["a", "b"]}}
        async with http.post(url + "/api/rooms/team/broadcast", json=body) as response:
            assert response.status == 200
            sent = await response.json()
        assert sent["room"] == "team"
        assert sent["members"] == 2
        assert (await a.expect("chat"))["message"] == "before"
        for client in (a, b):
            assert await client.expect("broadcast") == {
                "type": "broadcast",
                "room": "team",
                "event": "deploy",
                "data": {"version": "1.4.2", "notes": ["a", "b"]},
                "ts": sent["ts"],
            }
        await elsewhere.nothing()
        # Not stored: not in history, not in room-joined.
        await a.send({"type": "history", "ref": 1})
        page = await a.expect("history")
        assert [m["message"] for m in page["messages"]] == ["before"]
        async with http.post(url + "/api/rooms/team/broadcast", json={"data": 7}) as response:
            assert response.status == 200
        assert await a.expect("broadcast") == {
            "type": "broadcast",
            "room": "team",
            "data": 7,
            "ts": (await b.expect("broadcast"))["ts"],
        }
    # A room nobody is in: sent to nobody, and said so.
    async with http.post(url + "/api/rooms/empty/broadcast", json={"data": "x"}) as response:
        assert response.status == 200
        assert (await response.json())["members"] == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/rooms/team/broadcast", b"{not json", 400, "bad-json"),
        ("/api/rooms/team/broadcast", b"{}", 400, "bad-request"),
        ("/api/rooms/team/broadcast", b'{"data": 1, "extra": 2}', 400, "bad-request"),
        ("/api/rooms/team/broadcast", b'{"data": 1, "event": ""}', 400, "bad-request"),
        ("/api/rooms/team/broadcast", b'{"data": 1, "event": "a\\nb"}', 400, "bad-request"),
        ("/api/rooms/team/broadcast", b'{"data": 1, "event": 5}', 400, "bad-request"),
        ("/api/rooms/team/broadcast", b'{"data": "' + b"x" * 70_000 + b'"}', 413, "too-large"),
        ("/api/rooms/" + "r" * 200 + "/broadcast", b'{"data": 1}', 400, "bad-request"),
        ("/api/rooms/a%01b/broadcast", b'{"data": 1}', 400, "bad-request"),
    ],
    ids=[
        "not-json",
        "no-data",
        "unknown-field",
        "empty-event",
        "control-in-event",
        "event-not-a-string",
        "too-large",
        "long-room",
        "control-in-room",
    ],
)
async def test_bad_broadcasts_are_refused(api, path: str, body: bytes, status: int, code: str):
    url, http = api
    async with await Client.connect(url) as a:
        await a.join("team", "alice")
        headers = {"Content-Type": "application/json"}
        async with http.post(url + path, data=body, headers=headers) as response:
            assert await _error(response) == (status, code)
        await a.nothing()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/rooms/team/broadcast"),
        ("GET", "/api/rooms"),
        ("GET", "/api/rooms/team"),
        ("GET", "/api/rooms/team/messages"),
    ],
)
async def test_every_room_endpoint_needs_the_api_key(api, method: str, path: str) -> None:
    url, _ = api
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with anonymous.request(
                method, url + path, json={"data": 1}, headers=headers
            ) as response:
                assert await _error(response) == (401, "unauthorized")


async def test_rooms_with_members_are_listed_by_name_and_paged(api) -> None:
    url, http = api
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as b,
        await Client.connect(url) as c,
    ):
        await a.join("stored-only", "alice")
        await a.send({"type": "chat", "message": "x"})
        await a.expect("chat-ack")
        joined_a = await a.join("c-room", "alice")
        await a.send({"type": "chat", "message": "y"})
        await a.expect("chat-ack")
        joined_b = await b.join("a-room", "bob", status="away")
        joined_c = await c.join("c-room", "carol")
        async with http.get(url + "/api/rooms") as response:
            assert response.status == 200
            listed = await response.json()
        assert listed == {
            "rooms": [
                {
                    "name": "a-room",
                    "participants": [
                        {"userId": "bob", "sessionId": joined_b["sessionId"], "status": "away"}
                    ],
                    "lastSeq": 0,
                },
                {
                    "name": "c-room",
                    "participants": [
                        {"userId": "alice", "sessionId": joined_a["sessionId"], "status": "online"},
                        {"userId": "carol", "sessionId": joined_c["sessionId"], "status": "online"},
                    ],
                    "lastSeq": 1,
                },
            ],
            "next": None,
        }
        async with http.get(url + "/api/rooms?limit=1") as response:
            page = await response.json()
        assert ([r["name"] for r in page["rooms"]], page["next"]) == (["a-room"], "a-room")
        async with http.get(url + f"/api/rooms?limit=1&after={quote('a-room')}") as response:
            page = await response.json()
        assert ([r["name"] for r in page["rooms"]], page["next"]) == (["c-room"], None)
        for query in ("?limit=0", "?limit=x", "?limit=-1"):
            async with http.get(url + "/api/rooms" + query) as response:
                assert await _error(response) == (400, "bad-request")


async def test_one_room_with_members_status_and_offline_members(api) -> None:
    url, http = api
    async with http.get(url + "/api/rooms/team") as response:
        assert await _error(response) == (404, "no-such-room")
    async with await Client.connect(url) as a:
        joined = await a.join("team", "alice", status="busy")
        async with await Client.connect(url) as b:
            await b.join("team", "bob")
            await b.send({"type": "chat", "message": "hi"})
            await b.expect("chat-ack")
        await a.expect("user-joined")
        await a.expect("chat")
        await a.expect("user-left")
        bob_seen = (await a.expect("presence"))["lastSeen"]
        async with http.get(url + "/api/rooms/team") as response:
            assert response.status == 200
            assert await response.json() == {
                "room": "team",
                "lastSeq": 1,
                "members": [
                    {"userId": "alice", "sessionId": joined["sessionId"], "status": "busy"}
                ],
                "offline": [{"userId": "bob", "lastSeen": bob_seen}],
            }
    # Nobody in it: from the store.
    async with http.get(url + "/api/rooms/team") as response:
        assert response.status == 200
        shown = await response.json()
    assert shown["members"] == []
    assert shown["lastSeq"] == 1
    assert [m["userId"] for m in shown["offline"]] == ["bob"]
    async with http.get(url + "/api/rooms/" + "r" * 200) as response:
        assert await _error(response) == (400, "bad-request")


async def test_a_room_shows_names_grants_and_hidden_members(start_hub) -> None:
    url = await start_hub(token_settings(api_key=KEY))
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as bot,
        aiohttp.ClientSession(headers=AUTH) as http,
    ):
        joined_a = await a.join("team", token=token("alice", "team", name="Alice"))
        joined_bot = await bot.join("team", token=token("bot", "team", grants=["join", "hidden"]))
        async with http.get(url + "/api/rooms/team") as response:
            shown = await response.json()
        assert shown["members"] == [
            {
                "userId": "alice",
                "sessionId": joined_a["sessionId"],
                "status": "online",
                "name": "Alice",
                "grants": ["chat", "join", "publish", "screen", "signal"],
            },
            {
                "userId": "bot",
                "sessionId": joined_bot["sessionId"],
                "status": "online",
                "grants": ["hidden", "join"],
                "hidden": True,
            },
        ]


async def test_messages_page_back_like_history(api) -> None:
    url, http = api
    async with await Client.connect(url) as a:
        await a.join("team", "alice")
        for n in range(1, 8):
            await a.send({"type": "chat", "message": f"m{n}", "clientId": f"c{n}"})
            await a.expect("chat-ack")
    async with http.get(url + "/api/rooms/team/messages?limit=3") as response:
        assert response.status == 200
        page = await response.json()
    assert page["room"] == "team"
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7]
    first = page["messages"][0]
    assert set(first) == {"id", "seq", "ts", "userId", "message", "clientId"}
    assert (first["userId"], first["message"], first["clientId"]) == ("alice", "m5", "c5")
    async with http.get(url + "/api/rooms/team/messages?beforeSeq=5&limit=3") as response:
        assert [m["seq"] for m in (await response.json())["messages"]] == [2, 3, 4]
    async with http.get(url + "/api/rooms/team/messages?beforeSeq=2") as response:
        assert [m["seq"] for m in (await response.json())["messages"]] == [1]
    async with http.get(url + "/api/rooms/nobody/messages") as response:
        assert await response.json() == {"room": "nobody", "messages": []}
    for query in ("?beforeSeq=0", "?beforeSeq=x", "?limit=0", "?limit=1.5"):
        async with http.get(url + "/api/rooms/team/messages" + query) as response:
            assert await _error(response) == (400, "bad-request")


async def test_messages_are_capped_at_max_history_page(start_hub, tmp_path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", api_key=KEY)
    url = await start_hub(settings, max_history_page=2)
    async with await Client.connect(url) as a, aiohttp.ClientSession(headers=AUTH) as http:
        await a.join("team", "alice")
        for n in range(4):
            await a.send({"type": "chat", "message": str(n)})
            await a.expect("chat-ack")
        async with http.get(url + "/api/rooms/team/messages?limit=50") as response:
            assert len((await response.json())["messages"]) == 2


async def test_openapi_describes_the_room_endpoints(hub_url: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(hub_url + "/api/openapi.json") as response,
    ):
        paths = (await response.json())["paths"]
    assert "post" in paths["/api/rooms/{room}/broadcast"]
    assert "get" in paths["/api/rooms"]
    assert {"get", "delete"} <= set(paths["/api/rooms/{room}"])
    messages = paths["/api/rooms/{room}/messages"]["get"]
    assert {p["name"] for p in messages["parameters"]} == {"room", "beforeSeq", "limit"}
    assert messages["security"] == [{"apiKey": []}]

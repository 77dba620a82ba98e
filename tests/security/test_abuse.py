"""Limits and abuse over real sockets: connection counts, rooms, origins, frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from hubbub.server import ServerSettings
from tests.integration.test_limits import _masked_frame, _raw_websocket, _read_close_code
from tests.tokens import token, token_settings
from tests.wsclient import Client


async def _refused_status(url: str, **kwargs: Any) -> int:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url + "/", **kwargs)
        return refused.value.status


async def test_connections_per_address(start_hub) -> None:
    url = await start_hub(max_connections_per_ip=3)
    clients = [await Client.connect(url) for _ in range(3)]
    try:
        assert await _refused_status(url) == 429
        await clients[0].close()
        await asyncio.sleep(0.1)
        async with await Client.connect(url) as again:
            await again.join("r", "again")
    finally:
        for client in clients:
            await client.close()


async def test_connections_in_total(start_hub) -> None:
    url = await start_hub(max_connections=2)
    async with await Client.connect(url) as a, await Client.connect(url):
        assert await _refused_status(url) == 503
        await a.join("r", "a")  # those in are served as before


async def test_a_trusted_proxy_speaks_for_its_clients(start_hub) -> None:
    url = await start_hub(ServerSettings(trusted_proxy=["127.0.0.1"]), max_connections_per_ip=1)
    # The proxy appends the address it saw: the last entry is the client's; what comes
    # before it is whatever the client wrote.
    alice = {"X-Forwarded-For": "203.0.113.7"}
    mallory = {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}  # forges alice's first
    async with await Client.connect(url, headers=alice):
        assert await _refused_status(url, headers=alice) == 429
        async with await Client.connect(url, headers=mallory):
            # mallory counts as herself, whatever she writes first
            forged = {"X-Forwarded-For": "192.0.2.99, 198.51.100.1"}
            assert await _refused_status(url, headers=forged) == 429
    # without the trust, the header is nobody's word
    url = await start_hub(max_connections_per_ip=1)
    async with await Client.connect(url, headers=alice):
        assert await _refused_status(url, headers={"X-Forwarded-For": "203.0.113.9"}) == 429


async def test_behind_two_trusted_proxies_the_client_is_the_last_untrusted_entry(
    start_hub,
) -> None:
    # client -> CDN (10.0.0.2) -> nginx (127.0.0.1) -> hubbub: nginx appends the CDN's
    # address, the CDN the client's, and the client may have written anything before.
    url = await start_hub(
        ServerSettings(trusted_proxy=["127.0.0.1", "10.0.0.2"]), max_connections_per_ip=1
    )
    carol = {"X-Forwarded-For": "203.0.113.7, 198.51.100.5, 10.0.0.2"}
    async with await Client.connect(url, headers=carol):
        again = {"X-Forwarded-For": "198.51.100.5, 10.0.0.2"}
        assert await _refused_status(url, headers=again) == 429
        # two header lines are one list: the last line holds the last entries
        lines = [("X-Forwarded-For", "198.51.100.5"), ("X-Forwarded-For", "10.0.0.2")]
        assert await _refused_status(url, headers=CIMultiDict(lines)) == 429
        # the CDN's own address counts as no client's: dave, behind it, is another
        dave = {"X-Forwarded-For": "198.51.100.5, 203.0.113.8, 10.0.0.2"}
        async with await Client.connect(url, headers=dave):
            pass


async def test_a_forwarded_entry_that_is_not_an_address_counts_as_its_proxy(
    start_hub, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy that writes "unknown", or a client whose header the proxy passed on as
    # it was: such an entry is no address to count or to log, and what the client
    # wrote before it is not to be believed either. The connection is the proxy's.
    caplog.set_level(logging.INFO, logger="hubbub.server")
    url = await start_hub(ServerSettings(trusted_proxy=["127.0.0.1"]), max_connections_per_ip=1)
    async with await Client.connect(url, headers={"X-Forwarded-For": "unknown"}) as first:
        await first.join("r", "first")
        for entry in ("unknown", "203.0.113.7, 1.2.3.4 event=forged", "198.51.100.1:4242"):
            assert await _refused_status(url, headers={"X-Forwarded-For": entry}) == 429
    assert "event=forged" not in caplog.text
    assert "remote=unknown" not in caplog.text


async def test_a_handshake_flood_from_one_address_leaves_others_served(start_hub) -> None:
    url = await start_hub(max_connections_per_ip=20)
    async with aiohttp.ClientSession() as http:
        attempts = await asyncio.gather(
            *(http.ws_connect(url + "/") for _ in range(60)), return_exceptions=True
        )
        accepted = [ws for ws in attempts if isinstance(ws, aiohttp.ClientWebSocketResponse)]
        refused = [e for e in attempts if isinstance(e, aiohttp.WSServerHandshakeError)]
        assert len(accepted) == 20
        assert len(refused) == 40
        assert {error.status for error in refused} == {429}
        for ws in accepted:
            await ws.close()
    async with await Client.connect(url) as client:
        await client.join("r", "after")


async def test_rooms_in_total(start_hub) -> None:
    url = await start_hub(max_rooms=2)
    async with (
        await Client.connect(url) as a,
        await Client.connect(url) as b,
        await Client.connect(url) as c,
    ):
        await a.join("r1", "a")
        await b.join("r2", "b")
        await c.send({"type": "join-room", "room": "r3", "userId": "c"})
        await c.expect_error("too-many-rooms")
        await c.join("r1", "c")  # an existing room is no new room


async def test_origin_allow_list(start_hub) -> None:
    url = await start_hub(ServerSettings(allowed_origin=["https://app.example.com"]))
    assert await _refused_status(url, headers={"Origin": "https://evil.example.net"}) == 403
    assert await _refused_status(url, headers={"Origin": "https://app.example.com.evil"}) == 403
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            url + "/",
            headers={
                "Origin": "http://app.example.com",
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        ) as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "origin-not-allowed"
    async with await Client.connect(url, headers={"Origin": "https://app.example.com"}) as ok:
        await ok.join("r", "browser")
    async with await Client.connect(url) as no_origin:  # not a browser: no Origin to check
        await no_origin.join("r", "backend")


async def test_a_huge_frame_is_refused_from_its_header_alone(start_hub) -> None:
    url = await start_hub(max_frame_bytes=1024)
    reader, writer = await _raw_websocket(url)
    # announce 1 GiB, send none of it: the close must come without waiting for it
    writer.write(struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 30) + b"\x00\x00\x00\x00")
    await writer.drain()
    assert await _read_close_code(reader) == 1009
    writer.close()


async def test_deep_nesting_and_long_strings_are_refused_and_the_connection_lives(
    start_hub,
) -> None:
    url = await start_hub(max_json_depth=16, max_frame_bytes=200_000)
    async with await Client.connect(url) as client:
        await client.send('{"type":"chat","message":"x","extra":' + "[" * 20 + "]" * 20 + "}")
        await client.expect_error("too-deep")
        await client.send("[" * 90_000 + "]" * 90_000)
        await client.expect_error("too-deep")
        await client.send({"type": "join-room", "room": "r" * 129})
        await client.expect_error("too-large")
        await client.send({"type": "join-room", "room": "r", "userId": "u" * 65})
        await client.expect_error("too-large")
        await client.join("r", "fine")
        await client.send({"type": "chat", "message": "m" * 16_001})
        await client.expect_error("too-large")


async def test_a_flood_of_joins_is_rate_limited(start_hub) -> None:
    url = await start_hub(message_rate=5, message_burst=5, flood_disconnect_after=30)
    reader, writer = await _raw_websocket(url)
    for i in range(100):
        join = json.dumps({"type": "join-room", "room": f"r{i}", "userId": "u"}).encode()
        writer.write(_masked_frame(0x1, join))
    await writer.drain()
    assert await _read_close_code(reader) == 1008
    writer.close()
    async with await Client.connect(url) as other:
        await other.join("r0", "other")


async def test_in_token_mode_a_connection_that_proves_nothing_is_closed(start_hub) -> None:
    url = await start_hub(token_settings(), auth_timeout=0.5)
    async with await Client.connect(url) as idle, await Client.connect(url) as member:
        await member.join("team", token=token("member"))
        await idle.send({"type": "join-room", "room": "team", "token": "forged"})
        await idle.expect_error("token-invalid")
        assert await idle.closed_with() == 4001
        await member.nothing(within=1.0)  # a member who showed a token stays
        await member.send({"type": "ping", "ref": 1})
        await member.expect("pong")
    # a token in the handshake counts as shown
    protocols = ["hubbub", "hubbub.token." + token("early")]
    async with await Client.connect(url, protocols=protocols) as early:
        await early.nothing(within=1.0)
        await early.join("team")


async def test_in_open_mode_there_is_no_auth_deadline(start_hub) -> None:
    url = await start_hub(auth_timeout=0.3)
    async with await Client.connect(url) as client:
        await client.nothing(within=1.0)
        await client.join("r", "late")


async def test_an_ipv6_client_counts_by_its_slash_64(start_hub) -> None:
    url = await start_hub(ServerSettings(trusted_proxy=["127.0.0.1"]), max_connections_per_ip=2)
    same_network = [{"X-Forwarded-For": f"2001:db8:1:2::{n}"} for n in (1, 2, 3)]
    async with (
        await Client.connect(url, headers=same_network[0]),
        await Client.connect(url, headers=same_network[1]),
    ):
        assert await _refused_status(url, headers=same_network[2]) == 429
        async with await Client.connect(url, headers={"X-Forwarded-For": "2001:db8:1:3::1"}):
            pass


@dataclass
class _Socket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def served(self) -> bool:
        """Whether a keep-alive GET on this connection is answered 200."""
        self.writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            async with asyncio.timeout(5):
                head = await self.reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            return False
        return head.startswith(b"HTTP/1.1 200 ")

    async def dropped(self) -> bool:
        """Whether the server ended this connection, unasked and unanswered, within 2 s."""
        try:
            async with asyncio.timeout(2):
                return await self.reader.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


class _Sockets:
    """Raw connections to a server, all closed at the end."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.opened: list[_Socket] = []

    async def open(self) -> _Socket:
        socket = _Socket(*await asyncio.open_connection(self.host, self.port))
        self.opened.append(socket)
        return socket

    async def close(self) -> None:
        for socket in self.opened:
            socket.writer.close()
        for socket in self.opened:
            with contextlib.suppress(ConnectionError):
                await socket.writer.wait_closed()


async def test_connections_that_are_not_websockets_are_bounded_per_address(
    start_hub, caplog: pytest.LogCaptureFixture
) -> None:
    # Connections that wait for a request head, or serve HTTP and are kept alive: one
    # address may hold only so many, or it could hold every file descriptor.
    caplog.set_level(logging.INFO, logger="hubbub.server")
    url = await start_hub(ServerSettings(metrics_key="m"), max_http_connections_per_ip=3)
    sockets = _Sockets(url)
    try:
        kept = await sockets.open()
        assert await kept.served()
        silent = [await sockets.open() for _ in range(2)]
        assert await (await sockets.open()).dropped()
        assert "event=refused remote=127.0.0.1 reason=address-http-connection-limit" in (
            caplog.text
        )
        # those already held are served as before
        assert await silent[0].served()
        # one gone: its place is free. A WebSocket takes a place only for its handshake.
        silent[1].writer.close()
        await asyncio.sleep(0.2)
        async with await Client.connect(url) as client:
            await client.join("r", "ws")
            assert await (await sockets.open()).served()
            assert await (await sockets.open()).dropped()
        # another address is not held to 127.0.0.1's count
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as http:
            metrics = http.get(url + "/metrics", headers={"Authorization": "Bearer m"})
            async with metrics as response:
                text = await response.text()
        assert "\nhubbub_connections_dropped_total 2\n" in text
    finally:
        await sockets.close()


async def test_a_trusted_proxys_connections_are_not_counted(start_hub) -> None:
    url = await start_hub(
        ServerSettings(trusted_proxy=["127.0.0.1"]), max_http_connections_per_ip=1
    )
    sockets = _Sockets(url)
    try:
        held = [await sockets.open() for _ in range(3)]
        assert await held[0].served()
        assert await (await sockets.open()).served()
        assert not await held[1].dropped()
    finally:
        await sockets.close()


@pytest.mark.parametrize("path", ["/ws", "/y-webrtc"])
async def test_a_connection_upgraded_after_http_requests_no_longer_counts_as_http(
    start_hub, path: str
) -> None:
    # An upgrade that aiohttp serves: hubbub's own on a connection that carried a
    # request before it, or a front-end's. Once it is a WebSocket, the gate counts it
    # as one; its place among the address's HTTP connections is given back.
    url = await start_hub(ServerSettings(frontend=["y-webrtc"]), max_http_connections_per_ip=1)
    sockets = _Sockets(url)
    connector = aiohttp.TCPConnector(limit=1)  # one connection, reused
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(url + "/healthz") as response:
                assert response.status == 200
            async with http.ws_connect(url + path) as ws:
                assert not ws.closed
                assert await (await sockets.open()).served()
    finally:
        await sockets.close()

"""The WebSocket endpoint's own protocol over real sockets: the handshake read and
answered by hubbub, frames read and written by hubbub, everything else handed to
aiohttp on the same port."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import struct
from pathlib import Path

import aiohttp
import pytest

from hubbub.server import ServerSettings, http_protocol, start_server
from hubbub.server import websocket as websocket_module
from hubbub.server.app import HUB_SERVER
from hubbub.server.connection import Connection
from tests.integration.test_integer_bounds import assert_no_error_logged
from tests.integration.test_limits import (
    _masked_frame,
    _raw_websocket,
    _read_close_code,
    _read_frame,
)
from tests.wsclient import Client


def _frame(first: int, payload: bytes) -> bytes:
    """A masked client frame with the first byte as given (FIN and opcode)."""
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((first, 0x80 | len(payload))) + mask + body


async def _request(url: str, head: str) -> tuple[bytes, bytes]:
    """Send a raw request head; return the answer's head and what follows it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        async with asyncio.timeout(10):
            answer = await reader.read(65536)
            while b"\r\n\r\n" not in answer:
                more = await reader.read(65536)
                if not more:
                    break
                answer += more
    finally:
        writer.close()
    status, _, body = answer.partition(b"\r\n\r\n")
    return status, body


async def test_the_websocket_is_served_by_hubbubs_own_protocol(tmp_path: Path) -> None:
    """The fast path is on: each connection is a hubbub Connection that is its
    transport's protocol (no aiohttp response, reader or task behind it)."""
    runner, url = await start_server(ServerSettings(port=0, data_dir=tmp_path))
    try:
        server = runner.app[HUB_SERVER]
        async with await Client.connect(url) as a, await Client.connect(url, "/ws") as b:
            await a.join("r", "a")
            await b.join("r", "b")
            await a.expect("user-joined")
            assert len(server.connections) == 2
            for connection in server.connections:
                assert type(connection) is Connection
                assert connection.transport.get_protocol() is connection
    finally:
        await runner.cleanup()


async def test_a_fragmented_message_is_put_together(hub_url: str) -> None:
    reader, writer = await _raw_websocket(hub_url)
    join = json.dumps({"type": "join-room", "room": "r", "userId": "frag"}).encode()
    writer.write(_frame(0x01, join[:10]))  # text, not final
    writer.write(_frame(0x89, b"between"))  # a ping may come between fragments
    writer.write(_frame(0x00, join[10:20]))  # continuation
    writer.write(_frame(0x80, join[20:]))  # final continuation
    await writer.drain()
    opcode, payload = await _read_frame(reader)
    assert (opcode, payload) == (0xA, b"between")  # the pong, with the ping's data
    opcode, payload = await _read_frame(reader)
    assert opcode == 0x1
    assert json.loads(payload)["type"] == "room-joined"
    writer.close()


async def test_a_message_split_over_many_reads(hub_url: str) -> None:
    reader, writer = await _raw_websocket(hub_url)
    join = json.dumps({"type": "join-room", "room": "r", "userId": "slow", "pad": "x" * 500})
    frame = _masked_frame(0x1, join.encode())
    for byte in range(len(frame)):  # one byte at a time
        writer.write(frame[byte : byte + 1])
        await writer.drain()
        await asyncio.sleep(0)
    opcode, payload = await _read_frame(reader)
    assert opcode == 0x1
    assert json.loads(payload)["type"] == "room-joined"
    writer.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([b"\x81\x02hi"], 1002),  # not masked
        ([_frame(0xC1, b"{}")], 1002),  # RSV1 without an extension
        ([_frame(0x80, b"{}")], 1002),  # a continuation of nothing
        ([_frame(0x01, b"{"), _frame(0x81, b"}")], 1002),  # a new message mid-message
        ([_frame(0x83, b"")], 1002),  # a reserved opcode
        ([_frame(0x88, b"\x03\xed")], 1002),  # close code 1005 is never sent
        ([_frame(0x01, b"\xe2\x82"), _frame(0x80, b"\xff")], 1007),  # not UTF-8
    ],
)
async def test_a_broken_frame_closes_with_its_code(
    hub_url: str, frames: list[bytes], code: int
) -> None:
    reader, writer = await _raw_websocket(hub_url)
    writer.write(b"".join(frames))
    assert await _read_close_code(reader) == code
    writer.close()


async def test_a_client_close_is_answered_with_its_code(hub_url: str) -> None:
    reader, writer = await _raw_websocket(hub_url)
    writer.write(_frame(0x88, struct.pack("!H", 4321) + b"done"))
    assert await _read_close_code(reader) == 4321
    async with asyncio.timeout(10):
        assert await reader.read() == b""  # then the server ends the TCP connection
    writer.close()


async def test_compression_is_not_agreed_and_the_subprotocol_is(hub_url: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    head, _ = await _request(
        hub_url,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: other, hubbub\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Protocol: hubbub" in head.split(b"\r\n")
    assert b"Extensions" not in head


@pytest.mark.parametrize(
    "change",
    [("Version: 13", "Version: 8"), ("Connection: Upgrade", "Connection: close")],
)
async def test_an_invalid_handshake_is_refused_400(hub_url: str, change: tuple[str, str]) -> None:
    head = (
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    status, body = await _request(hub_url, head.replace(*change))
    assert status.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"]["code"] == "bad-handshake"


_UPGRADE = (
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize(
    "heads",
    [
        [_UPGRADE.replace("Connection:", "\xf8onnection:")],
        [_UPGRADE.replace("HTTP/1.1", "HTTP/1.1 x")],
        ["GET /api/rooms HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"],
        [
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        ],
        ["GET / HTTP/1.1\r\nHost: x\r\nCookie: " + "c" * 20_000 + "\r\n\r\n"],
        [
            "POST /api/rooms/r/broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            '\r\n5\r\n{"dat\r\nZZ\r\n'
        ],
    ],
    ids=[
        "bad-header-in-upgrade",
        "bad-request-line",
        "bad-header",
        "after-a-request",
        "too-long",
        "bad-chunk",
    ],
)
async def test_a_request_that_is_not_http_is_refused_400_and_logged_without_a_traceback(
    hub_url: str, heads: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Bad input is answered with the documented 400 and its JSON body, and costs
    the log one line, not a traceback (whichever parser, hubbub's or aiohttp's,
    found it: the last three go to aiohttp, after a request it served on the same
    connection, for a head longer than hubbub reads itself, or with a body)."""
    caplog.set_level(logging.INFO, "hubbub.server")
    host, port = hub_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(10):
            *served, bad = heads
            for head in served:  # answered in full before the next is sent
                writer.write(head.encode())
                status = await reader.readuntil(b"\r\n\r\n")
                assert status.startswith(b"HTTP/1.1 200 "), status
                length = next(
                    int(line.split(b":")[1])
                    for line in status.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
            writer.write(bad.encode("latin-1"))
            answer = await reader.read()
    finally:
        writer.close()
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.split(b" ")[1] == b"400", answer[:300]
    assert b"Content-Type: application/json" in status, status
    assert json.loads(body)["error"]["code"] == "bad-request", body
    assert_no_error_logged(caplog)
    assert any("status=400" in record.getMessage() for record in caplog.records)


async def test_an_http_connection_left_idle_is_closed(
    start_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP keep-alive connection that sends no next request is closed after
    ``KEEPALIVE_TIMEOUT`` (75 s; here 0.5), not held for aiohttp's hour."""
    monkeypatch.setattr(http_protocol, "KEEPALIVE_TIMEOUT", 0.5, raising=False)
    url = await start_hub()
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert b"Connection: close" not in head  # kept alive, for a next request
        async with asyncio.timeout(5):
            await reader.read()  # the rest of the body, then the end of the stream
        assert reader.at_eof()
    finally:
        writer.close()


async def test_responses_do_not_name_the_software_behind_them(hub_url: str) -> None:
    """No ``Server`` header tells a scanner which Python or aiohttp answers."""
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/", "/hubbub.js", "/api/nothing-here", "/no-such-page"):
            async with http.get(hub_url + path) as response:
                assert response.headers.get("Server") == "hubbub", path


async def test_an_upgrade_after_http_requests_on_one_connection(hub_url: str) -> None:
    """A client may send its upgrade on a keep-alive connection that served HTTP
    first: aiohttp has that connection, and hands it over."""
    connector = aiohttp.TCPConnector(limit=1)  # one connection, reused
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(2):
            async with http.get(hub_url + "/healthz") as response:
                assert response.status == 200
        ws = await http.ws_connect(hub_url + "/ws", protocols=["hubbub"])
        assert ws.protocol == "hubbub"
        await ws.send_str(json.dumps({"type": "join-room", "room": "r", "userId": "kept"}))
        message = await ws.receive(timeout=10)
        assert json.loads(message.data)["type"] == "room-joined"
        async with await Client.connect(hub_url) as other:
            await other.join("r", "other")
            seen = json.loads((await ws.receive(timeout=10)).data)
            assert seen["type"] == "user-joined"
            await ws.close()
            assert await other.recv() == {"type": "user-left", "userId": "kept"}


async def test_a_connection_that_sends_no_head_is_dropped(
    hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "HANDSHAKE_TIMEOUT", 0.3)
    host, port = hub_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()


async def test_a_server_close_waits_for_the_answer_then_ends(start_hub) -> None:
    url = await start_hub(message_rate=1, message_burst=1, flood_disconnect_after=3)
    reader, writer = await _raw_websocket(url)
    for _ in range(5):
        writer.write(_masked_frame(0x1, b'{"type":"ping","ref":1}'))
    await writer.drain()
    assert await _read_close_code(reader) == 1008
    writer.write(_frame(0x88, struct.pack("!H", 1008)))  # our answer
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    writer.close()

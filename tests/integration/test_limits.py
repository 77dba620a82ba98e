"""Limits that close the connection, liveness, and the slow reader, over real sockets."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time

import aiohttp

from tests.wsclient import Client


async def test_oversized_frame_closes_with_1009_and_the_room_hears(start_hub) -> None:
    url = await start_hub(max_frame_bytes=1024)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "a")
        await b.join("r", "b")
        await a.expect("user-joined")
        await b.send({"type": "chat", "message": "x" * 900})
        assert (await a.recv())["type"] == "chat"
        await b.send({"type": "chat", "message": "x" * 2000})
        assert await b.closed_with() == 1009
        assert await a.recv() == {"type": "user-left", "userId": "b"}


async def test_invalid_utf8_closes_with_1007(hub_url: str) -> None:
    reader, writer = await _raw_websocket(hub_url)
    writer.write(_masked_frame(0x1, b'{"type":"chat","message":"\xff"}'))
    code = await _read_close_code(reader)
    assert code == 1007
    writer.close()


async def test_sustained_flood_closes_with_1008(start_hub) -> None:
    # One new message allowed every 10 s: however slowly a busy machine sends the
    # flood, only the burst gets through, and the drops come in one long run.
    url = await start_hub(message_rate=0.1, message_burst=5, flood_disconnect_after=50)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "a")
        await b.join("r", "b")
        await a.expect("user-joined")
        for _ in range(200):
            await b.send({"type": "chat", "message": "spam"})
        assert await b.closed_with() == 1008
        received = []
        while True:
            message = await a.recv()
            if message["type"] == "user-left":
                break
            received.append(message)
        assert 1 <= len(received) <= 6  # the burst got through, the flood did not


async def test_silent_client_is_dropped_and_the_room_hears(start_hub) -> None:
    url = await start_hub(ping_interval=0.2, ping_timeout=0.3, resume_grace=0.5)
    async with (
        await Client.connect(url) as watcher,
        await Client.connect(url, autoping=False) as dead,
    ):
        await watcher.join("r", "watcher")
        await dead.join("r", "dead")
        await watcher.expect("user-joined")
        started = time.monotonic()
        # "dead" never reads again, so it never answers a ping
        # A lost connection: the session waits resume_grace for a resume, then leaves.
        away = await watcher.recv(timeout=30)
        assert away == {
            "type": "participant-updated",
            "userId": "dead",
            "connection": "reconnecting",
        }
        left = await watcher.recv(timeout=30)
        assert left == {"type": "user-left", "userId": "dead"}
        # ping_interval + ping_timeout + grace + sweeps, with room for a busy machine:
        # what matters is that it goes at all, where nothing else would drop it.
        assert time.monotonic() - started < 0.2 + 0.3 + 0.5 + 10


async def test_quiet_client_that_answers_pings_stays(start_hub) -> None:
    # A ping timeout long enough that a busy machine's pauses never look like silence.
    url = await start_hub(ping_interval=0.1, ping_timeout=2.0)
    async with await Client.connect(url) as a, await Client.connect(url) as b:
        await a.join("r", "a")
        await b.join("r", "b")
        await a.expect("user-joined")
        # both read (so aiohttp answers pings) but send nothing for many ping intervals
        await asyncio.gather(a.nothing(within=3.0), b.nothing(within=3.0))
        await a.send({"type": "chat", "message": "still there?"})
        assert (await b.recv())["message"] == "still there?"


async def test_slow_reader_is_cut_off_without_slowing_the_room(start_hub) -> None:
    url = await start_hub(
        max_send_queue_bytes=256 * 1024, message_rate=10_000, message_burst=10_000
    )
    reader, writer = await _raw_websocket(url, receive_buffer=4096)
    try:
        writer.write(_masked_frame(0x1, b'{"type":"join-room","room":"r","userId":"slow"}'))
        await writer.drain()
        # in the room before the others come, so that what they hear is known
        opcode, payload = await _read_frame(reader)
        assert opcode == 0x1
        assert b'"room-joined"' in payload, payload
        async with await Client.connect(url) as sender, await Client.connect(url) as fast:
            await sender.join("r", "sender")
            await fast.join("r", "fast")
            await sender.expect("user-joined")
            chunk = "x" * 8000
            count = 600  # 4.8 MB: far more than the slow reader's socket buffers hold
            started = time.monotonic()
            got = 0
            left = None
            # In rounds that the fast reader keeps up with (16 messages, 128 KB: half
            # its queue bound), so that only the reader that never reads falls behind,
            # however slowly this machine runs the test's own client.
            for first in range(0, count, 16):
                for i in range(first, first + 16):
                    await sender.send({"type": "chat", "message": f"{i}:{chunk}"})
                while got < first + 16:
                    message = await fast.recv()
                    if message["type"] == "chat":
                        assert message["message"].startswith(f"{got}:")
                        got += 1
                    else:
                        left = message
            # Generous, for a busy machine: a room that waited for its slow reader
            # would not get 4.8 MB through at all.
            assert time.monotonic() - started < 60
            while left is None:
                message = await sender.recv()
                if message["type"] != "chat-ack":
                    left = message
            assert left == {"type": "user-left", "userId": "slow"}
        # the slow reader, reading at last, finds its close code after the backlog
        assert await _read_close_code(reader) == 4008
    finally:
        writer.close()


# -- a raw WebSocket client, for what aiohttp's client will not do -------------


async def _raw_websocket(
    url: str, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return header + mask + masked


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one unmasked frame from the server: its opcode and payload."""
    async with asyncio.timeout(30):
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        return first & 0x0F, await reader.readexactly(length)


async def _read_close_code(reader: asyncio.StreamReader) -> int | None:
    """Read frames until a close frame; return its code."""
    async with asyncio.timeout(30):
        while True:
            opcode, payload = await _read_frame(reader)
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


__all__ = ["aiohttp"]

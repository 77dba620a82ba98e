"""Idle WebSocket clients for ``bench.idle_cost``: each connects, joins a room and
then only answers the server's pings, as a browser's idle tab does.

Run by ``bench.idle_cost`` (inside the clients' network namespace); it reads commands
on stdin, one a line, and answers each on stdout with one line of JSON:

- ``start``: connect and join every client, then ``{"joined": n, "seconds": s}``;
- ``count``: ``{"pings": n, "open": n}``, the pings answered so far and the clients
  still connected;
- ``quit``: close every connection and exit.

``python -m bench.idle_clients --url ws://192.0.2.1:8000/ --clients 10000
[--per-room 10] [--local-address 192.0.2.2]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import uvloop

CONCURRENT_CONNECTS = 200
"""Connects outstanding at once."""
SERVER_START_TIMEOUT = 60.0


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payloads here are shorter than 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


class IdleClient(asyncio.Protocol):
    """One client: the handshake, a join, then a pong for every ping."""

    def __init__(self, fleet: Fleet, room: str, user_id: str) -> None:
        self.fleet = fleet
        self.join = json.dumps({"type": "join-room", "room": room, "userId": user_id})
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            f"GET {self.fleet.path} HTTP/1.1\r\nHost: {self.fleet.host}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self._fail(f"refused: {self.buffer[:40]!r}")
                return
            self.upgraded = True
            self.buffer = self.buffer[end + 4 :]
            assert self.transport is not None
            self.transport.write(_frame(0x1, self.join.encode()))
        self._frames()

    def _frames(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    break
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                break
            payload = buffer[start : start + length]
            buffer = buffer[start + length :]
            if opcode == 0x9:  # ping: answered at once
                assert self.transport is not None
                self.transport.write(_frame(0xA, payload))
                self.fleet.pings += 1
            elif opcode == 0x1 and not self.joined.done() and b'"room-joined"' in payload:
                self.joined.set_result(None)
            elif opcode == 0x8:
                self._fail("closed by the server")
        self.buffer = buffer

    def _fail(self, why: str) -> None:
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fleet.open -= 1
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"lost: {exc}"))


class Fleet:
    """Every client of this process."""

    def __init__(self, url: str, local_address: str | None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"
        self.local_address = local_address
        self.clients: list[IdleClient] = []
        self.pings = 0
        self.open = 0

    async def start(self, count: int, per_room: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        await self._server_listening()
        gate = asyncio.Semaphore(CONCURRENT_CONNECTS)
        started = time.monotonic()

        async def one(number: int) -> None:
            async with gate:
                client = IdleClient(self, f"idle-{number // per_room}", f"u{number}")
                local = (self.local_address, 0) if self.local_address else None
                await loop.create_connection(lambda: client, self.host, self.port, local_addr=local)
                self.open += 1
                self.clients.append(client)
                await asyncio.wait_for(client.joined, 60)

        await asyncio.gather(*(one(number) for number in range(count)))
        return {"joined": len(self.clients), "seconds": time.monotonic() - started}

    async def _server_listening(self) -> None:
        """Wait until the server accepts connections (it may still be starting)."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    def close(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.close()


async def serve(args: argparse.Namespace) -> None:
    fleet = Fleet(args.url, args.local_address)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def answer(value: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    while line := (await reader.readline()).decode().strip():
        if line == "start":
            answer(await fleet.start(args.clients, args.per_room))
        elif line == "count":
            answer({"pings": fleet.pings, "open": fleet.open})
        elif line == "quit":
            break
    fleet.close()
    await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--per-room", type=int, default=10)
    parser.add_argument("--local-address", default=None)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

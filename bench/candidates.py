"""What a WebSocket connection costs under three designs of the endpoint, side by side.

Each candidate is a minimal server in its own process, doing what hubbub's endpoint
does for a connection apart from the hub: answer the upgrade, read the client's
first text frame, write one reply, then hold the connection idle.

- ``aiohttp``: ``web.WebSocketResponse`` in a route handler (a request, a response,
  a reader, a writer and a handler task per connection), as hubbub was built;
- ``own``: hubbub's own protocol on uvloop: the head parsed by llhttp (httptools,
  ``hubbub.server.upgrade``), frames read and written by ``hubbub.server.frames``,
  one object per connection;
- ``picows``: picows's Cython server (``ws_create_server``), a listener per
  connection.

A picows client storm (``--connections`` in all, 200 at a time) connects, sends
one message and waits for the reply on each connection, which then stays open.
Figures per candidate: the server's CPU time per connection over the storm and its
RSS per connection once all are open (from /proc, as in the benchmarks).

    python -m bench.candidates --connections 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

CANDIDATES = ("aiohttp", "own", "picows")
REPLY = b'{"type":"room-joined","room":"r","userId":"u","participants":[]}'


# -- the candidate servers (each run as `python -m bench.candidates --serve NAME PORT`) ---


def _serve_aiohttp(port: int) -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False, protocols=("hubbub",))
        await ws.prepare(request)
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await ws.send_str(REPLY.decode())
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=4096)


def _serve_own(port: int) -> None:
    from hubbub.server import frames, upgrade

    reply = frames.text_frame(REPLY)

    class Connection(asyncio.Protocol):
        __slots__ = ("buffer", "transport")

        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.buffer: bytes = b""

        def data_received(self, data: bytes) -> None:
            data = self.buffer + data
            offset = 0
            while (head := frames.read_head(data, offset, 65536)) is not None:
                first, start, end = head
                if end > len(data):
                    break
                payload = frames.unmask(data[start + 4 : end], data[start : start + 4])
                offset = end
                if first & 0x0F == frames.TEXT and payload:
                    self.transport.write(reply)
            self.buffer = data[offset:]

    class Handshake(asyncio.Protocol):
        __slots__ = ("buffer", "transport")

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            end = upgrade.head_end(self.buffer)
            if end < 0:
                return
            request = upgrade.read_request(self.buffer[:end])
            if request is None or not request.is_websocket or request.handshake_problem():
                self.transport.close()
                return
            key = request.headers["sec-websocket-key"]
            self.transport.write(upgrade.switching_protocols(key, "hubbub"))
            connection = Connection(self.transport)
            self.transport.set_protocol(connection)
            if len(self.buffer) > end:
                connection.data_received(self.buffer[end:])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Handshake, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    import uvloop

    uvloop.run(main())


def _serve_picows(port: int) -> None:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    class Listener(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                transport.send(WSMsgType.TEXT, REPLY)

    async def main() -> None:
        server = await ws_create_server(lambda request: Listener(), "127.0.0.1", port)
        await server.serve_forever()

    import uvloop

    uvloop.run(main())


SERVERS = {"aiohttp": _serve_aiohttp, "own": _serve_own, "picows": _serve_picows}


# -- the storm ---------------------------------------------------------------------------


async def _storm(port: int, connections: int, outstanding: int) -> list[Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    class Client(WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.replied = asyncio.get_running_loop().create_future()

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT and not self.replied.done():
                self.replied.set_result(None)

    gate = asyncio.Semaphore(outstanding)
    held: list[Any] = []

    async def one() -> None:
        async with gate:
            transport, client = await ws_connect(Client, f"ws://127.0.0.1:{port}/")
            transport.send(WSMsgType.TEXT, b'{"type":"join-room","room":"r","userId":"u"}')
            await asyncio.wait_for(client.replied, 30)
            held.append(transport)

    await asyncio.gather(*(one() for _ in range(connections)))
    return held


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    from bench.procstat import cpu_times, rss_bytes

    return cpu_times(pid).total, rss_bytes(pid)


async def _measure(name: str, connections: int) -> dict[str, Any]:
    from bench.servers import _wait_listening, free_port

    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.candidates", "--serve", name, str(port)
    )
    try:
        await _wait_listening(port, process)
        await _storm(port, 50, 50)  # warm up: code paths loaded, allocator primed
        await asyncio.sleep(0.5)
        cpu_before, rss_before = _cpu_and_rss(process.pid)
        started = time.monotonic()
        held = await _storm(port, connections, 200)
        seconds = time.monotonic() - started
        await asyncio.sleep(1.0)
        cpu_after, rss_after = _cpu_and_rss(process.pid)
        for transport in held:
            transport.disconnect(graceful=False)
        return {
            "candidate": name,
            "connections": connections,
            "connections_per_s": round(connections / seconds),
            "server_cpu_us_per_connection": round(1e6 * (cpu_after - cpu_before) / connections),
            "rss_kb_per_connection": round((rss_after - rss_before) / connections / 1024, 2),
        }
    finally:
        process.terminate()
        await process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.candidates", description=__doc__)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--serve", nargs=2, metavar=("NAME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        SERVERS[args.serve[0]](int(args.serve[1]))
        return 0
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    for name in args.candidates.split(","):
        result = uvloop.run(_measure(name, args.connections))
        print(json.dumps({**result, "load_average": os.getloadavg()[0]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

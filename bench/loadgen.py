"""One load generator process: WebSocket clients that speak each server's wire format.

The runner starts several of these (``python -m bench.loadgen JOB``); each sets up
its share of a scenario's clients, then obeys one command a line on stdin and
answers each with one JSON line on stdout (see :func:`main`). The clients are
picows listeners on uvloop: a frame is handled in a plain callback, with no task
and no ``await`` per message, so that the generator costs less per message than
the servers it measures (its CPU use is in every report).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import msgspec
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

Message = dict[str, Any]
OnMessage = Callable[["Client", Message], None]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

CONNECT_TIMEOUT = 30.0
"""Seconds one client may take to connect (a storm of thousands queues up)."""
CONNECT_ATTEMPTS = 3
"""A connection reset or refused during the connect is tried again this many times
in all (a busy server's full accept queue, an overloaded machine); each attempt is
logged to the run's generators.log."""
PACE_TICK = 0.002
"""Seconds between two sends of a paced load (:meth:`Driver.pace`)."""


# -- wire formats ---------------------------------------------------------------


class Wire:
    """How one server kind carries the seed's messages.

    hubbub and the seed's Node server take the seed's JSON objects as they are.
    """

    name = "json"
    path = "/"

    def url(self, base: str) -> str:
        return base.rstrip("/") + self.path

    def encode(self, message: Message) -> bytes:
        return _encode(message)

    def opened(self, client: Client) -> None:
        client.ready()

    def template(self, message: Message, slot: str) -> Callable[[str], bytes]:
        """A fast encoder of ``message`` whose field ``slot`` (a number) changes.

        ``template(m, "t")(repr(now))`` is the encoding of ``m`` with ``m["t"] = now``
        (a top-level field, or one level down as ``"signal.t"``), built by joining
        bytes rather than encoding the whole message again.
        """
        marker = 1234567.891011
        sample = _nested_replace(message, slot, marker)
        prefix, suffix = self.encode(sample).split(repr(marker).encode())

        def encode(value: str) -> bytes:
            return prefix + value.encode() + suffix

        return encode

    def decode(self, client: Client, payload: bytes) -> Message | None:
        return _decode(payload)  # type: ignore[no-any-return]


class SocketIOWire(Wire):
    """Socket.IO 5 over Engine.IO 4 on a bare WebSocket (no polling, no upgrade).

    An event is the text frame ``42["event", {...}]``; the seed message's ``type``
    becomes the event name and its other fields the event's data.
    """

    name = "socketio"
    path = "/socket.io/?EIO=4&transport=websocket"

    def encode(self, message: Message) -> bytes:
        data = dict(message)
        return b"42" + _encode([data.pop("type"), data])

    def opened(self, client: Client) -> None:
        pass  # ready once the namespace is connected: see decode

    def decode(self, client: Client, payload: bytes) -> Message | None:
        if payload[:2] == b"42":
            event, data = _decode(payload[2:])
            data["type"] = event
            return data  # type: ignore[no-any-return]
        if payload == b"2":  # Engine.IO ping
            client.send_raw(b"3")
        elif payload[:1] == b"0":  # Engine.IO open: connect to the default namespace
            client.send_raw(b"40")
        elif payload[:2] == b"40":
            client.ready()
        return None


def _nested_replace(message: Message, slot: str, value: float) -> Message:
    head, _, rest = slot.partition(".")
    copy = dict(message)
    copy[head] = _nested_replace(copy[head], rest, value) if rest else value
    return copy


WIRES: dict[str, Wire] = {
    "hubbub": Wire(),
    "seed": Wire(),
    "socketio": SocketIOWire(),
    # The front-ends' scenarios make their own wire per client (its path).
    "frontends": Wire(),
}


# -- clients ----------------------------------------------------------------------


class Client(WSListener):  # type: ignore[misc]
    """One WebSocket client; ``on_message`` gets every message the server sends it.

    ``decode``, if given, replaces the wire's decoding of each text payload (a
    typed decoder that reads only the fields a scenario looks at costs the
    generator about half as much per message as a dict of them all)."""

    def __init__(
        self,
        wire: Wire,
        on_message: OnMessage,
        name: str = "",
        decode: Callable[[memoryview], Any] | None = None,
    ) -> None:
        super().__init__()
        self.wire = wire
        self.on_message = on_message
        self.name = name
        self.decode = decode
        self.transport: WSTransport | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()

    # picows callbacks
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.wire.opened(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            decode = self.decode
            if decode is not None:
                self.on_message(self, decode(frame.get_payload_as_memoryview()))
                return
            message = self.wire.decode(self, frame.get_payload_as_bytes())
            if message is not None:
                self.on_message(self, message)
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self._ready.done():
            self._ready.set_exception(ConnectionError("closed before it was ready"))

    # what scenarios call
    def ready(self) -> None:
        if not self._ready.done():
            self._ready.set_result(None)

    def send(self, message: Message) -> None:
        self.send_raw(self.wire.encode(message))

    def send_raw(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.send(WSMsgType.TEXT, payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.disconnect(graceful=False)


async def connect(
    wire: Wire,
    base_url: str,
    on_message: OnMessage,
    name: str = "",
    timeout: float = CONNECT_TIMEOUT,
    decode: Callable[[memoryview], Any] | None = None,
    attempts: int = CONNECT_ATTEMPTS,
    **options: Any,
) -> Client:
    """Open one client and wait until the server is ready for its messages;
    ``options`` go to picows's ``ws_connect`` (``local_addr``, buffer sizes...)."""

    def factory() -> Client:
        return Client(wire, on_message, name, decode)

    for attempt in range(attempts):
        try:
            async with asyncio.timeout(timeout):
                _, client = await ws_connect(
                    factory, wire.url(base_url), websocket_handshake_timeout=timeout, **options
                )
                if client is None:  # picows: the connection was lost in the handshake
                    raise ConnectionError("connection lost during the handshake")
                await client._ready
            return client  # type: ignore[no-any-return]
        except (ConnectionError, OSError) as error:
            if attempt + 1 == attempts:
                raise
            print(f"connect {name}: {error!r}; trying again", file=sys.stderr)
    raise AssertionError("unreachable")  # pragma: no cover


# -- the process --------------------------------------------------------------------


class Driver:
    """A scenario's clients in one generator process.

    ``setup`` connects them; every other command word ``W`` the runner sends calls
    ``on_W`` and replies with what it returns. ``mark`` and ``report`` bracket the
    measured window; the base class adds this process's CPU time over that window.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.params: dict[str, Any] = job["params"]
        self.wire = WIRES[job["wire"]]
        self.url: str = job["url"]
        self.urls: list[str] = job.get("urls") or [self.url]
        """One per node of the server (a cluster's nodes); clients are dealt over them."""
        self.index: int = job["index"]
        self.clients: list[Client] = []
        self._marked_cpu = 0.0
        self._marked_at = 0.0
        self._pacing: asyncio.Task[None] | None = None

    async def connect(
        self,
        on_message: OnMessage,
        name: str = "",
        node: int = 0,
        decode: Callable[[memoryview], Any] | None = None,
        **options: Any,
    ) -> Client:
        """A client on node ``node`` (modulo the number of nodes: 0 on a lone server);
        ``options`` go to :func:`connect`."""
        url = self.urls[node % len(self.urls)]
        client = await connect(self.wire, url, on_message, name, decode=decode, **options)
        self.clients.append(client)
        return client

    async def setup(self) -> dict[str, Any]:
        return {}

    async def on_mark(self) -> dict[str, Any]:
        self._marked_cpu = _own_cpu()
        self._marked_at = time.monotonic()
        self.mark()
        return {}

    def mark(self) -> None:
        """Start counting (the measured window opens)."""

    async def on_report(self) -> dict[str, Any]:
        # Read before the report is made: summing up the latencies is not load.
        cpu_seconds = _own_cpu() - self._marked_cpu
        wall_seconds = time.monotonic() - self._marked_at
        result = self.report()
        result["generator_cpu_seconds"] = cpu_seconds
        result["generator_wall_seconds"] = wall_seconds
        return result

    def report(self) -> dict[str, Any]:
        """What was counted since ``mark``."""
        return {}

    async def on_quit(self) -> dict[str, Any]:
        if self._pacing is not None:
            self._pacing.cancel()
        for client in self.clients:
            client.close()
        return {}

    def pace(self, rate: float, send: Callable[[int], None]) -> None:
        """Send at ``rate`` a second from now on, whatever comes back (an open loop):
        every ``PACE_TICK`` seconds, ``send(count)`` sends what is due by then."""

        async def pacing() -> None:
            loop = asyncio.get_running_loop()
            started = loop.time()
            sent = 0
            while True:
                await asyncio.sleep(PACE_TICK)
                due = int(rate * (loop.time() - started)) - sent
                if due > 0:
                    send(due)
                    sent += due

        self._pacing = asyncio.get_running_loop().create_task(pacing())


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _reply(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def _serve(job: dict[str, Any]) -> None:
    module = importlib.import_module(f"bench.scenarios.{job['scenario']}")
    driver: Driver = module.Driver(job)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        _reply({"ok": True, **await driver.setup()})
    except Exception as error:
        _reply({"ok": False, "error": f"setup: {type(error).__name__}: {error}"})
        return
    while line := (await reader.readline()).decode().strip():
        try:
            result = await getattr(driver, f"on_{line}")()
            _reply({"ok": True, **result})
        except Exception as error:
            _reply({"ok": False, "error": f"{line}: {type(error).__name__}: {error}"})
        if line == "quit":
            break


def main() -> None:
    job = json.loads(sys.argv[1])
    _raise_open_files_limit()
    import uvloop

    uvloop.run(_serve(job))


if __name__ == "__main__":
    main()

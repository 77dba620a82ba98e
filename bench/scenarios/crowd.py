"""A crowd: as many idle clients as one node can be given (100,000 at full size),
each in a room, then a broadcast to every room through the HTTP API.

The clients come from several generator processes, each from its own loopback
address (127.0.0.2, 127.0.0.3...), so that no source address runs out of
ephemeral ports. Measured: the time to connect and join them all, the server's
RSS per connection and in all, its CPU use while they are idle, and (hubbub,
whose HTTP API can send it) the time from the first broadcast request until
every client has the broadcast.

A machine whose open-files hard limit is lower than the clients asked for holds
as many as it allows (the report says so): the server needs one file per client.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import aiohttp

from bench.loadgen import Client, Message
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, Window, generator_figures, split
from bench.servers import BENCH_API_KEY, RunningServer

JOIN_TIMEOUT = 600.0
SETTLE_SECONDS = 3.0
PER_ROOM = 10
BROADCAST_CONCURRENCY = 64
"""HTTP requests in flight at once while broadcasting to every room."""
BROADCAST_TIMEOUT = 300.0
FILES_KEPT_BACK = 1000
"""Open files left free when the clients are counted against the open-files
limit: the server's own files, the warm-up clients (20 a generator) and the
broadcast's HTTP connections."""
PROJECTED_CLIENTS = 100_000


class Crowd(Scenario):
    name = "crowd"
    title = "A crowd: idle clients by the hundred thousand, and a broadcast to all"
    description = (
        "Clients connect (400 at a time across the generators, each generator process "
        "on its own loopback address 127.0.0.x), join rooms of 10, then stay idle. RSS per "
        "connection is the growth of the server's resident memory over the number of "
        "clients; RSS at 100,000 is measured, or projected from it when the machine's "
        "open-files limit holds fewer (see the notes); idle CPU is the server's CPU use over "
        "20 s of quiet (one `ping_interval`: every client is pinged once, and answers), "
        "and of it, the time in the kernel (on loopback a ping's write also carries the "
        "client's side of TCP). "
        "Then a `broadcast` is posted to every room through hubbub's HTTP API "
        f"({BROADCAST_CONCURRENCY} requests at a time): the time from the first request until "
        "every client has it (the seed server has no such API)."
    )
    columns = (
        Column("clients", "clients", digits=0),
        Column("connect_seconds", "time to connect all", "s", 1, lower_is_better=True),
        Column("rss_kb_per_connection", "RSS/connection", "KB", 1, True, True),
        Column("rss_mb", "server RSS", "MB", 0),
        Column("rss_mb_100k", "RSS at 100,000", "MB", 0, True, True),
        Column("idle_cpu_pct", "idle CPU", "%", 1, may_be_zero=True),
        Column("idle_cpu_kernel_pct", "of which kernel", "%", 1, may_be_zero=True),
        Column(
            "idle_cpu_pct_100k",
            "idle CPU at 100,000",
            "%",
            1,
            lower_is_better=True,
            may_be_zero=True,
        ),
        Column(
            "broadcast_seconds",
            "broadcast reaches all",
            "s",
            2,
            plot=True,
            lower_is_better=True,
            servers=("hubbub", "hubbub-ref"),
        ),
    )
    targets = (
        Target("rss_mb_100k", "<=", value=1000.0),
        Target("idle_cpu_pct_100k", "<=", value=5.0),
    )
    servers = ("hubbub", "hubbub-ref", "seed")

    def cases(self, size: str) -> list[Case]:
        clients, generators, quiet = {
            "smoke": (200, 2, 1.0),
            "quick": (10_000, 2, 20.0),
            "full": (100_000, 6, 20.0),
        }[size]
        params = {"clients": clients, "generators": generators, "quiet_seconds": quiet}
        return [Case(f"{clients:,} clients", params)]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        clients = min(p["clients"], (hard - FILES_KEPT_BACK) // PER_ROOM * PER_ROOM)
        if clients < p["clients"]:
            note = (
                f"crowd: {clients:,} clients instead of {p['clients']:,}: the open-files hard "
                f"limit here is {hard:,} (docs/deploy.md says how to raise it)"
            )
            if note not in run.notes:
                run.notes.append(note)
        # A generator process holds at most its own open-files limit of clients.
        processes = max(p["generators"], -(-clients // (hard - FILES_KEPT_BACK)))
        rooms = split(range(clients // PER_ROOM), processes)
        generators = await run.generators(
            self,
            server,
            [
                {
                    "rooms": part,
                    "per_room": PER_ROOM,
                    "outstanding": max(1, 400 // processes),
                    "local_address": f"127.0.0.{2 + index}",
                }
                for index, part in enumerate(rooms)
            ],
        )
        try:
            await asyncio.sleep(SETTLE_SECONDS / 3)
            baseline = server.rss()
            started = time.monotonic()
            reports = await generators.command("run", timeout=JOIN_TIMEOUT)
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
            loaded = server.rss()
            window = Window(server)
            window.open()
            await asyncio.sleep(p["quiet_seconds"])
            window.close()
            loaded = max(loaded, server.rss())
            broadcast_seconds = None
            if server.kind.wire == "hubbub":
                await generators.command("expect")
                first = time.monotonic()
                names = [f"crowd-{room}" for part in rooms for room in part]
                await _broadcast(server.url.replace("ws://", "http://"), names)
                arrivals = await generators.command("received", timeout=BROADCAST_TIMEOUT)
                broadcast_seconds = max(r["last"] for r in arrivals) - first
            reports = await generators.command("report")
        finally:
            await generators.close()
        joined = sum(r["clients"] for r in reports)
        per_connection = (loaded - baseline) / joined
        idle_cpu_pct = 100.0 * window.cpu.total / window.seconds
        # Over the quiet window: a ping is a write, a pong a read.
        idle_reads, idle_writes, _ = window.io["server"]
        return {
            "clients": joined,
            "connect_seconds": connect_seconds,
            "rss_baseline_mb": baseline / 1e6,
            "rss_mb": loaded / 1e6,
            "rss_kb_per_connection": per_connection / 1024,
            "rss_mb_100k": (
                loaded / 1e6
                if joined >= PROJECTED_CLIENTS
                else (baseline + per_connection * PROJECTED_CLIENTS) / 1e6
            ),
            "idle_cpu_pct": idle_cpu_pct,
            "idle_cpu_kernel_pct": 100.0 * window.cpu.system / window.seconds,
            "idle_reads": idle_reads,
            "idle_writes": idle_writes,
            # Measured with 100,000 clients, or projected from the clients held: idle
            # work (liveness pings) grows with them.
            "idle_cpu_pct_100k": idle_cpu_pct * max(1.0, PROJECTED_CLIENTS / joined),
            "broadcast_seconds": broadcast_seconds,
            **generator_figures(reports),
        }


async def _broadcast(base: str, rooms: list[str]) -> None:
    """``POST /api/rooms/{room}/broadcast`` to every room, a few at a time."""
    headers = {"Authorization": f"Bearer {BENCH_API_KEY}"}
    pending = iter(rooms)
    connector = aiohttp.TCPConnector(limit=BROADCAST_CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def worker() -> None:
            for room in pending:
                url = f"{base}/api/rooms/{room}/broadcast"
                async with http.post(url, json={"event": "crowd", "data": {}}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"broadcast to {room}: {response.status}")

        await asyncio.gather(*(worker() for _ in range(BROADCAST_CONCURRENCY)))


class Driver(BaseDriver):
    """Joins rooms of ``per_room`` from ``local_address``; a room is complete once
    each member is known in (as in the idle scenario). Then counts broadcasts."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.known_in: dict[str, set[str]] = {}
        self.complete: dict[str, asyncio.Future[None]] = {}
        self.joined = 0
        self.broadcasts = 0
        self.expected = 0
        self.last = 0.0
        self.all_received: asyncio.Future[None] | None = None

    def on_message(self, client: Client, message: Message) -> None:
        kind = message["type"]
        if kind == "broadcast":
            self.broadcasts += 1
            self.last = time.monotonic()
            waiting = self.all_received
            if self.broadcasts >= self.expected and waiting is not None and not waiting.done():
                waiting.set_result(None)
            return
        if kind != "user-joined":
            return
        room, _, user = client.name.rpartition("/")
        known = self.known_in[room]
        known.add(user)
        known.add(message["userId"])
        if len(known) == self.params["per_room"] and not self.complete[room].done():
            self.complete[room].set_result(None)

    async def _fill(self, rooms: list[str], outstanding: int) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(outstanding)
        for room in rooms:
            self.known_in[room] = set()
            self.complete[room] = loop.create_future()
        local = (self.params["local_address"], 0)

        async def member(room: str, number: int) -> None:
            async with gate:
                # Small read buffers: these clients read little, and there are many.
                client = await self.connect(
                    self.on_message,
                    f"{room}/u{number}",
                    local_addr=local,
                    read_buffer_init_size=1024,
                )
                client.send({"type": "join-room", "room": room, "userId": f"u{number}"})

        await asyncio.gather(
            *(member(room, n) for n in range(self.params["per_room"]) for room in rooms)
        )
        await asyncio.wait_for(asyncio.gather(*self.complete.values()), JOIN_TIMEOUT)

    async def setup(self) -> dict[str, Any]:
        await self._fill([f"warm-{self.index}-{n}" for n in range(2)], 20)
        return {}

    async def on_run(self) -> dict[str, Any]:
        before = len(self.clients)
        await self._fill(
            [f"crowd-{room}" for room in self.params["rooms"]], self.params["outstanding"]
        )
        self.joined = len(self.clients) - before
        return {"clients": self.joined}

    async def on_expect(self) -> dict[str, Any]:
        self.broadcasts = 0
        self.expected = self.joined
        self.all_received = asyncio.get_running_loop().create_future()
        return {}

    async def on_received(self) -> dict[str, Any]:
        assert self.all_received is not None
        await asyncio.wait_for(self.all_received, BROADCAST_TIMEOUT)
        return {"last": self.last, "broadcasts": self.broadcasts}

    def report(self) -> dict[str, Any]:
        return {"clients": self.joined}

"""Idle connections: many clients connected and joined, then quiet.

The server's resident memory is read once a few warm-up clients are in (so the
code paths are loaded and the allocator primed), then again after every client has
connected and joined a room of 10 and the server has settled. The difference over
the number of clients is the memory one connection costs. Also shown: the server's
CPU use while everyone is idle (its timers: pings, liveness sweeps).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.loadgen import Client, Message
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, Window, generator_figures, split
from bench.servers import RunningServer

JOIN_TIMEOUT = 300.0
WARM_UP_ROOMS = 2
SETTLE_SECONDS = 3.0


class Idle(Scenario):
    name = "idle"
    title = "Idle connections: memory per connection"
    description = (
        "Clients connect (200 at a time across the generators), join rooms of 10, then "
        "stay idle. RSS per connection is the growth of the server's resident memory "
        "over the number of clients, from a baseline taken with a few warm-up clients "
        "connected; idle CPU is the server's CPU use over a quiet stretch after that."
    )
    columns = (
        Column("rss_kb_per_connection", "RSS/connection", "KB", 1, True, True),
        Column("rss_mb", "server RSS", "MB", 0),
        Column("idle_cpu_pct", "idle CPU", "%", 1, may_be_zero=True),
        Column("connect_seconds", "time to connect all", "s", 1),
    )
    targets = (
        Target("rss_kb_per_connection", "<=", value=12.0),
        Target("rss_kb_per_connection", "<="),
    )

    def cases(self, size: str) -> list[Case]:
        clients, generators, quiet = {
            "smoke": (100, 2, 1.0),
            "quick": (2000, 2, 3.0),
            "full": (10_000, 4, 10.0),
        }[size]
        params = {
            "clients": clients,
            "per_room": 10,
            "outstanding": 200,
            "generators": generators,
            "quiet_seconds": quiet,
        }
        return [Case(f"{clients:,} clients", params)]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        rooms = split(range(p["clients"] // p["per_room"]), p["generators"])
        generators = await run.generators(
            self,
            server,
            [
                {
                    "rooms": part,
                    "per_room": p["per_room"],
                    "outstanding": p["outstanding"] // p["generators"],
                }
                for part in rooms
            ],
        )
        try:
            await asyncio.sleep(SETTLE_SECONDS / 3)
            baseline = server.rss()
            started = time.monotonic()
            await generators.command("mark")
            reports = await generators.command("run")
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(SETTLE_SECONDS)
            loaded = server.rss()
            window = Window(server)
            window.open()
            await asyncio.sleep(p["quiet_seconds"])
            window.close()
            reports = await generators.command("report")
            loaded = max(loaded, server.rss())
        finally:
            await generators.close()
        clients = sum(r["clients"] for r in reports)
        return {
            "clients": clients,
            "rss_baseline_mb": baseline / 1e6,
            "rss_mb": loaded / 1e6,
            "rss_kb_per_connection": (loaded - baseline) / clients / 1024,
            "idle_cpu_pct": 100.0 * window.cpu.total / window.seconds,
            "connect_seconds": connect_seconds,
            **generator_figures(reports),
        }


class Driver(BaseDriver):
    """Joins rooms of ``per_room``; a room is complete once each member is known in:
    a member that sees someone join was in first, and the one it sees is in too."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.known_in: dict[str, set[str]] = {}
        self.complete: dict[str, asyncio.Future[None]] = {}
        self.joined = 0

    async def _fill(self, rooms: list[str], per_room: int, outstanding: int) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(outstanding)
        for room in rooms:
            self.known_in[room] = set()
            self.complete[room] = loop.create_future()

        def on_message(client: Client, message: Message) -> None:
            if message["type"] != "user-joined":
                return
            room = client.name.rpartition("/")[0]
            known = self.known_in[room]
            known.add(client.name.rpartition("/")[2])
            known.add(message["userId"])
            if len(known) == per_room and not self.complete[room].done():
                self.complete[room].set_result(None)

        async def member(room: str, number: int) -> None:
            async with gate:
                client = await self.connect(on_message, f"{room}/u{number}")
                client.send({"type": "join-room", "room": room, "userId": f"u{number}"})

        await asyncio.gather(
            *(member(room, number) for number in range(per_room) for room in rooms)
        )
        await asyncio.wait_for(asyncio.gather(*self.complete.values()), JOIN_TIMEOUT)

    async def setup(self) -> dict[str, Any]:
        rooms = [f"warm-{self.index}-{n}" for n in range(WARM_UP_ROOMS)]
        await self._fill(rooms, 10, 20)
        return {}

    async def on_run(self) -> dict[str, Any]:
        before = len(self.clients)
        rooms = [f"idle-{room}" for room in self.params["rooms"]]
        await self._fill(rooms, self.params["per_room"], self.params["outstanding"])
        self.joined = len(self.clients) - before
        return {"clients": self.joined}

    def report(self) -> dict[str, Any]:
        return {"clients": self.joined}

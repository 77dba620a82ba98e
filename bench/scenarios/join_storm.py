"""Join storm: many clients connect and join rooms as fast as they can.

Like a reconnect storm after a restart. Each room has two watchers, joined before
the storm; then every joiner opens a WebSocket and sends ``join-room``, with a
bounded number of joins outstanding per generator process. A join is done when
it is confirmed: by ``room-joined`` for hubbub (the seed protocol has no such
reply), by the first watcher's ``user-joined`` for the baselines (recorded for
hubbub too). Latency runs from the start of the connect to that confirmation.
Figures: joins/s (all joins over the whole storm), p50/p99 join latency, server
CPU per join.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import stats
from bench.loadgen import Client, Message
from bench.loadgen import Driver as BaseDriver
from bench.scenario import (
    Case,
    Column,
    Run,
    Scenario,
    Target,
    Window,
    by_loadgen,
    cpu_parts,
    generator_figures,
    split,
)
from bench.servers import RunningServer

JOIN_TIMEOUT = 60.0


class JoinStorm(Scenario):
    name = "join_storm"
    title = "Join storm: connect and join"
    description = (
        "Clients open a WebSocket and join a room (rooms of 10 joiners, plus 2 watchers "
        "joined beforehand), with 200 joins outstanding at any time across the generators. "
        "A join counts when confirmed: `room-joined` for hubbub, the watcher's `user-joined` "
        "for the baselines (whose protocol has no reply to the joiner). joins/s is all joins "
        "over the whole storm; latency runs from the start of the connect."
    )
    columns = (
        Column("joins_per_s", "joins/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 1),
        Column("p99_ms", "p99", "ms", 1, plot=True, lower_is_better=True),
        Column("watcher_p99_ms", "p99 seen by a member", "ms", 1),
        Column("server_cpu_us_per_join", "server CPU/join", "µs", 0, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )
    targets = (
        Target("joins_per_s", ">=", 1.5),
        Target("server_cpu_us_per_join", "<="),
    )

    def cases(self, size: str) -> list[Case]:
        joins, generators = {"smoke": (200, 2), "quick": (2000, 2), "full": (10_000, 2)}[size]
        params = {"joins": joins, "per_room": 10, "outstanding": 200, "generators": generators}
        return by_loadgen(f"{joins:,} joins", params)

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        rooms = split(range(p["joins"] // p["per_room"]), p["generators"])
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
            p["loadgen"],
        )
        try:
            window = Window(server)
            window.open()
            await generators.command("mark")
            await generators.command("run")
            reports = await generators.command("report")
            window.close()
        finally:
            await generators.close()
        joins = sum(r["joins"] for r in reports)
        storm_seconds = max(r["last_done"] for r in reports) - min(
            r["first_start"] for r in reports
        )
        watcher = stats.summary((r["watcher_latency"] for r in reports), 0.99)
        return {
            "joins": joins,
            "storm_seconds": storm_seconds,
            "joins_per_s": joins / storm_seconds,
            **stats.summary((r["latency"] for r in reports), 0.5, 0.99),
            "watcher_p99_ms": watcher["p99_ms"],
            "server_cpu_us_per_join": 1e6 * window.cpu.total / max(joins, 1),
            "server_cpu_pct": 100.0 * window.cpu.total / storm_seconds,
            **cpu_parts(window),
            **generator_figures(reports),
        }


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.confirmed_by_reply = job["wire"] == "hubbub"
        self.started: dict[str, float] = {}  # "room:user" -> when its connect began
        self.watched: set[str] = set()
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.latencies: list[float] = []
        self.watcher_latencies: list[float] = []
        self.first_start = 0.0
        self.last_done = 0.0

    async def setup(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()

        async def watch(room: int) -> None:
            in_room = loop.create_future()

            def on_message(client: Client, message: Message) -> None:
                if message["type"] != "user-joined":
                    return
                if not in_room.done():
                    in_room.set_result(None)  # whoever sees the other, both are in
                self._seen_by_watcher(f"{room}:{message['userId']}")

            for watcher in ("w1", "w2"):
                client = await self.connect(on_message, watcher)
                client.send({"type": "join-room", "room": f"storm-{room}", "userId": watcher})
            await asyncio.wait_for(in_room, JOIN_TIMEOUT)

        await asyncio.gather(*(watch(room) for room in self.params["rooms"]))
        return {}

    def _seen_by_watcher(self, key: str) -> None:
        started = self.started.get(key)
        if started is None or key in self.watched:
            return
        now = time.monotonic()
        self.watched.add(key)
        self.watcher_latencies.append(now - started)
        if not self.confirmed_by_reply:
            self._done(key, now)

    def _done(self, key: str, now: float) -> None:
        future = self.pending.pop(key, None)
        if future is not None and not future.done():
            self.latencies.append(now - self.started[key])
            self.last_done = max(self.last_done, now)
            future.set_result(None)

    def _on_joiner_message(self, client: Client, message: Message) -> None:
        if message["type"] == "room-joined" and self.confirmed_by_reply:
            self._done(client.name, time.monotonic())

    async def on_run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.params["outstanding"])

        async def join(room: int, number: int) -> None:
            key = f"{room}:j{number}"
            async with gate:
                future = self.pending[key] = loop.create_future()
                self.started[key] = time.monotonic()
                client = await self.connect(self._on_joiner_message, key)
                client.send({"type": "join-room", "room": f"storm-{room}", "userId": f"j{number}"})
                await asyncio.wait_for(future, JOIN_TIMEOUT)

        self.first_start = time.monotonic()
        await asyncio.gather(
            *(
                join(room, number)
                for number in range(self.params["per_room"])
                for room in self.params["rooms"]
            )
        )
        return {}

    def report(self) -> dict[str, Any]:
        return {
            "joins": len(self.latencies),
            "first_start": self.first_start,
            "last_done": self.last_done,
            "latency": stats.histogram(self.latencies),
            "watcher_latency": stats.histogram(self.watcher_latencies),
        }

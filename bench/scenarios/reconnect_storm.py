"""A reconnect storm: every client connected and in its room, the server killed
(``kill -9``: no close frame, no ``reconnect``), and started again on the same
port and data. Each client comes back as hubbub's SDKs do: the connection is
seen lost, then attempts with exponential backoff and full jitter
(``hubbub.client.backoff.Backoff``: the first within 0.5 s, the bound doubling to
30 s), each a connect and a ``join-room`` of its room until ``room-joined``.

Figures: the time from the kill until every client is back in its room (and from
the new process listening), the percentiles of each client's time back, the
most attempts one client needed, and how many never came back within
``STORM_TIMEOUT`` (given up).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import stats
from bench.loadgen import Client, Message
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, split
from bench.servers import RunningServer
from hubbub.client.backoff import Backoff

PER_ROOM = 10
JOIN_TIMEOUT = 120.0
STORM_TIMEOUT = 60.0
"""Seconds after the kill by which a client not back in its room has given up."""
ATTEMPT_TIMEOUT = 10.0
"""Seconds one attempt (connect, join, room-joined) may take before the next."""


class ReconnectStorm(Scenario):
    name = "reconnect_storm"
    title = "Reconnect storm: kill -9 and restart"
    description = (
        "Clients connect and join rooms of 10; the server is killed with SIGKILL and "
        "started again on the same port and data. Every client sees its connection lost "
        "and comes back as hubbub's SDKs do (exponential backoff with full jitter, first "
        "bound 0.5 s, doubling to 30 s), connecting and joining its room again until "
        "`room-joined`. Times run from the kill."
    )
    columns = (
        Column("clients", "clients", digits=0),
        Column("restart_seconds", "kill to listening", "s", 2),
        Column("back_seconds", "all back", "s", 2, plot=True, lower_is_better=True),
        Column("p50_ms", "p50 back", "ms", 0),
        Column("p99_ms", "p99 back", "ms", 0, lower_is_better=True),
        Column("max_attempts", "most attempts", digits=0),
        Column("gave_up", "given up", digits=0, lower_is_better=True, may_be_zero=True),
    )
    targets = (
        Target("back_seconds", "<=", value=15.0),
        Target("gave_up", "<=", value=0.0),
    )
    servers = ("hubbub", "hubbub-ref")

    def cases(self, size: str) -> list[Case]:
        clients, generators = {
            "smoke": (100, 2),
            "quick": (2_000, 2),
            "full": (10_000, 4),
        }[size]
        return [Case(f"{clients:,} clients", {"clients": clients, "generators": generators})]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        rooms = split(range(p["clients"] // PER_ROOM), p["generators"])
        generators = await run.generators(
            self, server, [{"rooms": part, "outstanding": 200 // p["generators"]} for part in rooms]
        )
        restarted: RunningServer | None = None
        try:
            await generators.command("arm")
            killed = time.monotonic()
            server.process.kill()
            await server.process.wait()
            port = int(server.url.rsplit(":", 1)[1])
            restarted = await server.kind.start(run.work_dir, port=port, data_dir=server.data_dir)
            listening = time.monotonic()
            reports = await generators.command("back", timeout=STORM_TIMEOUT + 30)
        finally:
            if restarted is not None:
                await restarted.stop()
            await generators.close()
        back = [r["last_back"] for r in reports if r["last_back"]]
        times = stats.summary((r["latency"] for r in reports), 0.5, 0.99)
        return {
            "clients": sum(r["clients"] for r in reports),
            "restart_seconds": listening - killed,
            "back_seconds": (max(back) - killed) if back else None,
            "back_after_listening_seconds": (max(back) - listening) if back else None,
            **times,
            "max_attempts": max(r["max_attempts"] for r in reports),
            "gave_up": sum(r["gave_up"] for r in reports),
        }


class Driver(BaseDriver):
    """Clients in rooms of ``PER_ROOM`` that come back after losing the server."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.armed = False
        self.killed_at = 0.0
        self.members: dict[str, str] = {}  # client name -> room
        self.joined: dict[str, asyncio.Future[None]] = {}
        self.away: set[str] = set()
        self.back_times: list[float] = []
        self.last_back = 0.0
        self.max_attempts = 0
        self.gave_up = 0
        self.rejoins: set[asyncio.Task[None]] = set()
        self.all_back: asyncio.Future[None] | None = None

    def on_message(self, client: Client, message: Message) -> None:
        if message["type"] == "room-joined":
            future = self.joined.get(client.name)
            if future is not None and not future.done():
                future.set_result(None)

    async def _join(self, name: str, timeout: float, attempts: int = 3) -> Client:
        """Connect and join ``name``'s room; returns once ``room-joined`` came.
        ``attempts``: connects tried at once when refused (one, in the storm:
        the backoff decides when the next is made)."""
        room = self.members[name]
        self.joined[name] = asyncio.get_running_loop().create_future()
        client = await self.connect(self.on_message, name, timeout=timeout, attempts=attempts)
        client.send({"type": "join-room", "room": room, "userId": name.rpartition("/")[2]})
        try:
            await asyncio.wait_for(self.joined[name], timeout)
        except TimeoutError:
            client.close()
            raise
        # From now on, this is the connection whose loss sends the client back.
        client.closed.add_done_callback(lambda _, name=name: self._lost(name))
        return client

    async def setup(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(self.params["outstanding"])
        for room in self.params["rooms"]:
            for number in range(PER_ROOM):
                self.members[f"storm-{room}/u{number}"] = f"storm-{room}"

        async def first(name: str) -> None:
            async with gate:
                await self._join(name, JOIN_TIMEOUT)

        await asyncio.gather(*(first(name) for name in self.members))
        return {}

    def _lost(self, name: str) -> None:
        if not self.armed or name in self.away:
            return
        self.away.add(name)
        task = asyncio.get_running_loop().create_task(self._come_back(name))
        self.rejoins.add(task)
        task.add_done_callback(self.rejoins.discard)

    async def _come_back(self, name: str) -> None:
        backoff = Backoff()
        attempt = 0
        loop = asyncio.get_running_loop()
        while loop.time() - self.killed_at < STORM_TIMEOUT:
            attempt += 1
            await asyncio.sleep(backoff.delay(attempt))
            try:
                await self._join(name, ATTEMPT_TIMEOUT, attempts=1)
            except (ConnectionError, OSError, TimeoutError):
                continue
            now = time.monotonic()
            self.back_times.append(now - self.killed_at)
            self.last_back = max(self.last_back, now)
            self.max_attempts = max(self.max_attempts, attempt)
            self.away.discard(name)
            self._check_all_back()
            return
        self.gave_up += 1
        self.max_attempts = max(self.max_attempts, attempt)
        self.away.discard(name)
        self._check_all_back()

    def _check_all_back(self) -> None:
        waiting = self.all_back
        if not self.away and waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def on_arm(self) -> dict[str, Any]:
        # Clients that stop now stop because the server is gone.
        self.clients = []  # those of before the storm are not closed by quit: they are gone
        self.armed = True
        self.killed_at = time.monotonic()
        self.all_back = asyncio.get_running_loop().create_future()
        return {}

    async def on_back(self) -> dict[str, Any]:
        assert self.all_back is not None
        # Every client has first to notice the loss: wait until each has, then
        # until none is away.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STORM_TIMEOUT + 15
        while len(self.back_times) + self.gave_up < len(self.members):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        return {
            "clients": len(self.members),
            "last_back": self.last_back,
            "latency": stats.histogram(self.back_times),
            "max_attempts": self.max_attempts,
            "gave_up": len(self.members) - len(self.back_times),
        }

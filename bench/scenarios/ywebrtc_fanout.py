"""y-webrtc publish fanout: one topic, one publisher, every subscriber gets each
publish (the publisher too, as y-webrtc's server echoes it).

hubbub's y-webrtc front-end against y-webrtc's own ``bin/server.js``. The publisher
keeps ``in_flight`` publishes outstanding; a publish is done once every subscriber
has it (all in one generator process, so no coordination crosses processes). Each
subscriber records its latency from the timestamp in the data. Figures:
deliveries/s, p50/p99 latency, server CPU per delivery.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from bench import stats
from bench.loadgen import Client, Wire
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, generator_figures
from bench.servers import RunningServer

CONNECT_CONCURRENCY = 100
SYNC_TIMEOUT = 30.0
DATA_PAD = "x" * 160
"""With the sequence number and timestamp, about 200 B of data (a y-webrtc signal)."""

TOPIC = "bench-doc"


class YWebrtcFanout(Scenario):
    name = "ywebrtc_fanout"
    title = "y-webrtc fanout: one publisher, one topic"
    description = (
        "One y-webrtc topic; one subscriber publishes (about 200 B of data) with 4 "
        "publishes in flight, and every subscriber, the publisher included, receives "
        "each (with `clients`). hubbub's y-webrtc front-end against y-webrtc's own "
        "`bin/server.js` (Node.js + ws). CPU/delivery is the server's own CPU time per "
        "message delivered to one subscriber."
    )
    columns = (
        Column("deliveries_per_s", "deliveries/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 2),
        Column("p99_ms", "p99", "ms", 2, plot=True, lower_is_better=True),
        Column("server_cpu_us_per_delivery", "server CPU/delivery", "µs", 2, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )
    targets = (Target("server_cpu_us_per_delivery", "<="),)
    servers = ("hubbub-frontends", "y-webrtc-server")
    ours = "hubbub-frontends"
    reference = "y-webrtc-server"

    def cases(self, size: str) -> list[Case]:
        members, seconds = {
            "smoke": ((10,), 1.0),
            "quick": ((50, 200), 5.0),
            "full": ((50, 200), 15.0),
        }[size]
        return [
            Case(
                f"{count} subscribers",
                {"members": count, "in_flight": 4, "seconds": seconds},
            )
            for count in members
        ]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        generators = await run.generators(
            self, server, [{"members": p["members"], "in_flight": p["in_flight"]}]
        )
        try:
            window, reports = await generators.steady_load(server, p["seconds"])
        finally:
            await generators.close()
        deliveries = sum(r["deliveries"] for r in reports)
        return {
            "deliveries": deliveries,
            "seconds": window.seconds,
            "deliveries_per_s": deliveries / window.seconds,
            **stats.summary((r["latency"] for r in reports), 0.5, 0.99),
            "server_cpu_us_per_delivery": 1e6 * window.cpu.total / max(deliveries, 1),
            "server_cpu_pct": 100.0 * window.cpu.total / window.seconds,
            **generator_figures(reports),
        }


class _Publish(msgspec.Struct):
    type: str
    data: str = ""


_decode = msgspec.json.Decoder(_Publish).decode


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.wire = Wire()
        self.wire.path = "/y-webrtc"
        self.members: list[Client] = []
        self.publisher: Client | None = None
        self.probed: set[Client] = set()
        self.running = False
        self.counting = False
        self.deliveries = 0
        self.latencies: list[float] = []
        self.received: dict[int, int] = {}
        self.next_number = 0
        self.publish_prefix = b'{"type":"publish","topic":"' + TOPIC.encode() + b'","data":"'

    async def setup(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def member(number: int) -> None:
            async with gate:
                client = await self.connect(self.on_message, f"m{number}", decode=_decode)
                client.send({"type": "subscribe", "topics": [TOPIC]})
                self.members.append(client)

        await asyncio.gather(*(member(number) for number in range(self.params["members"])))
        self.publisher = self.members[0]
        # Until every subscriber has a probe, some are not subscribed yet.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SYNC_TIMEOUT
        while len(self.probed) < len(self.members):
            self._publish("probe")
            await asyncio.sleep(0.2)
            if loop.time() > deadline:
                raise RuntimeError(f"{len(self.members) - len(self.probed)} never subscribed")
        return {}

    def _publish(self, data: str) -> None:
        assert self.publisher is not None
        self.publisher.send_raw(self.publish_prefix + data.encode() + b'"}')

    def on_message(self, client: Client, message: Any) -> None:
        if message.type != "publish":
            return
        text: str = message.data
        if text == "probe":
            self.probed.add(client)
            return
        now = time.monotonic()
        number, sent, _ = text.split(" ", 2)
        if self.counting:
            self.deliveries += 1
            self.latencies.append(now - float(sent))
        key = int(number)
        have = self.received.get(key, 0) + 1
        if have < len(self.members):
            self.received[key] = have
            return
        self.received.pop(key, None)
        if self.running:
            self._next()

    def _next(self) -> None:
        self.next_number += 1
        self._publish(f"{self.next_number} {time.monotonic()!r} {DATA_PAD}")

    async def on_run(self) -> dict[str, Any]:
        self.running = True
        for _ in range(self.params["in_flight"]):
            self._next()
        return {}

    def mark(self) -> None:
        self.counting = True
        self.deliveries = 0
        self.latencies = []

    def report(self) -> dict[str, Any]:
        self.counting = False
        return {"deliveries": self.deliveries, "latency": stats.histogram(self.latencies)}

    async def on_quit(self) -> dict[str, Any]:
        self.running = False
        return await super().on_quit()

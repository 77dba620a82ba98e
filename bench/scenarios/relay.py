"""Relay: many pairs, each in its own room, bouncing ``signal`` messages.

Each pair keeps ``in_flight`` signals going back and forth; a signal carries the
time it was sent, so the receiver (in the same process, on the same monotonic
clock) knows its one-way latency and sends a fresh one back at once. Figures:
relayed messages/s, p50/p99 latency, and the server's CPU time per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
    by_loadgen,
    cpu_parts,
    generator_figures,
    split,
)
from bench.servers import RunningServer

CONNECT_CONCURRENCY = 100


class Relay(Scenario):
    name = "relay"
    title = "Relay: pairs bouncing signal"
    description = (
        "Pairs of clients, each pair alone in its room, bounce `signal` messages "
        "(about 200 B of signal) with a fixed number in flight per pair; closed loop, "
        "so each server runs as fast as it can. CPU/msg is the server process's own "
        "CPU time (user + system, from /proc) per relayed message."
    )
    columns = (
        Column("messages_per_s", "msg/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 2),
        Column("p99_ms", "p99", "ms", 2, plot=True, lower_is_better=True),
        Column("server_cpu_us_per_message", "server CPU/msg", "µs", 2, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )

    targets = (
        Target("server_cpu_us_per_message", "<=", 0.8),
        Target("messages_per_s", ">="),
        Target("p99_ms", "<="),
    )

    def cases(self, size: str) -> list[Case]:
        pairs, seconds, generators = {
            "smoke": (4, 1.0, 1),
            "quick": (50, 5.0, 2),
            "full": (50, 15.0, 2),
        }[size]
        params = {"pairs": pairs, "in_flight": 4, "seconds": seconds, "generators": generators}
        return by_loadgen(f"{pairs} pairs, 4 in flight", params)

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        parts = split(range(p["pairs"]), p["generators"])
        # With a "rate" (signals a second in all), each generator sends its share at
        # that pace instead of bouncing them (the cluster scenario's paced loads).
        rate = p.get("rate")
        share = None if rate is None else rate / len(parts)
        generators = await run.generators(
            self,
            server,
            [{"pairs": part, "in_flight": p["in_flight"], "rate": share} for part in parts],
            p["loadgen"],
        )
        try:
            window, reports = await generators.steady_load(server, p["seconds"])
        finally:
            await generators.close()
        messages = sum(r["messages"] for r in reports)
        return {
            "messages": messages,
            "seconds": window.seconds,
            "messages_per_s": messages / window.seconds,
            **stats.summary((r["latency"] for r in reports), 0.5, 0.99),
            "server_cpu_us_per_message": 1e6 * window.cpu.total / max(messages, 1),
            "server_cpu_pct": 100.0 * window.cpu.total / window.seconds,
            **generator_figures(reports),
            **cpu_parts(window),
        }


SIGNAL_PAD = "x" * 160
"""With the timestamp, about 200 B of signal, the size of an ICE candidate."""


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.counting = False
        self.messages = 0
        self.latencies: list[float] = []
        self.partners: dict[Client, str] = {}
        self.signal_to: dict[Client, Callable[[str], bytes]] = {}
        self.joined: dict[int, asyncio.Future[None]] = {}
        self.paced = job["params"].get("rate") is not None
        self.senders: list[Client] = []
        self.next_sender = 0

    async def setup(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def pair(number: int) -> None:
            async with gate:
                self.joined[number] = loop.create_future()
                # On a cluster, every pair is split over two nodes.
                a = await self.connect(self.on_message, f"a{number}", node=0)
                b = await self.connect(self.on_message, f"b{number}", node=1)
                self.partners[a], self.partners[b] = "b", "a"
                for client, partner in ((a, "b"), (b, "a")):
                    self.signal_to[client] = self.wire.template(
                        {
                            "type": "signal",
                            "targetUserId": partner,
                            "signal": {"candidate": SIGNAL_PAD, "t": 0.0},
                        },
                        "signal.t",
                    )
                room = f"relay-{self.index}-{number}"
                a.send({"type": "join-room", "room": room, "userId": "a"})
                b.send({"type": "join-room", "room": room, "userId": "b"})
                await asyncio.wait_for(self.joined[number], 30)

        await asyncio.gather(*(pair(number) for number in self.params["pairs"]))
        return {}

    def on_message(self, client: Client, message: Message) -> None:
        kind = message["type"]
        if kind == "signal":
            now = time.monotonic()
            if self.counting:
                self.messages += 1
                self.latencies.append(now - message["signal"]["t"])
            if not self.paced:
                client.send_raw(self.signal_to[client](repr(now)))
        elif kind == "user-joined":
            # Whichever of the two sees the other join, both are in the room.
            future = self.joined[int(client.name[1:])]
            if not future.done():
                future.set_result(None)

    async def on_run(self) -> dict[str, Any]:
        if self.paced:
            self.senders = list(self.partners)  # both ends of every pair, in turn
            self.pace(self.params["rate"], self._send_paced)
            return {}
        for client, partner in self.partners.items():
            if partner == "b":
                for _ in range(self.params["in_flight"]):
                    client.send_raw(self.signal_to[client](repr(time.monotonic())))
        return {}

    def _send_paced(self, count: int) -> None:
        """``count`` signals, each from the next client in turn to its partner."""
        senders = self.senders
        now = repr(time.monotonic())
        for _ in range(count):
            client = senders[self.next_sender % len(senders)]
            self.next_sender += 1
            client.send_raw(self.signal_to[client](now))

    def mark(self) -> None:
        self.counting = True
        self.messages = 0
        self.latencies = []

    def report(self) -> dict[str, Any]:
        self.counting = False
        return {"messages": self.messages, "latency": stats.histogram(self.latencies)}

"""PeerJS relay: pairs of peers bouncing ``CANDIDATE`` messages through the server.

hubbub's PeerJS front-end against PeerJS's own server (``peer`` from npm). Each pair
keeps ``in_flight`` messages going back and forth (about 200 B of payload, the size
of an ICE candidate); a message carries the time it was sent, so its receiver (in
the same process) knows its one-way latency and sends a fresh one back at once.
Figures: relayed messages/s, p50/p99 latency, server CPU per message.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from bench import stats
from bench.loadgen import Client, Wire, connect
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, Target, generator_figures, split
from bench.servers import RunningServer

CONNECT_CONCURRENCY = 50
PAYLOAD_PAD = "x" * 160
"""With the timestamp, about 200 B of payload."""


class PeerjsRelay(Scenario):
    name = "peerjs_relay"
    title = "PeerJS relay: pairs bouncing CANDIDATE"
    description = (
        "Pairs of PeerJS peers bounce `CANDIDATE` messages (about 200 B of payload) "
        "through the server, 4 in flight per pair; closed loop. hubbub's PeerJS "
        "front-end against PeerJS's own server (`peer`, Node.js). CPU/msg is the server "
        "process's own CPU time per relayed message."
    )
    columns = (
        Column("messages_per_s", "msg/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 2),
        Column("p99_ms", "p99", "ms", 2, plot=True, lower_is_better=True),
        Column("server_cpu_us_per_message", "server CPU/msg", "µs", 2, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )
    targets = (Target("server_cpu_us_per_message", "<="),)
    servers = ("hubbub-frontends", "peer")
    ours = "hubbub-frontends"
    reference = "peer"

    def cases(self, size: str) -> list[Case]:
        pairs, seconds, generators = {
            "smoke": (4, 1.0, 1),
            "quick": (50, 5.0, 2),
            "full": (50, 15.0, 2),
        }[size]
        params = {"pairs": pairs, "in_flight": 4, "seconds": seconds, "generators": generators}
        return [Case(f"{pairs} pairs, 4 in flight", params)]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        parts = split(range(p["pairs"]), p["generators"])
        generators = await run.generators(
            self, server, [{"pairs": part, "in_flight": p["in_flight"]} for part in parts]
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
        }


class PeerjsWire(Wire):
    """One peer's connection: its id in the URL; ready once the server says OPEN."""

    def __init__(self, peer_id: str) -> None:
        self.path = f"/peerjs/peerjs?key=peerjs&id={peer_id}&token=bench&version=1.5.5"

    def opened(self, client: Client) -> None:
        pass

    def decode(self, client: Client, payload: bytes) -> Any:
        message = _decode(payload)
        if message.type == "OPEN":
            client.ready()
            return None
        return message


class _Payload(msgspec.Struct):
    t: float = 0.0


class _Message(msgspec.Struct):
    type: str
    src: str = ""
    payload: _Payload | None = None


_decode = msgspec.json.Decoder(_Message).decode


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.counting = False
        self.messages = 0
        self.latencies: list[float] = []
        self.prefix: dict[Client, bytes] = {}

    async def setup(self) -> dict[str, Any]:
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def pair(number: int) -> None:
            async with gate:
                a_id, b_id = f"a{self.index}x{number}", f"b{self.index}x{number}"
                a = await self._peer(a_id)
                b = await self._peer(b_id)
                for client, to in ((a, b_id), (b, a_id)):
                    self.prefix[client] = (
                        b'{"type":"CANDIDATE","dst":"'
                        + to.encode()
                        + b'","payload":{"connectionId":"dc_bench","candidate":"'
                        + PAYLOAD_PAD.encode()
                        + b'","t":'
                    )

        await asyncio.gather(*(pair(number) for number in self.params["pairs"]))
        return {}

    async def _peer(self, peer_id: str) -> Client:
        client = await connect(PeerjsWire(peer_id), self.url, self.on_message, peer_id)
        self.clients.append(client)
        return client

    def _send(self, client: Client) -> None:
        client.send_raw(self.prefix[client] + repr(time.monotonic()).encode() + b"}}")

    def on_message(self, client: Client, message: Any) -> None:
        if message.type != "CANDIDATE" or message.payload is None:
            return
        if self.counting:
            self.messages += 1
            self.latencies.append(time.monotonic() - message.payload.t)
        self._send(client)

    async def on_run(self) -> dict[str, Any]:
        for client in self.prefix:
            if client.name.startswith("a"):
                for _ in range(self.params["in_flight"]):
                    self._send(client)
        return {}

    def mark(self) -> None:
        self.counting = True
        self.messages = 0
        self.latencies = []

    def report(self) -> dict[str, Any]:
        self.counting = False
        return {"messages": self.messages, "latency": stats.histogram(self.latencies)}

"""Chat persistence: a chat storm into rooms whose members are connected.

In every room a few senders each keep ``in_flight`` chats waiting for their
``chat-ack`` (sent once the message is durably stored) and send the next one as
each ack comes back; the other members receive every chat as it is relayed. Each
chat carries a unique ``clientId`` holding its send time, and its text carries the
same time, so the ack's and every delivery's latency are known. After the
measured stretch the senders stop and wait for their last acks; the runner then
counts the rows in the server's SQLite database, which must be exactly the
messages acknowledged (nothing acked may be missing, nothing stored twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from bench import stats
from bench.loadgen import Client
from bench.loadgen import Driver as BaseDriver
from bench.scenario import (
    Case,
    Column,
    Run,
    Scenario,
    Target,
    generator_figures,
    split,
)
from bench.servers import RunningServer

CONNECT_CONCURRENCY = 100
JOIN_TIMEOUT = 60.0
DRAIN_TIMEOUT = 60.0
CHAT_PAD = "x" * 160
"""With the timestamp, about 200 B of chat."""
DATABASE_FILE = "hubbub.db"


class Received(msgspec.Struct):
    """The fields of a received message this scenario reads (the rest are skipped)."""

    type: str
    message: str = ""
    clientId: str = ""  # the wire's name


_decode = msgspec.json.Decoder(Received).decode


class ChatStore(Scenario):
    name = "chat_store"
    title = "Chat persistence: a chat storm stored on SQLite"
    description = (
        "Rooms of a few members; in each, some members send `chat` (about 200 B, each "
        "with its own `clientId`) with a fixed number waiting for their `chat-ack` per "
        "sender, and send the next as each ack arrives; every other member receives each "
        "chat. hubbub acknowledges a chat once its batch is committed to SQLite "
        "(`synchronous=FULL`), and relays it then. stored msg/s counts the acks; after the "
        "run the rows in the database are counted and must equal every ack received. "
        "Deliveries are the relayed chats the members receive, with their latency from "
        "the send. hubbub only: the baselines store nothing."
    )
    columns = (
        Column("persisted_per_s", "stored msg/s", digits=0, plot=True),
        Column("ack_p50_ms", "ack p50", "ms", 1),
        Column("ack_p99_ms", "ack p99", "ms", 1, plot=True, lower_is_better=True),
        Column("deliveries_per_s", "deliveries/s", digits=0, plot=True),
        Column("delivery_p99_ms", "delivery p99", "ms", 1, lower_is_better=True),
        Column("server_cpu_us_per_message", "server CPU/stored msg", "µs", 1, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
        Column("rows_in_database", "rows checked", digits=0),
    )
    targets = (Target("persisted_per_s", ">=", value=20_000.0),)
    servers = ("hubbub", "hubbub-ref")

    def cases(self, size: str) -> list[Case]:
        rooms, seconds, generators = {
            "smoke": (4, 1.0, 1),
            "quick": (50, 5.0, 2),
            "full": (100, 15.0, 2),
        }[size]
        params = {
            "rooms": rooms,
            "senders": 2,
            "listeners": 2,
            "in_flight": 16,
            "seconds": seconds,
            "generators": generators,
        }
        return [Case(f"{rooms} rooms of 4, 2 senders x 16 waiting for acks", params)]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        if server.data_dir is None:
            raise RuntimeError("this server keeps no database the benchmark can check")
        parts = split(range(p["rooms"]), p["generators"])
        generators = await run.generators(
            self,
            server,
            [
                {
                    "rooms": part,
                    "senders": p["senders"],
                    "listeners": p["listeners"],
                    "in_flight": p["in_flight"],
                }
                for part in parts
            ],
        )
        try:
            window, reports = await generators.steady_load(server, p["seconds"])
            drained = await generators.command("stop", timeout=DRAIN_TIMEOUT + 10)
        finally:
            await generators.close()
        acked_total = sum(d["acked_total"] for d in drained)
        refused = sum(d["refused_total"] for d in drained)
        waiting = sum(d["waiting"] for d in drained)
        if waiting:
            raise RuntimeError(f"{waiting} chats never got their chat-ack")
        rows = _count_rows(server.data_dir / DATABASE_FILE)
        if rows != acked_total:
            raise RuntimeError(
                f"{acked_total} chats were acknowledged but the database holds {rows}"
            )
        stored = sum(r["acks"] for r in reports)
        deliveries = sum(r["deliveries"] for r in reports)
        delivery = stats.summary((r["delivery_latency"] for r in reports), 0.99)
        ack = stats.summary((r["ack_latency"] for r in reports), 0.5, 0.99)
        return {
            "acks": stored,
            "seconds": window.seconds,
            "persisted_per_s": stored / window.seconds,
            "ack_p50_ms": ack["p50_ms"],
            "ack_p99_ms": ack["p99_ms"],
            "deliveries_per_s": deliveries / window.seconds,
            "delivery_p99_ms": delivery["p99_ms"],
            "server_cpu_us_per_message": 1e6 * window.cpu.total / max(stored, 1),
            "server_cpu_pct": 100.0 * window.cpu.total / window.seconds,
            "rows_in_database": rows,
            "acked_total": acked_total,
            "refused_total": refused,
            **generator_figures(reports),
        }


def _count_rows(path: Path) -> int:
    """Chat rows in the server's database (read while it runs: WAL lets us)."""
    database = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count: int = database.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        database.close()
    return count


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.senders: list[Client] = []
        self.chat_to: Callable[[str, str], bytes] = _not_ready
        self.numbers: dict[Client, int] = {}
        self.running = False
        self.counting = False
        self.waiting = 0
        self.acked_total = 0
        self.refused_total = 0
        self.acks = 0
        self.deliveries = 0
        self.ack_latencies: list[float] = []
        self.delivery_latencies: list[float] = []
        self.drained: asyncio.Future[None] | None = None

    async def setup(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def member(room: str, user: str, sender: bool) -> None:
            async with gate:
                joined = loop.create_future()

                def on_message(client: Client, message: Received) -> None:
                    if message.type == "room-joined" and not joined.done():
                        joined.set_result(None)
                    elif sender:
                        self._on_sender_message(client, message)
                    else:
                        self._on_member_message(client, message)

                client = await self.connect(on_message, f"{room}/{user}", decode=_decode)
                client.send({"type": "join-room", "room": room, "userId": user})
                await asyncio.wait_for(joined, JOIN_TIMEOUT)
                if sender:
                    self.senders.append(client)
                    self.numbers[client] = 0

        members = []
        for number in self.params["rooms"]:
            room = f"chat-{self.index}-{number}"
            members += [(room, f"l{n}", False) for n in range(self.params["listeners"])]
            members += [(room, f"s{n}", True) for n in range(self.params["senders"])]
        await asyncio.gather(*(member(*m) for m in members))
        # The text and the clientId both carry the send time; the message is
        # built by joining bytes around them rather than encoded each time.
        sample = self.wire.encode({"type": "chat", "message": "TEXT", "clientId": "CID"})
        prefix, rest = sample.split(b"TEXT")
        middle, suffix = rest.split(b"CID")

        def chat_to(client_id: str, sent: str) -> bytes:
            text = f"{sent} {CHAT_PAD}".encode()
            return prefix + text + middle + client_id.encode() + suffix

        self.chat_to = chat_to
        return {}

    def _send(self, client: Client) -> None:
        number = self.numbers[client] = self.numbers[client] + 1
        sent = repr(time.monotonic())
        self.waiting += 1
        client.send_raw(self.chat_to(f"{number}@{sent}", sent))

    def _on_sender_message(self, client: Client, message: Received) -> None:
        kind = message.type
        if kind == "chat-ack":
            now = time.monotonic()
            self.waiting -= 1
            self.acked_total += 1
            if self.counting:
                self.acks += 1
                self.ack_latencies.append(now - float(message.clientId.split("@", 1)[1]))
            if self.running:
                self._send(client)
        elif kind == "chat":
            self._on_member_message(client, message)
        elif kind == "error":
            # A chat refused (store-unavailable): stored nowhere, never acked.
            self.waiting -= 1
            self.refused_total += 1
            if self.running:
                self._send(client)
        drained = self.drained
        if not self.running and self.waiting == 0 and drained is not None and not drained.done():
            drained.set_result(None)

    def _on_member_message(self, client: Client, message: Received) -> None:
        if message.type == "chat" and self.counting:
            now = time.monotonic()
            self.deliveries += 1
            self.delivery_latencies.append(now - float(message.message.split(" ", 1)[0]))

    async def on_run(self) -> dict[str, Any]:
        self.running = True
        for client in self.senders:
            for _ in range(self.params["in_flight"]):
                self._send(client)
        return {}

    def mark(self) -> None:
        self.counting = True
        self.acks = self.deliveries = 0
        self.ack_latencies, self.delivery_latencies = [], []

    def report(self) -> dict[str, Any]:
        self.counting = False
        return {
            "acks": self.acks,
            "deliveries": self.deliveries,
            "ack_latency": stats.histogram(self.ack_latencies),
            "delivery_latency": stats.histogram(self.delivery_latencies),
        }

    async def on_stop(self) -> dict[str, Any]:
        """Send no more; wait for the acks of what was sent."""
        self.running = False
        if self.waiting:
            self.drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):  # "waiting" in the reply says so
                await asyncio.wait_for(self.drained, DRAIN_TIMEOUT)
        return {
            "acked_total": self.acked_total,
            "refused_total": self.refused_total,
            "waiting": self.waiting,
        }


def _not_ready(client_id: str, sent: str) -> bytes:  # pragma: no cover - set in setup
    raise RuntimeError("no chat template before setup")

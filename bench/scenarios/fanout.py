"""Fanout: one room, one sender, ``chat`` to every other member.

The sender keeps ``in_flight`` chats outstanding: a chat is done once every member,
in every generator process, has it. The sender's own process counts its members;
each other process, once all of its members have a chat, says so with a ``signal``
from one of them (its witness) to the sender: one relayed message per process per
chat, on every server alike. So the pace is that of the slowest process, and no
process falls behind and gathers a backlog (which would show as latency that is
the generator's, not the server's). Every member, in every process, records its
latency from the timestamp in the chat (one system-wide monotonic clock). Figures:
deliveries/s, p50/p99 latency to every recipient, server CPU per delivery.
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
SYNC_TIMEOUT = 30.0
CHAT_PAD = "x" * 180
"""With the sequence number and timestamp, about 200 B of chat."""


class Fanout(Scenario):
    name = "fanout"
    title = "Fanout: one sender, one room"
    description = (
        "One room; one member sends `chat` (about 200 B) with 4 chats in flight, every "
        "other member receives each. Latency is measured at every recipient. CPU/delivery "
        "is the server's own CPU time per message delivered to one recipient. hubbub "
        "stores each chat in SQLite before relaying it; the baselines store nothing."
    )
    columns = (
        Column("deliveries_per_s", "deliveries/s", digits=0, plot=True),
        Column("p50_ms", "p50", "ms", 2),
        Column("p99_ms", "p99", "ms", 2, plot=True, lower_is_better=True),
        Column("server_cpu_us_per_delivery", "server CPU/delivery", "µs", 2, True, True),
        Column("server_cpu_pct", "server CPU", "%", 0),
        Column("generator_cpu_pct", "generators CPU", "%", 0),
    )
    targets = (
        Target("server_cpu_us_per_delivery", "<=", 0.8),
        Target("deliveries_per_s", ">="),
        Target("p99_ms", "<="),
    )

    def cases(self, size: str) -> list[Case]:
        members, seconds, generators = {
            "smoke": ((20,), 1.0, 2),
            "quick": ((200, 1000), 5.0, 2),
            "full": ((200, 1000), 15.0, 2),
        }[size]
        return [
            case
            for count in members
            for case in by_loadgen(
                f"{count} members",
                {"members": count, "in_flight": 4, "seconds": seconds, "generators": generators},
            )
        ]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        p = case.params
        # Member 0 is the sender, in process 0; it joins first.
        parts = split(range(1, p["members"]), p["generators"])
        generators = await run.generators(
            self,
            server,
            [
                {
                    "members": part,
                    "sender": index == 0,
                    "in_flight": p["in_flight"],
                    # With a "rate" (chats a second), the sender sends at that pace
                    # instead of when everyone has the last (the cluster scenario's
                    # paced loads).
                    "rate": p.get("rate"),
                    "other_processes": len(parts) - 1,
                }
                for index, part in enumerate(parts)
            ],
            p["loadgen"],
        )
        try:
            await _sync(generators)
            window, reports = await generators.steady_load(server, p["seconds"])
        finally:
            await generators.close()
        deliveries = sum(r["deliveries"] for r in reports)
        return {
            "deliveries": deliveries,
            "chats": reports[0]["chats"],
            "seconds": window.seconds,
            "deliveries_per_s": deliveries / window.seconds,
            **stats.summary((r["latency"] for r in reports), 0.5, 0.99),
            "server_cpu_us_per_delivery": 1e6 * window.cpu.total / max(deliveries, 1),
            "server_cpu_pct": 100.0 * window.cpu.total / window.seconds,
            **generator_figures(reports),
            **cpu_parts(window),
        }


async def _sync(generators: Any) -> None:
    """Until every member has a probe chat from the sender, everyone is not in yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SYNC_TIMEOUT
    while True:
        await generators.command("probe", only=0)
        await asyncio.sleep(0.2)
        missing = sum(r["missing"] for r in await generators.command("synced"))
        if not missing:
            return
        if loop.time() > deadline:
            raise RuntimeError(f"{missing} members never got into the room")


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.members: list[Client] = []
        self.sender: Client | None = None
        self.probed: set[Client] = set()
        self.counting = False
        self.running = False
        self.deliveries = 0
        self.latencies: list[float] = []
        self.chats = 0
        self.received: dict[int, int] = {}  # chat number -> parties that have it
        self.witness: Client | None = None
        self.to_sender: Callable[[str], bytes] | None = None
        self.next_number = 0
        self.chat_template: Callable[[str], bytes] | None = None

    async def setup(self) -> dict[str, Any]:
        room = "fanout"
        if self.params["sender"]:
            self.sender = await self.connect(self.on_sender_message, "sender")
            self.sender.send({"type": "join-room", "room": room, "userId": "m0"})
            self.chat_template = self.wire.template({"type": "chat", "message": "0"}, "message")
            await asyncio.sleep(0.2)  # the others join after the sender
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def member(number: int) -> None:
            async with gate:
                # On a cluster, members are dealt over the nodes in turn.
                client = await self.connect(self.on_member_message, f"m{number}", node=number)
                client.send({"type": "join-room", "room": room, "userId": f"m{number}"})
                self.members.append(client)
                if self.witness is None and not self.params["sender"]:
                    self.witness = client

        await asyncio.gather(*(member(number) for number in self.params["members"]))
        self.to_sender = self.wire.template(
            {"type": "signal", "targetUserId": "m0", "signal": {"n": 0}}, "signal.n"
        )
        return {}

    async def on_probe(self) -> dict[str, Any]:
        assert self.sender is not None
        self.sender.send({"type": "chat", "message": "probe"})
        return {}

    async def on_synced(self) -> dict[str, Any]:
        return {"missing": len(self.members) - len(self.probed)}

    def on_sender_message(self, client: Client, message: Message) -> None:
        # A witness's word that its process has a chat; user-joined and
        # user-left need nothing.
        if message["type"] == "signal":
            self._one_more_has(int(message["signal"]["n"]))

    def on_member_message(self, client: Client, message: Message) -> None:
        if message["type"] != "chat":
            return
        text: str = message["message"]
        if text == "probe":
            self.probed.add(client)
            return
        now = time.monotonic()
        number, sent, _ = text.split(" ", 2)
        if self.counting:
            self.deliveries += 1
            self.latencies.append(now - float(sent))
        # Counted even before this process hears "run": the sender may be quicker.
        self._one_more_has(int(number))

    def _one_more_has(self, number: int) -> None:
        """Count one more party that has chat ``number``: a member here, or (in
        the sender's process) another process. Once all have it, the sender sends
        the next chat, or this process's witness tells the sender it has it."""
        needed = len(self.members)
        if self.sender is not None:
            needed += self.params["other_processes"]
        have = self.received.get(number, 0) + 1
        if have < needed:
            self.received[number] = have
            return
        self.received.pop(number, None)
        if self.sender is not None:
            if self.running and self.params["rate"] is None:
                self._send_chat()
        elif self.witness is not None:
            assert self.to_sender is not None
            self.witness.send_raw(self.to_sender(str(number)))

    def _send_chat(self) -> None:
        assert self.sender is not None
        assert self.chat_template is not None
        self.next_number += 1
        if self.counting:
            self.chats += 1
        text = f"{self.next_number} {time.monotonic()!r} {CHAT_PAD}"
        # The template's slot is a number; a chat message is a string, so quote it.
        self.sender.send_raw(self.chat_template(_quoted(text)))

    async def on_run(self) -> dict[str, Any]:
        self.running = True
        if self.sender is not None and self.params["rate"] is not None:
            self.pace(self.params["rate"], self._send_chats)
        elif self.sender is not None:
            for _ in range(self.params["in_flight"]):
                self._send_chat()
        return {}

    def _send_chats(self, count: int) -> None:
        for _ in range(count):
            self._send_chat()

    def mark(self) -> None:
        self.counting = True
        self.deliveries = 0
        self.chats = 0
        self.latencies = []

    def report(self) -> dict[str, Any]:
        self.counting = False
        return {
            "deliveries": self.deliveries,
            "chats": self.chats,
            "latency": stats.histogram(self.latencies),
        }

    async def on_quit(self) -> dict[str, Any]:
        self.running = False
        return await super().on_quit()


def _quoted(text: str) -> str:
    return '"' + text + '"'  # the text holds nothing JSON would escape

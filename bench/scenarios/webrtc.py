"""WebRTC setup: two aiortc peers meet through the server and open a data channel.

Both peers connect, then send ``join-room`` at once. Whichever sees the other join
(with hubbub: the one who was in first, the impolite peer) makes the offer with a
data channel; the other answers; host candidates on loopback only, no STUN. The
time runs from the joins to the data channel being open on both sides, one pair
after another. The server only relays a handful of signals, so this measures
what a user waits for rather than the server's capacity.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import stats
from bench.loadgen import Client, Message
from bench.loadgen import Driver as BaseDriver
from bench.scenario import Case, Column, Run, Scenario, generator_figures
from bench.servers import RunningServer

SETUP_TIMEOUT = 30.0


class WebRTCSetup(Scenario):
    name = "webrtc"
    title = "WebRTC setup: join to open data channel"
    description = (
        "Two aiortc peers (one process, host candidates on 127.0.0.1, no STUN) connect, "
        "join a fresh room at once, exchange offer and answer through the server and open "
        "a data channel; the time runs from the joins to the channel open on both sides, "
        "one pair after another."
    )
    columns = (
        Column("p50_ms", "p50", "ms", 1, plot=True, lower_is_better=True),
        Column("p95_ms", "p95", "ms", 1, plot=True, lower_is_better=True),
        Column("pairs", "pairs", digits=0),
    )

    def cases(self, size: str) -> list[Case]:
        pairs = {"smoke": 2, "quick": 10, "full": 30}[size]
        return [Case(f"{pairs} pairs in turn", {"pairs": pairs})]

    async def measure(self, run: Run, server: RunningServer, case: Case) -> dict[str, Any]:
        generators = await run.generators(self, server, [{"pairs": case.params["pairs"]}])
        try:
            await generators.command("mark")
            await generators.command("run", timeout=SETUP_TIMEOUT * case.params["pairs"])
            reports = await generators.command("report")
        finally:
            await generators.close()
        figures = stats.summary((r["latency"] for r in reports), 0.5, 0.95)
        return {
            "pairs": int(figures.pop("samples") or 0),
            **figures,
            **generator_figures(reports),
        }


class Peer:
    """One aiortc peer whose signals go through a benchmark client."""

    def __init__(self, user_id: str, other: str) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.user_id = user_id
        self.other = other
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.open = asyncio.get_running_loop().create_future()
        self.client: Client | None = None
        self.tasks: set[asyncio.Task[None]] = set()

        @self.pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            self._watch(channel)

    def _watch(self, channel: Any) -> None:
        if channel.readyState == "open":
            self._opened()
        else:
            channel.on("open", self._opened)

    def _opened(self) -> None:
        if not self.open.done():
            self.open.set_result(time.monotonic())

    def send_signal(self, signal: dict[str, Any]) -> None:
        assert self.client is not None
        self.client.send({"type": "signal", "targetUserId": self.other, "signal": signal})

    def on_message(self, client: Client, message: Message) -> None:
        kind = message["type"]
        if kind == "user-joined" and message["userId"] == self.other:
            self._spawn(self._offer())
        elif kind == "signal":
            self._spawn(self._on_signal(message["signal"]))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _offer(self) -> None:
        self._watch(self.pc.createDataChannel("bench"))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        description = self.pc.localDescription
        self.send_signal({"type": description.type, "sdp": description.sdp})

    async def _on_signal(self, signal: dict[str, Any]) -> None:
        from aiortc import RTCSessionDescription

        description = RTCSessionDescription(sdp=signal["sdp"], type=signal["type"])
        await self.pc.setRemoteDescription(description)
        if description.type == "offer":
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            answer = self.pc.localDescription
            self.send_signal({"type": answer.type, "sdp": answer.sdp})

    async def close(self) -> None:
        await self.pc.close()
        if self.client is not None:
            self.client.close()


def _loopback_only() -> None:
    """Gather host candidates on 127.0.0.1 alone: nothing leaves the machine.

    aioice leaves loopback out of its host candidates; this puts it back in,
    in place of every other interface.
    """
    import aioice.ice

    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback


class Driver(BaseDriver):
    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        _loopback_only()
        self.latencies: list[float] = []

    async def on_run(self) -> dict[str, Any]:
        for number in range(self.params["pairs"]):
            self.latencies.append(await self._one_pair(f"rtc-{self.index}-{number}"))
        return {}

    async def _one_pair(self, room: str) -> float:
        alice, bob = Peer("alice", "bob"), Peer("bob", "alice")
        try:
            for peer in (alice, bob):
                peer.client = await self.connect(peer.on_message, peer.user_id)
            started = time.monotonic()
            for peer in (alice, bob):
                peer.client.send({"type": "join-room", "room": room, "userId": peer.user_id})
            opened = await asyncio.wait_for(asyncio.gather(alice.open, bob.open), SETUP_TIMEOUT)
            return max(opened) - started
        finally:
            await alice.close()
            await bob.close()

    def report(self) -> dict[str, Any]:
        return {"latency": stats.histogram(self.latencies)}

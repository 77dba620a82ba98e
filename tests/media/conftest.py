"""Each media server the contract suite runs on: the in-memory twin, and a real Janus
of the test's own (tests/janus.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from hubbub.media import Jsep, MediaServer, SubscriberOffer
from hubbub.media.janus import JanusMediaServer
from hubbub.media.memory import MemoryMediaServer
from tests.janus import JanusLab, janus_lab, janus_missing_reason

WAIT = 10.0


@dataclass
class Recorder:
    """A bridge that records what a media server says of its own accord."""

    offers: list[tuple[str, str, SubscriberOffer]] = field(default_factory=list)
    hangups: list[tuple[str, str]] = field(default_factory=list)
    up: list[tuple[str, str]] = field(default_factory=list)
    losses: int = 0
    restorations: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def renegotiate(
        self, server: MediaServer, room: str, handle: str, offer: SubscriberOffer
    ) -> None:
        self.offers.append((room, handle, offer))
        self.changed.set()

    def feed_up(self, server: MediaServer, room: str, handle: str) -> None:
        self.up.append((room, handle))
        self.changed.set()

    def hung_up(self, server: MediaServer, room: str, handle: str) -> None:
        self.hangups.append((room, handle))
        self.changed.set()

    def lost(self, server: MediaServer) -> None:
        self.losses += 1
        self.changed.set()

    def restored(self, server: MediaServer) -> None:
        self.restorations += 1
        self.changed.set()

    async def until(self, check: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not check():
                self.changed.clear()
                await self.changed.wait()


@dataclass
class Backend:
    """A media server under test, and what the suite needs around it."""

    server: MediaServer
    events: Recorder
    offer: Callable[..., Awaitable[Jsep]]
    answer: Callable[[Jsep], Awaitable[Jsep]]
    connect: Callable[[Jsep, Jsep], Awaitable[None]]
    """Complete a publisher's connection: its offer, the media server's answer."""
    crash: Callable[[], Awaitable[None]]
    restore: Callable[[], Awaitable[None]]
    real: bool

    async def publish(
        self, room: str, handle: str, feed: str, *, audio: bool = True, video: bool = True
    ) -> None:
        """Publish a feed and wait until it can be subscribed to."""
        offer = await self.offer(audio=audio, video=video)
        answer = await self.server.publish(room, handle, feed, offer)
        await self.connect(offer, answer)
        await self.events.until(lambda: (room, handle) in self.events.up)


class Peers:
    """aiortc peer connections made for offers and answers, closed at the end."""

    def __init__(self) -> None:
        self.connections: list[RTCPeerConnection] = []

    async def offer(self, audio: bool = True, video: bool = True) -> Jsep:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connections.append(pc)
        if audio:
            pc.addTrack(AudioStreamTrack())
        if video:
            pc.addTrack(VideoStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        return Jsep("offer", pc.localDescription.sdp)

    async def connect(self, offer: Jsep, answer: Jsep) -> None:
        for pc in self.connections:
            if pc.localDescription is not None and pc.localDescription.sdp == offer.sdp:
                await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))
                return
        raise LookupError("no connection made that offer")

    async def answer(self, offer: Jsep) -> Jsep:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connections.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, offer.type))
        await pc.setLocalDescription(await pc.createAnswer())
        return Jsep("answer", pc.localDescription.sdp)

    async def close(self) -> None:
        await asyncio.gather(*(pc.close() for pc in self.connections))


async def _fake_offer(audio: bool = True, video: bool = True) -> Jsep:
    lines = ["v=0"] + (["m=audio 9 UDP/TLS/RTP/SAVPF 111"] if audio else [])
    lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96"] if video else []
    return Jsep("offer", "\r\n".join(lines) + "\r\n")


async def _fake_answer(offer: Jsep) -> Jsep:
    return Jsep("answer", "v=0\r\n")


async def _fake_connect(offer: Jsep, answer: Jsep) -> None:
    pass


@pytest.fixture(params=["memory", "janus"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    events = Recorder()
    if request.param == "memory":
        memory = MemoryMediaServer()
        memory.attach(events)
        await memory.start()

        async def crash() -> None:
            memory.crash()

        async def restore() -> None:
            memory.restore()

        yield Backend(
            memory, events, _fake_offer, _fake_answer, _fake_connect, crash, restore, real=False
        )
        await memory.close()
        return
    reason = janus_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    peers = Peers()
    async with janus_lab() as lab:
        janus = JanusMediaServer(lab.url, api_secret=lab.api_secret, admin_key=lab.admin_key)
        janus.attach(events)
        await janus.start()
        assert janus.up, lab.log[-2000:]

        async def crash_janus() -> None:
            lab.kill()
            await events.until(lambda: events.losses > 0)

        async def restore_janus(lab: JanusLab = lab) -> None:
            await lab.start()
            await events.until(lambda: events.restorations > 0)

        try:
            yield Backend(
                janus,
                events,
                peers.offer,
                peers.answer,
                peers.connect,
                crash_janus,
                restore_janus,
                real=True,
            )
        finally:
            await janus.close()
            await peers.close()

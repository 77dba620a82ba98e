"""A hubbub server in front of a real Janus (one of the test's own, tests/janus.py):
members publish and subscribe through hubbub's protocol with aiortc, and the media
flows through Janus; what members may not do is refused; a Janus killed mid-call is
recovered from."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import VideoStreamTrack

from hubbub.server import ServerSettings
from tests.conftest import ServerFactory
from tests.janus import JanusLab, janus_lab, needs_janus
from tests.tokens import SECRET, token
from tests.wsclient import Client

pytestmark = needs_janus()

FRAME_TIMEOUT = 20.0
"""Seconds for the first frame through Janus on a busy machine (ICE, DTLS, a keyframe)."""


@pytest.fixture
async def lab() -> AsyncIterator[JanusLab]:
    async with janus_lab() as running:
        yield running


def sfu_settings(lab: JanusLab, **changes: Any) -> ServerSettings:
    return ServerSettings(
        janus_url=[lab.url],
        janus_api_secret=lab.api_secret,
        janus_admin_key=lab.admin_key,
        media_mode=changes.pop("media_mode", "sfu"),
        api_key="test-api-key",
        **changes,
    )


@dataclass
class Member:
    """A client speaking hubbub's protocol, with its aiortc connections."""

    client: Client
    user_id: str
    received: list[dict[str, Any]] = field(default_factory=list)
    connections: list[RTCPeerConnection] = field(default_factory=list)
    tracks: list[MediaStreamTrack] = field(default_factory=list)
    track_came: asyncio.Event = field(default_factory=asyncio.Event)

    def _track(self, track: MediaStreamTrack) -> None:
        self.tracks.append(track)
        self.track_came.set()

    async def expect(self, kind: str, timeout: float = 20.0) -> dict[str, Any]:
        """The next message of this type (others are kept in ``received``)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.client.recv(timeout)
                self.received.append(message)
                if message["type"] == kind:
                    return message

    async def expect_any(self, *kinds: str, timeout: float = 20.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.client.recv(timeout)
                self.received.append(message)
                if message["type"] in kinds:
                    return message

    async def feeds_with(self, user_id: str) -> None:
        while True:
            feeds = await self.expect("media-feeds")
            if any(feed["userId"] == user_id for feed in feeds["feeds"]):
                return

    async def offer(self) -> dict[str, str]:
        """A new publisher connection's offer (video only)."""
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connections.append(pc)
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return {"type": "offer", "sdp": pc.localDescription.sdp}

    async def publish(self) -> RTCPeerConnection:
        offer = await self.offer()
        await self.client.send({"type": "media-publish", "jsep": offer, "ref": "pub"})
        answer = await self.expect("media-answer")
        assert answer["ref"] == "pub"
        pc = self.connections[-1]
        await pc.setRemoteDescription(RTCSessionDescription(**answer["jsep"]))
        return pc

    async def republish(self) -> None:
        """What a client does by itself after ``media-server-lost``: publish again
        until the media server answers (``media-unavailable`` while it is away)."""
        async with asyncio.timeout(10):
            while True:
                offer = await self.offer()
                await self.client.send({"type": "media-publish", "jsep": offer, "ref": "again"})
                reply = await self.expect_any("media-answer", "error")
                if reply["type"] == "media-answer":
                    break
                await asyncio.sleep(0.2)
        await self.connections[-1].setRemoteDescription(RTCSessionDescription(**reply["jsep"]))

    async def subscribe(self, feed: str, connection: str = "main") -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.connections.append(pc)
        pc.on("track", self._track)
        await self.client.send(
            {"type": "media-subscribe", "connection": connection, "feeds": [feed], "ref": "sub"}
        )
        offer = await self.expect("media-offer")
        assert [s["userId"] for s in offer["streams"]] == [feed]
        await pc.setRemoteDescription(RTCSessionDescription(**offer["jsep"]))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp}
        await self.client.send({"type": "media-answer", "connection": connection, "jsep": answer})
        return pc

    async def frame(self) -> None:
        """A decoded video frame from what this member subscribed to."""
        async with asyncio.timeout(FRAME_TIMEOUT):
            await self.track_came.wait()
            await self.tracks[-1].recv()

    async def close(self) -> None:
        for pc in self.connections:
            await pc.close()
        self.connections.clear()
        self.tracks.clear()
        self.track_came.clear()


async def media_of(url: str, room: str) -> dict[str, Any]:
    """``GET /api/rooms/{room}/media``: the room's mode, setting and media server."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}/api/rooms/{room}/media", headers={"Authorization": "Bearer test-api-key"}
        ) as response,
    ):
        return dict(await response.json())


async def member(url: str, room: str, user_id: str, **extra: Any) -> Member:
    client = await Client.connect(url)
    joined = Member(client, user_id)
    await client.join(room, user_id, features=["sfu"], **extra)
    return joined


async def test_a_feed_goes_through_janus_to_a_subscriber(
    lab: JanusLab, start_hub: ServerFactory
) -> None:
    url = await start_hub(sfu_settings(lab))
    alice = await member(url, "team", "alice")
    bob = await member(url, "team", "bob")
    try:
        assert (await alice.expect("media-mode"))["mode"] == "sfu"
        assert (await bob.expect("media-mode"))["mode"] == "sfu"
        await alice.publish()
        await bob.feeds_with("alice")
        await bob.subscribe("alice")
        await bob.frame()
        # Nothing a member was sent carries Janus's secrets or its own ids.
        seen = json.dumps(alice.received + bob.received)
        assert lab.api_secret not in seen
        assert lab.admin_key not in seen
        assert "team~" not in seen
        state = await media_of(url, "team")
        assert state == {"room": "team", "mode": "sfu", "setting": "sfu", "server": lab.url}
    finally:
        await alice.close()
        await bob.close()
        await alice.client.close()
        await bob.client.close()


async def test_what_a_member_may_not_do_is_refused(lab: JanusLab, start_hub: ServerFactory) -> None:
    url = await start_hub(sfu_settings(lab, auth="token", token_secret=SECRET))
    alice = await member(url, "team", "alice", token=token("alice"))
    mallory = await member(url, "other", "mallory", token=token("mallory"))
    viewer = await member(
        url, "team", "viewer", token=token("viewer", grants=["join", "chat", "signal"])
    )
    seed = Client(*(await _raw(url)))
    try:
        await alice.publish()
        await alice.feeds_with("alice")
        # Another room's feed is not to be had, nor a feed that does not exist.
        await mallory.expect("media-mode")
        await mallory.client.send({"type": "media-subscribe", "feeds": ["alice"], "ref": 1})
        refusal = await mallory.expect("error")
        assert (refusal["code"], refusal["ref"]) == ("no-such-feed", 1)
        # A member without the publish grant watches only.
        await viewer.client.send({"type": "media-publish", "jsep": {"type": "offer", "sdp": "v=0"}})
        assert (await viewer.expect("error"))["code"] == "forbidden"
        # A seed client is told why nothing works for it here.
        await seed.send({"type": "join-room", "room": "team", "token": token("seed")})
        await seed.expect("room-joined")
        await seed.expect_error("sfu-required")
    finally:
        await alice.close()
        for client in (alice.client, mallory.client, viewer.client, seed):
            await client.close()


async def _raw(url: str) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    session = aiohttp.ClientSession()
    return session, await session.ws_connect(url + "/")


async def test_a_janus_killed_mid_call_is_back_within_five_seconds(
    lab: JanusLab, start_hub: ServerFactory
) -> None:
    url = await start_hub(sfu_settings(lab))
    alice = await member(url, "team", "alice")
    bob = await member(url, "team", "bob")
    try:
        await alice.publish()
        await bob.feeds_with("alice")
        await bob.subscribe("alice")
        await bob.frame()
        lab.kill()
        for side in (alice, bob):
            lost = await side.expect("media-mode")
            assert lost["reason"] == "media-server-lost"
        await alice.close()
        await bob.close()
        await lab.start()
        started = asyncio.get_running_loop().time()
        await alice.republish()
        await bob.feeds_with("alice")
        await bob.subscribe("alice")
        await bob.frame()
        assert asyncio.get_running_loop().time() - started < 5.0
        async with aiohttp.ClientSession() as http, http.get(url + "/readyz") as response:
            assert (await response.json())["checks"]["media"] is True
    finally:
        await alice.close()
        await bob.close()
        await alice.client.close()
        await bob.client.close()

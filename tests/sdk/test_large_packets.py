"""hubbub.peer.large_packets: real aiortc peers, on loopback and through a real coturn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from hubbub.auth.turn import turn_credentials
from hubbub.client import Client
from hubbub.peer import Mesh, Peer, large_packets
from tests.turn import coturn

WAIT = 60.0
TURN_SECRET = "large-packets-turn-secret"


def test_the_installed_aiortc_is_one_hubbub_adapts() -> None:
    # when aiortc is upgraded past CHECKED_AIORTC, this says so (and peers fall back
    # to aiortc's packet size until the module is checked against the new version)
    assert large_packets.available()


async def test_python_peers_on_one_machine_send_large_packets(hub_url: str) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got.put_nowait)

    async with (
        Client(hub_url, "big", user="alice", events=False) as alice,
        Mesh(alice) as alice_mesh,
        Client(hub_url, "big", user="bob", events=False) as bob,
        Mesh(bob, on_datachannel=on_channel) as bob_mesh,
    ):
        to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
        channel = await to_bob.open_channel("bulk", timeout=WAIT)
        for peer in (to_bob, to_alice):
            assert peer.pc.sctp is not None
            assert peer.pc.sctp._hubbub_packet_size == large_packets.LARGE_PACKET
        before = await _packets_received(to_alice)
        messages = [bytes([n]) * 65_536 for n in range(64)]  # 4 MiB
        for message in messages:
            channel.send(message)
        async with asyncio.timeout(WAIT):
            for message in messages:
                assert await got.get() == message
        received = await _packets_received(to_alice) - before
    # 4 MiB in packets of 16 KiB, not in 3,600 of aiortc's 1,189 bytes
    assert 4 * 2**20 / large_packets.LARGE_PACKET <= received < 400, received


async def test_no_large_packets_unless_the_remote_reads_them() -> None:
    # No ICE server at all: aiortc would ask a public STUN server for a None list.
    async with _connected_pair(RTCConfiguration(iceServers=[])) as (caller, callee, channel, got):
        assert large_packets.read_large_packets(callee.sctp) == large_packets.LARGE_PACKET
        # the callee reads them, but the caller was not told so
        assert large_packets.send_large_packets(caller.sctp, None) is None
        assert large_packets.send_large_packets(caller.sctp, 1189) is None
        before = _dtls_packets_received(callee)
        channel.send(b"x" * 65_536)
        async with asyncio.timeout(WAIT):
            assert await got.get() == b"x" * 65_536
        assert _dtls_packets_received(callee) - before >= 65_536 // 1189


async def test_no_large_packets_through_a_relay() -> None:
    """Peers that meet through a TURN server send what a network path carries, even
    when the TURN server is on this machine."""
    async with coturn(TURN_SECRET) as turn_port:
        username, password = turn_credentials(TURN_SECRET, "peer", int(time.time()) + 600)
        config = RTCConfiguration(
            iceServers=[
                RTCIceServer(
                    urls=f"turn:127.0.0.1:{turn_port}?transport=udp",
                    username=username,
                    credential=password,
                )
            ],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
        async with _connected_pair(config) as (caller, callee, channel, got):
            for pc in (caller, callee):
                assert large_packets.read_large_packets(pc.sctp) == large_packets.LARGE_PACKET
            assert large_packets.send_large_packets(caller.sctp, 16384) is None
            channel.send(b"y" * 65_536)
            async with asyncio.timeout(WAIT):
                assert await got.get() == b"y" * 65_536


@asynccontextmanager
async def _connected_pair(
    config: RTCConfiguration,
) -> AsyncIterator[
    tuple[RTCPeerConnection, RTCPeerConnection, RTCDataChannel, asyncio.Queue[bytes]]
]:
    """Two aiortc peers in this process, a channel from the first open to the second."""
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    @callee.on("datachannel")
    def on_datachannel(channel: RTCDataChannel) -> None:
        channel.on("message", got.put_nowait)

    try:
        channel = caller.createDataChannel("data")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        async with asyncio.timeout(WAIT):
            await opened.wait()
        yield caller, callee, channel, got
    finally:
        await caller.close()
        await callee.close()


def _dtls_packets_received(pc: RTCPeerConnection) -> int:
    assert pc.sctp is not None
    (stats,) = pc.sctp.transport._get_stats().values()
    return int(stats.packetsReceived)


async def _packets_received(peer: Peer) -> int:
    return _dtls_packets_received(peer.pc)

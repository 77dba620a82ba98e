"""Two aiortc peers (hubbub.peer), each connected to a different node, negotiate
through the cluster and open a data channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiortc import RTCDataChannel

from hubbub.client import Client
from hubbub.peer import Mesh, Peer
from tests.cluster.nodes import cluster

WAIT = 60.0


async def test_a_data_channel_opens_between_peers_on_two_nodes(
    redis_url: str, tmp_path: Path
) -> None:
    got: asyncio.Queue[str | bytes] = asyncio.Queue()

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got.put_nowait)

    async with (
        cluster(2, redis_url, tmp_path) as (n1, n2),
        Client(n1.url, "peers", user="alice", events=False) as alice,
        Mesh(alice, on_datachannel=on_channel) as alice_mesh,
        Client(n2.url, "peers", user="bob", events=False) as bob,
        Mesh(bob, on_datachannel=on_channel) as bob_mesh,
    ):
        to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
        assert to_bob.polite is False
        assert to_alice.polite is True
        channel = await to_bob.open_channel("across", timeout=WAIT)
        channel.send("hello from node 1")
        async with asyncio.timeout(WAIT):
            assert await got.get() == "hello from node 1"

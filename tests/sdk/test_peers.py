"""hubbub.peer: real aiortc peers, connected through a real server, host candidates only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCDataChannel

from hubbub.client import Client
from hubbub.peer import FileInbox, Mesh, Peer

WAIT = 60.0


async def test_two_python_peers_open_channels_both_ways(hub_url: str) -> None:
    got: defaultdict[str, asyncio.Queue[str | bytes]] = defaultdict(asyncio.Queue)

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got[channel.label].put_nowait)

    async with (
        Client(hub_url, "p", user="alice", events=False) as alice,
        Mesh(alice, on_datachannel=on_channel) as alice_mesh,
        Client(hub_url, "p", user="bob", events=False) as bob,
        Mesh(bob, on_datachannel=on_channel) as bob_mesh,
    ):
        to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
        assert to_bob.polite is False
        assert to_alice.polite is True

        reliable = await to_bob.open_channel("notes", timeout=WAIT)
        reliable.send("hello bob")
        reliable.send(b"\x00\x01")
        async with asyncio.timeout(WAIT):
            assert await got["notes"].get() == "hello bob"
            assert await got["notes"].get() == b"\x00\x01"

        # unordered, no retransmits: on loopback nothing is lost, but nothing waits
        game = await to_alice.open_channel("game", ordered=False, max_retransmits=0)
        assert game.ordered is False
        assert game.maxRetransmits == 0
        for n in range(200):
            game.send(f"tick {n}")
        received: set[str] = set()
        async with asyncio.timeout(WAIT):
            while len(received) < 150:
                received.add(str(await got["game"].get()))
        assert received <= {f"tick {n}" for n in range(200)}


async def test_a_large_file_arrives_intact(hub_url: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    size = 50 * 1024 * 1024
    with source.open("wb") as file:
        for _ in range(size // (1 << 20)):
            file.write(os.urandom(1 << 20))
    inbox = FileInbox(tmp_path / "inbox")
    progress: list[int] = []
    async with (
        Client(hub_url, "f", user="alice", events=False) as alice,
        Mesh(alice) as alice_mesh,
        Client(hub_url, "f", user="bob", events=False) as bob,
        Mesh(bob, files=inbox),
    ):
        peer = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        result = await peer.send_file(source, progress=lambda done, total: progress.append(done))
        assert result.ok, result.reason
        received = await inbox.next_result(timeout=WAIT)
    assert received.ok
    assert received.from_user == "alice"
    assert received.path == tmp_path / "inbox" / "big.bin"
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert received.sha256 == expected
    assert hashlib.sha256(received.path.read_bytes()).hexdigest() == expected
    assert progress[-1] == size
    assert not list((tmp_path / "inbox").glob("*.hubbub-part*"))


async def test_bulk_data_is_acknowledged_every_second_packet(hub_url: str) -> None:
    """The receiver of a one-way stream sends about one SACK for two data packets
    (hubbub.peer.sctp), not one for each, and everything still arrives in order."""
    got: asyncio.Queue[bytes] = asyncio.Queue()

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got.put_nowait)

    async with (
        Client(hub_url, "s", user="alice", events=False) as alice,
        Mesh(alice) as alice_mesh,
        Client(hub_url, "s", user="bob", events=False) as bob,
        Mesh(bob, on_datachannel=on_channel) as bob_mesh,
    ):
        to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
        channel = await to_bob.open_channel("bulk", timeout=WAIT)
        before = await _packets(to_alice)
        # 6 MB: about 370 packets of 16 KiB (two Python peers on one machine send
        # large packets: hubbub.peer.large_packets)
        messages = [bytes([n]) * 60_000 for n in range(100)]
        for message in messages:
            channel.send(message)
        async with asyncio.timeout(WAIT):
            for message in messages:
                assert await got.get() == message
        await asyncio.sleep(0.5)  # the last delayed SACK
        after = await _packets(to_alice)
        assert channel.bufferedAmount == 0
    received = after[0] - before[0]
    sent = after[1] - before[1]
    assert received >= 6_000_000 // 16_384, received
    assert sent < 0.6 * received, (sent, received)


async def _packets(peer: Peer) -> tuple[int, int]:
    """Packets (received, sent) on the data channels' DTLS transport (aiortc's
    getStats only reports the media transports)."""
    assert peer.pc.sctp is not None
    report = peer.pc.sctp.transport._get_stats()
    (stats,) = report.values()
    return stats.packetsReceived, stats.packetsSent


async def test_a_file_offer_right_behind_its_channel_is_not_missed(
    hub_url: str, tmp_path: Path
) -> None:
    """A browser sends its file-offer as soon as it has opened the channel, so that
    it can arrive in the same packet as the channel's opening. The receiver listened
    for messages only from a task started afterwards: the offer was lost, and the
    transfer hung until the 60 s control timeout (seen across a lossy network)."""
    inbox = FileInbox(tmp_path)
    async with (
        Client(hub_url, "race", user="rx", events=False) as receiver_client,
        Mesh(receiver_client, files=inbox),
        Client(hub_url, "race", user="tx", events=False) as sender_client,
        Mesh(sender_client) as sender,
    ):
        peer = await sender.wait_for_peer("rx", timeout=30)
        await peer.open_channel("warm-up", timeout=30)  # the association is up
        channel = peer.pc.createDataChannel("hubbub-file:race")
        replies: asyncio.Queue[str | bytes] = asyncio.Queue()
        channel.on("message", replies.put_nowait)
        offer = {"kind": "file-offer", "id": "race", "name": "r.bin", "size": 3,
                 "mime": "application/octet-stream", "sha256": None}  # fmt: skip
        # queued right behind the channel's opening, as a browser sends it (aiortc's own
        # send() waits for the other's acknowledgement of the opening)
        peer.pc.sctp._data_channel_send(channel, json.dumps(offer))
        async with asyncio.timeout(10):
            reply = json.loads(await replies.get())
        assert reply == {"kind": "file-accept", "id": "race", "offset": 0}


async def test_a_peer_closed_while_it_gathers_candidates_leaves_no_socket_open(
    hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aioice keeps a host socket only once it has bound all of them: a gathering cut
    short loses the sockets bound so far. Seen when a member left just as its peer
    connected anew: the next test's event loop hung in its close."""
    sockets: list[asyncio.DatagramTransport] = []
    bound_one = asyncio.Event()
    loop = asyncio.get_running_loop()
    create_datagram_endpoint = type(loop).create_datagram_endpoint

    async def slow_to_bind(self: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await create_datagram_endpoint(self, *args, **kwargs)
        sockets.append(transport)
        bound_one.set()
        await asyncio.sleep(0.5)  # the machine's next address, as seen by the gatherer
        return transport, protocol

    async with (
        Client(hub_url, "gather", user="alice", events=False),
        Client(hub_url, "gather", user="bob", events=False) as bob,
    ):
        monkeypatch.setattr(type(loop), "create_datagram_endpoint", slow_to_bind)
        mesh = Mesh(bob, polite_offer_after=0)
        mesh.start()  # bob offers to alice at once
        async with asyncio.timeout(WAIT):
            await bound_one.wait()
        await mesh.close()
        monkeypatch.undo()
    assert sockets
    assert [transport for transport in sockets if not transport.is_closing()] == []

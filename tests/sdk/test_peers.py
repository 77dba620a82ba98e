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
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

from hubbub.client import Client
from hubbub.peer import FileInbox, Mesh, Peer
from hubbub.peer.closing import close_peer_connection
from hubbub.peer.files import FileSender, wait_open
from hubbub.peer.negotiation import Move

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


class RawChannel:
    """One side of a data channel spoken by hand: JSON control messages in a queue."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        channel.on("message", lambda m: self.got.put_nowait(json.loads(m)))

    def send(self, message: dict[str, Any] | str | bytes) -> None:
        self.channel.send(json.dumps(message) if isinstance(message, dict) else message)

    async def next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            return await self.got.get()


async def test_the_file_protocol_refuses_what_it_must(hub_url: str, tmp_path: Path) -> None:
    """docs/peer-protocol.md, "File transfer", against hubbub.peer's own receiver and
    sender, the other side written by hand."""
    inbox = FileInbox(tmp_path / "inbox", max_size=1000)
    app_channels: asyncio.Queue[RawChannel] = asyncio.Queue()
    async with (
        Client(hub_url, "fp", user="alice", events=False) as alice,
        Mesh(alice) as alice_mesh,
        Client(hub_url, "fp", user="bob", events=False) as bob,
        Mesh(
            bob,
            files=inbox,
            # read from the first message on: nothing may come before the listener
            on_datachannel=lambda _peer, ch: app_channels.put_nowait(RawChannel(ch)),
        ),
    ):
        to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
        await to_bob.open_channel("app", timeout=WAIT)  # the association is up

        async def file_channel(first: dict[str, Any] | str) -> RawChannel:
            channel = RawChannel(to_bob.pc.createDataChannel(f"hubbub-file:{os.urandom(4).hex()}"))
            await wait_open(channel.channel, WAIT)
            channel.send(first)
            return channel

        def offer(transfer_id: str, size: int, sha256: str | None) -> dict[str, Any]:
            return {
                "kind": "file-offer",
                "id": transfer_id,
                "name": "f.bin",
                "size": size,
                "mime": "application/octet-stream",
                "sha256": sha256,
            }

        # first messages that are no offer: cancelled as a bad offer
        cancel = {"kind": "file-cancel", "id": "t1", "reason": "bad offer"}
        assert await (await file_channel({"kind": "file-offer", "id": "t1"})).next() == cancel
        assert await (await file_channel({**offer("t1", 10, None), "size": -1})).next() == cancel
        assert await (await file_channel({**offer("t1", 10, "ABC")})).next() == cancel
        assert (await (await file_channel("not json")).next())["reason"] == "bad offer"

        # larger than the receiver takes
        assert await (await file_channel(offer("t2", 1001, None))).next() == {
            "kind": "file-reject",
            "id": "t2",
            "reason": "larger than 1000 bytes",
        }

        # bytes whose SHA-256 is not the one announced: refused, nothing kept
        data = os.urandom(100)
        wrong = hashlib.sha256(b"other").hexdigest()
        channel = await file_channel(offer("t3", len(data), wrong))
        assert await channel.next() == {"kind": "file-accept", "id": "t3", "offset": 0}
        channel.send(data)
        channel.send({"kind": "file-end", "id": "t3", "sha256": wrong})
        assert await channel.next() == {
            "kind": "file-done",
            "id": "t3",
            "ok": False,
            "reason": "SHA-256 differs",
        }
        result = await inbox.next_result(timeout=WAIT)
        assert (result.ok, result.reason) == (False, "SHA-256 differs")
        assert list((tmp_path / "inbox").iterdir()) == []

        # a receiver that asks for the bytes from past the end: the sender cancels
        source = tmp_path / "f.bin"
        source.write_bytes(data)
        sender = FileSender(source)
        outgoing = await to_bob.open_channel("raw-file", timeout=WAIT)
        sending = asyncio.create_task(sender.run(outgoing, max_message_size=65536))
        receiver = await asyncio.wait_for(app_channels.get(), WAIT)
        while receiver.channel.label != "raw-file":
            receiver = await asyncio.wait_for(app_channels.get(), WAIT)
        offered = await receiver.next()
        assert offered == offer(sender.transfer_id, 100, hashlib.sha256(data).hexdigest())
        receiver.send({"kind": "file-accept", "id": sender.transfer_id, "offset": 101})
        assert await receiver.next() == {
            "kind": "file-cancel",
            "id": sender.transfer_id,
            "reason": "bad offset",
        }
        sent = await asyncio.wait_for(sending, WAIT)
        assert (sent.ok, sent.reason) == (False, "the receiver sent a bad offset")


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


async def test_a_close_cancelled_while_aiortc_closes_by_itself_breaks_nothing() -> None:
    # aiortc closes a connection by itself once the other side closed (its own task);
    # a close of ours cancelled meanwhile (a peer replaced, a mesh closing) must not
    # cancel the future that close sets: it did, with InvalidStateError, "never
    # retrieved", in a mesh of four aiortc members of the benchmark.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.createDataChannel("x")
    await pc.setLocalDescription(await pc.createOffer())
    aiortcs_own = asyncio.ensure_future(pc.close())
    await asyncio.sleep(0)
    ours = asyncio.ensure_future(close_peer_connection(pc))
    await asyncio.sleep(0)
    ours.cancel()
    await aiortcs_own  # raised InvalidStateError with a plain pc.close()
    assert pc.connectionState == "closed"


async def _offer_out(mesh: Mesh, to: str) -> None:
    """Until ``mesh``'s offer to ``to`` is out (its side waits for an answer)."""
    async with asyncio.timeout(WAIT):
        while not (  # noqa: ASYNC110 - aiortc has no event for it
            (peer := mesh.peers.get(to)) is not None
            and peer.pc.signalingState == "have-local-offer"
        ):
            await asyncio.sleep(0.05)


async def test_an_offer_that_came_before_the_mesh_listened_is_answered(hub_url: str) -> None:
    """Alice offers as soon as she sees Bob join; it reaches Bob's client before his
    mesh listens (a busy machine widens that moment). His client keeps it, and his mesh
    answers it: no offer of his own crosses hers. Neither side waits long enough to
    offer again, so the pair connects only if the first offer is answered."""
    patient = WAIT * 2
    async with (
        Client(hub_url, "early", user="alice", events=False) as alice,
        Mesh(alice, polite_offer_after=patient) as alice_mesh,
        Client(hub_url, "early", user="bob", events=False) as bob,
    ):
        bob.add_listener(lambda event: None)  # as the commands have one of their own
        await _offer_out(alice_mesh, "bob")
        await asyncio.sleep(0.3)  # it reached Bob's client, with no mesh listening yet
        async with Mesh(bob, polite_offer_after=patient) as bob_mesh:
            to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
            await alice_mesh.wait_for_peer("bob", timeout=WAIT)
            assert to_alice.moves == [Move.ACCEPT]


async def test_a_first_offer_lost_before_the_other_listened_does_not_stall_the_pair(
    hub_url: str,
) -> None:
    """Alice's first offer reaches Bob's client and something other than his mesh
    takes it: his mesh never sees it. Bob, polite, offers himself once he has waited;
    Alice, whose own offer is still unanswered by then, takes his (it was ignored as a
    collision, and the pair never connected)."""
    async with (
        Client(hub_url, "late", user="alice", events=False) as alice,
        Mesh(alice, polite_offer_after=0.5) as alice_mesh,
        Client(hub_url, "late", user="bob", events=False) as bob,
    ):
        await _offer_out(alice_mesh, "bob")
        await asyncio.sleep(0.3)  # it reached Bob's client
        assert bob.take_signals(), "Alice's offer did not reach Bob's client"
        async with Mesh(bob, polite_offer_after=0.5) as bob_mesh:
            to_alice = await bob_mesh.wait_for_peer("alice", timeout=WAIT)
            to_bob = await alice_mesh.wait_for_peer("bob", timeout=WAIT)
            assert to_alice.polite is True
            assert to_bob.polite is False

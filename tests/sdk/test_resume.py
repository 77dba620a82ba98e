"""hubbub.client through lost connections and restarts, against a real server
process: resumed sessions lose and double nothing, a refused resume catches up from
the history, a server shutting down is come back to by itself
(docs/protocol.md, "Reconnecting and resuming"; docs/python.md, "Reconnection")."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from hubbub.client import (
    Backoff,
    ChatGap,
    ChatMessage,
    Client,
    Disconnected,
    Event,
    ParticipantUpdated,
    Reconnected,
    ReconnectHint,
    Resumed,
    RoomJoined,
    SignalReceived,
    UserLeft,
)
from hubbub.server import ServerSettings, start_server
from tests.faults.resuming import CuttingProxy, wait_for
from tests.process import hubbub_serve

WAIT = 30.0
LOOSE_LIMITS = ("--message-rate", "5000", "--message-burst", "5000")

E = TypeVar("E", bound=Event)


def fast_backoff(seed: int) -> Backoff:
    return Backoff(base=0.1, max_delay=0.3, random=random.Random(seed))


class Recorder:
    """Every event of a client, as it arrives, with the time it came."""

    def __init__(self, client: Client) -> None:
        self.events: list[Event] = []
        self.times: list[float] = []
        client.add_listener(self._add)

    def _add(self, event: Event) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def chats(self, sender: str | None = None) -> list[ChatMessage]:
        return [c for c in self.of(ChatMessage) if sender is None or c.user_id == sender]

    def time_of(self, predicate: Callable[[Event], bool]) -> float:
        return next(t for e, t in zip(self.events, self.times, strict=True) if predicate(e))


class GatedProxy(CuttingProxy):
    """The cutting proxy, which can also refuse new connections for a while (the
    network stays down)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.accepting = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        await super()._accept(reader, writer)

    def cut_all(self) -> None:
        rng = random.Random(0)
        while self.cut_one(rng):
            pass


async def proxy_for(url: str) -> tuple[GatedProxy, str]:
    parts = urlsplit(url)
    proxy = GatedProxy(parts.hostname or "127.0.0.1", parts.port or 0)
    return proxy, await proxy.start()


async def test_cuts_mid_stream_are_resumed_and_lose_or_double_nothing() -> None:
    chats_from_bob, chats_from_alice, cuts = 300, 100, 6
    rng = random.Random(20261127)
    async with hubbub_serve(
        *LOOSE_LIMITS, "--resume-buffer-messages", "4096", "--resume-buffer-bytes", "8388608"
    ) as (url, _process):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with (
                Client(url, "cuts", user="bob", events=False) as bob,
                Client(
                    proxy_url, "cuts", user="alice", events=False, backoff=fast_backoff(1)
                ) as alice,
            ):
                seen_by_alice, seen_by_bob = Recorder(alice), Recorder(bob)

                async def bob_talks() -> None:
                    for i in range(chats_from_bob):
                        await bob.chat(f"bob {i}")
                        await bob.signal("alice", {"k": i})
                        await asyncio.sleep(rng.uniform(0, 0.005))

                async def alice_talks() -> None:
                    for i in range(chats_from_alice):
                        await alice.chat(f"alice {i}")
                        await asyncio.sleep(rng.uniform(0, 0.02))

                async def cutter() -> None:
                    for done in range(cuts):
                        # back from the last cut, on a connection through the proxy
                        await wait_for(
                            lambda d=done: (
                                len(seen_by_alice.of(Resumed)) == d and bool(proxy.pairs)
                            ),
                            WAIT,
                        )
                        await asyncio.sleep(rng.uniform(0.05, 0.3))
                        proxy.cut_all()

                async with asyncio.timeout(120):
                    await asyncio.gather(bob_talks(), alice_talks(), cutter())
                    await wait_for(
                        lambda: (
                            len(seen_by_alice.of(SignalReceived)) >= chats_from_bob
                            and len(seen_by_bob.chats("alice")) >= chats_from_alice
                        ),
                        WAIT,
                    )
                await asyncio.sleep(0.5)  # anything doubled would be in by now
                stored = await all_history(bob)
                # (alice's own close, on the way out, is a leave)
                left = seen_by_bob.of(UserLeft)
                alice_to_bob = bob.participants["alice"]
        finally:
            await proxy.close()

    assert proxy.cuts == cuts
    # Alice: every chat and signal of bob's once, in order; resumed after each cut.
    assert [c.message for c in seen_by_alice.chats("bob")] == [
        f"bob {i}" for i in range(chats_from_bob)
    ]
    seqs = [c.seq for c in seen_by_alice.chats()]
    assert seqs == sorted(set(seqs))
    assert [s.signal["k"] for s in seen_by_alice.of(SignalReceived)] == list(range(chats_from_bob))
    assert len(seen_by_alice.of(Resumed)) == cuts
    assert seen_by_alice.of(Reconnected) == []
    assert [d.code for d in seen_by_alice.of(Disconnected)] == [None] * cuts
    assert sum(r.missed for r in seen_by_alice.of(Resumed)) > 0
    # Bob: alice's chats once each, in order; alice never left.
    assert [c.message for c in seen_by_bob.chats("alice")] == [
        f"alice {i}" for i in range(chats_from_alice)
    ]
    assert left == []
    assert ParticipantUpdated(user_id="alice", connection="reconnecting") in seen_by_bob.events
    assert alice_to_bob.connection == "connected"
    # Stored once each: the room's numbers are exactly 1..400.
    assert [m.seq for m in stored] == list(range(1, chats_from_bob + chats_from_alice + 1))
    assert len({m.client_id for m in stored}) == len(stored)


async def all_history(client: Client) -> list[Any]:
    """Every stored message of the client's room, oldest first."""
    messages = await client.history()
    while messages and messages[0].seq > 1:
        older = await client.history(before_seq=messages[0].seq)
        if not older:
            break
        messages = older + messages
    return messages


async def test_a_refused_resume_rejoins_and_fetches_the_missed_chat() -> None:
    # A short grace period: while the network is down the session is given up, and
    # the resume that follows is refused. Only 3 messages come with room-joined, so
    # the rest is paged from the history.
    async with hubbub_serve("--resume-grace", "0.3", "--history-on-join", "3") as (url, _):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with (
                Client(url, "gone", user="bob", events=False) as bob,
                Client(
                    proxy_url, "gone", user="alice", events=False, backoff=fast_backoff(2)
                ) as alice,
            ):
                seen_by_alice, seen_by_bob = Recorder(alice), Recorder(bob)
                await alice.set_status("busy")
                for i in range(5):
                    await bob.chat(f"bob {i}")
                await wait_for(lambda: len(seen_by_alice.chats()) == 5, WAIT)

                proxy.accepting = False
                proxy.cut_all()
                await wait_for(lambda: UserLeft(user_id="alice") in seen_by_bob.events, WAIT)
                for i in range(5, 25):
                    await bob.chat(f"bob {i}")
                sent_while_away = asyncio.ensure_future(alice.chat("back again"))
                await asyncio.sleep(0.3)
                assert not sent_while_away.done()
                proxy.accepting = True

                ack = await asyncio.wait_for(sent_while_away, WAIT)
                await bob.chat("bob 25")
                await wait_for(lambda: len(seen_by_alice.chats()) == 26, WAIT)
                await wait_for(lambda: len(seen_by_bob.chats("alice")) == 1, WAIT)
                await asyncio.sleep(0.5)  # anything doubled would be in by now
                # a new connection starts online: the client asks for its status again
                assert bob.participants["alice"].status == "busy"
                assert alice.status == "busy"
        finally:
            await proxy.close()

    assert ack is not None
    assert [c.message for c in seen_by_alice.chats()] == [f"bob {i}" for i in range(26)]
    assert [c.seq for c in seen_by_alice.chats()] == [*range(1, 26), 27]
    assert seen_by_alice.of(Resumed) == []
    back = seen_by_alice.of(Reconnected)
    assert len(back) == 1
    assert back[0].resume_refused == "unknown-session"
    assert seen_by_alice.of(ChatGap) == []
    # The order promised: Reconnected, RoomJoined, then the missed chat.
    after = seen_by_alice.events[seen_by_alice.events.index(back[0]) :]
    assert isinstance(after[1], RoomJoined)
    assert [type(e) for e in after[2:22]] == [ChatMessage] * 20
    assert [c.message for c in seen_by_bob.chats("alice")] == ["back again"]
    assert seen_by_bob.chats("alice")[0].seq == ack.seq == 26


async def test_an_overrun_resume_joins_afresh_and_reports_the_chat_it_did_not_fetch() -> None:
    # The session waits (a long grace period), but holds only 10 messages: 20 chats
    # while alice is away are more, and her resume is refused as overrun. She joins
    # afresh and fetches at most max_catch_up (5) of the 20: the 15 before are a gap.
    args = ("--resume-grace", "30", "--resume-buffer-messages", "10", "--history-on-join", "0")
    async with hubbub_serve(*args) as (url, _):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with (
                Client(url, "over", user="bob", events=False) as bob,
                Client(
                    proxy_url,
                    "over",
                    user="alice",
                    events=False,
                    backoff=fast_backoff(5),
                    max_catch_up=5,
                ) as alice,
            ):
                seen_by_alice = Recorder(alice)
                for i in range(5):
                    await bob.chat(f"bob {i}")
                await wait_for(lambda: len(seen_by_alice.chats()) == 5, WAIT)
                proxy.accepting = False
                proxy.cut_all()
                for i in range(5, 25):
                    await bob.chat(f"bob {i}")
                proxy.accepting = True
                await wait_for(lambda: bool(seen_by_alice.of(ChatGap)), WAIT)
                await bob.chat("bob 25")
                await wait_for(lambda: seen_by_alice.chats()[-1].message == "bob 25", WAIT)
        finally:
            await proxy.close()

    assert [r.resume_refused for r in seen_by_alice.of(Reconnected)] == ["overrun"]
    assert seen_by_alice.of(Resumed) == []
    assert seen_by_alice.of(ChatGap) == [ChatGap(after_seq=5, before_seq=21)]
    assert [c.seq for c in seen_by_alice.chats()] == [*range(1, 6), *range(21, 27)]
    # in order: Reconnected, RoomJoined, the gap, the chat fetched
    back = seen_by_alice.events.index(seen_by_alice.of(Reconnected)[0])
    kinds = [type(e) for e in seen_by_alice.events[back : back + 8]]
    assert kinds == [Reconnected, RoomJoined, ChatGap, *[ChatMessage] * 5]


async def test_a_server_restart_is_come_back_to_by_itself(tmp_path: Path) -> None:
    port = free_port()
    args = ("--port", str(port), "--data-dir", str(tmp_path), "--reconnect-spread", "1")
    async with hubbub_serve(*args) as (url, process):
        alice = Client(url, "restart", user="alice", events=False, backoff=fast_backoff(3))
        bob = Client(url, "restart", user="bob", events=False, backoff=fast_backoff(4))
        seen_by_alice, seen_by_bob = Recorder(alice), Recorder(bob)
        await alice.start()
        await bob.start()
        await alice.chat("before")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            assert await process.wait() == 0
    try:
        for seen in (seen_by_alice, seen_by_bob):
            assert len(seen.of(ReconnectHint)) == 1
            assert [(d.code, d.will_retry) for d in seen.of(Disconnected)] == [(1001, True)]
        sent_while_down = asyncio.ensure_future(alice.chat("while down"))
        async with hubbub_serve(*args) as (_url, _process):
            ack = await asyncio.wait_for(sent_while_down, WAIT)
            await wait_for(lambda: len(seen_by_bob.chats()) == 2, WAIT)
            for seen in (seen_by_alice, seen_by_bob):
                assert [r.resume_refused for r in seen.of(Reconnected)] == [None]
                assert len(seen.of(RoomJoined)) == 2
            await bob.chat("welcome back")
            await wait_for(lambda: len(seen_by_alice.chats()) == 1, WAIT)
            assert alice.connected
            assert bob.connected
    finally:
        await alice.close()
        await bob.close()
    assert ack is not None
    assert [c.message for c in seen_by_bob.chats()] == ["before", "while down"]
    assert [c.message for c in seen_by_alice.chats()] == ["welcome back"]


async def test_the_reconnect_hint_sets_the_delay(tmp_path: Path) -> None:
    # A server shutting down tells each client when to come back (afterMs, spread
    # over 4 s here). With a backoff of at most 0.05 s, a client that ignored the
    # hint would be back at once: each comes back no sooner than it was told.
    settings = ServerSettings(host="127.0.0.1", port=0, data_dir=tmp_path, reconnect_spread=4.0)
    runner, url = await start_server(settings)
    port = int(url.rsplit(":", 1)[1])
    backoff = Backoff(base=0.05, max_delay=0.05, min_delay=0.01)
    clients = [Client(url, "hint", user=f"u{i}", events=False, backoff=backoff) for i in range(3)]
    seen = [Recorder(client) for client in clients]
    try:
        for client in clients:
            await client.start()
        await runner.cleanup()
        runner, _ = await start_server(replace(settings, port=port))
        await wait_for(lambda: all(s.of(Reconnected) for s in seen), WAIT)
    finally:
        for client in clients:
            await client.close()
        await runner.cleanup()
    for recorder in seen:
        (hint,) = recorder.of(ReconnectHint)
        told = recorder.time_of(lambda e: isinstance(e, ReconnectHint))
        back = recorder.time_of(lambda e: isinstance(e, Reconnected))
        assert back - told >= hint.after_ms / 1000 - 0.01, (hint.after_ms, back - told)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_peer_connections_outlive_a_resume() -> None:
    from aiortc import RTCDataChannel

    from hubbub.peer import Mesh, Peer

    got: asyncio.Queue[str] = asyncio.Queue()

    def on_channel(peer: Peer, channel: RTCDataChannel) -> None:
        channel.on("message", got.put_nowait)

    async with hubbub_serve() as (url, _process):
        proxy, proxy_url = await proxy_for(url)
        try:
            async with (
                Client(url, "mesh", user="alice", events=False) as alice,
                Mesh(alice, on_datachannel=on_channel) as alice_mesh,
                Client(proxy_url, "mesh", user="bob", events=False, backoff=fast_backoff(5)) as bob,
                Mesh(bob) as bob_mesh,
            ):
                seen_by_alice, seen_by_bob = Recorder(alice), Recorder(bob)
                to_alice = await bob_mesh.wait_for_peer("alice", timeout=60)
                to_bob = await alice_mesh.wait_for_peer("bob", timeout=60)
                channel = await to_alice.open_channel("notes", timeout=60)
                channel.send("before")
                async with asyncio.timeout(WAIT):
                    assert await got.get() == "before"

                proxy.cut_all()
                await wait_for(lambda: bool(seen_by_bob.of(Resumed)), WAIT)
                await asyncio.sleep(0.5)  # a teardown would have begun by now
                channel.send("after")
                async with asyncio.timeout(WAIT):
                    assert await got.get() == "after"
                assert bob_mesh.peers["alice"] is to_alice
                assert alice_mesh.peers["bob"] is to_bob
                assert to_alice.connected
                assert to_bob.connected
                assert seen_by_alice.of(UserLeft) == []
        finally:
            await proxy.close()


async def test_a_signal_made_while_the_connection_is_down_goes_out_after_the_resume() -> None:
    """A polite Python peer offers (nobody offered to it) while its connection is
    down: the offer goes out once the session is resumed, as hubbub.js does."""
    from hubbub.peer import Mesh
    from tests.wsclient import Client as PlainClient

    async with hubbub_serve() as (url, _process):
        proxy, proxy_url = await proxy_for(url)
        alice = await PlainClient.connect(url)  # joined first, and never offers
        try:
            await alice.join("held", "alice")
            async with (
                Client(proxy_url, "held", user="bob", events=False, backoff=fast_backoff(6)) as bob,
                Mesh(bob, polite_offer_after=3.0) as bob_mesh,
            ):
                seen_by_bob = Recorder(bob)
                to_alice = bob_mesh.peers["alice"]
                proxy.accepting = False
                proxy.cut_all()
                await wait_for(lambda: bool(seen_by_bob.of(Disconnected)), WAIT)
                assert to_alice.pc.signalingState == "stable"  # no offer made yet
                await wait_for(lambda: to_alice.pc.signalingState == "have-local-offer", WAIT)
                assert not seen_by_bob.of(Resumed)  # made while down
                proxy.accepting = True
                await wait_for(lambda: bool(seen_by_bob.of(Resumed)), WAIT)
                async with asyncio.timeout(WAIT):
                    while True:
                        message = await alice.recv()
                        if message["type"] == "signal" and message["signal"].get("type") == "offer":
                            break
                assert message["fromUserId"] == "bob"
        finally:
            await alice.close()
            await proxy.close()

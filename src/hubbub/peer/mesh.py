"""A mesh of aiortc peer connections, one per other member of the room.

The mesh listens to a :class:`~hubbub.client.Client`: a member who joins after us
gets an offer from us (we are impolite toward them), a member who was there first
offers to us, and ``signal`` messages are routed to the peer they come from.
When the client resumes its session after a lost connection, nothing changes for
the peers (the others never saw us leave, and the signals sent meanwhile are
replayed); when it joins afresh, every peer connection is made anew.
Everything a peer does (our offers, their signals) runs in order in one task per
peer, so a description is always applied before the candidates that follow it.

aiortc gathers all its candidates before it sends a description (no trickle):
our candidates travel inside the SDP. Candidates that a browser trickles are added
as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from hubbub.client import (
    Client,
    Event,
    NotConnected,
    Reconnected,
    Resumed,
    RoomJoined,
    SignalReceived,
    UserJoined,
    UserLeft,
)
from hubbub.peer import files, large_packets
from hubbub.peer.closing import close_peer_connection
from hubbub.peer.ice import IcePair, avoid_relaying_into_lans, selected_pair
from hubbub.peer.media import MediaSource
from hubbub.peer.negotiation import Move, decide
from hubbub.peer.sctp import deepen_receive_buffers, delay_sacks
from hubbub.peer.signals import (
    BadSignal,
    Candidate,
    UnknownSignal,
    description_signal,
    parse_signal,
)

log = logging.getLogger("hubbub.peer")

MAX_PENDING_SIGNALS = 256
"""Signals from one member waiting to be handled; past it they are dropped (a
member flooding us with signals gets nowhere)."""

MAX_HELD_CANDIDATES = 64
"""Candidates of an ignored offer kept for the answer that follows it."""

MAX_HELD_SIGNALS = 64
"""Signals made while the connection to the server is down, kept for when the
session is resumed; past it they are dropped."""

POLITE_OFFER_AFTER = 5.0
"""Seconds a polite peer waits for the other's first offer before it offers itself
(the other may be a client that never offers first)."""

RESTART_OFFER_AFTER = 5.0
"""Seconds a polite peer whose connection failed waits for the other's new offer
before it offers on a fresh connection itself."""

STEP_END_WAIT = 2.0
"""Seconds a closing peer waits for the negotiation step in hand (binding the host
sockets of a gathering takes milliseconds) before it cancels it."""

RESERVED_PREFIX = "hubbub-"
"""Channel labels hubbub keeps for itself (docs/peer-protocol.md)."""
FILE_CHANNEL_PREFIX = "hubbub-file:"
CONTROL_CHANNEL = "hubbub-control"

PeerCallback = Callable[["Peer"], Awaitable[None] | None]
TrackCallback = Callable[["Peer", MediaStreamTrack], Awaitable[None] | None]
ChannelCallback = Callable[["Peer", RTCDataChannel], Awaitable[None] | None]

_OFFER = object()
"""Queued to make an offer (renegotiation)."""
_FIRST_OFFER = object()
"""Queued to make the first offer, unless the other has made one since."""


class PeerClosed(Exception):
    """The peer connection was closed (the member left, or the mesh closed)."""


class Peer:
    """The connection to one other member of the room.

    ``pc`` is the aiortc ``RTCPeerConnection`` (it may be replaced once, before the
    connection is up, to settle an offer collision: see
    :mod:`hubbub.peer.negotiation`).
    """

    def __init__(self, mesh: Mesh, user_id: str, polite: bool, *, offer: bool = True) -> None:
        self.user_id = user_id
        self.polite = polite
        self.tracks: list[MediaStreamTrack] = []
        self.channels: dict[str, RTCDataChannel] = {}
        self.moves: list[Move] = []
        """The negotiation moves made for this peer's descriptions, in order."""
        self._mesh = mesh
        self._inbox: asyncio.Queue[object] = asyncio.Queue(MAX_PENDING_SIGNALS)
        self._making_offer = False
        self._offered_at: float | None = None
        """When our latest offer went out (monotonic clock)."""
        self._ignore_offer = False
        self._held_candidates: list[Any] = []
        """Candidates that came with an offer we ignored: a browser that gives its
        offer up answers ours from the same ICE agent and does not send them again."""
        self._connected = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self._stepping = False
        self._step_ended = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._media_attached_to: RTCPeerConnection | None = None
        self._remote_max_packet: int | None = None
        """The largest SCTP packet the other said it reads (its descriptions)."""
        self.pc = self._new_peer_connection()
        self._worker = asyncio.create_task(self._work(), name=f"hubbub-peer-{user_id}")
        if not offer:
            pass  # a hidden member offered to us: we answer
        elif not polite or mesh.hidden or mesh.polite_offer_after <= 0:
            # impolite, or hidden (nobody knows we are here, so nobody offers)
            self._inbox.put_nowait(_FIRST_OFFER)
        else:
            self._spawn(self._offer_if_nobody_does())

    # -- public -----------------------------------------------------------------

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and not self._closed.is_set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once the peer connection is up; raise :class:`PeerClosed` if it
        closes first, TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            closed = asyncio.ensure_future(self._closed.wait())
            connected = asyncio.ensure_future(self._connected.wait())
            try:
                await asyncio.wait({closed, connected}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                connected.cancel()
        if self._closed.is_set():
            raise PeerClosed(self.user_id)

    def selected_pair(self) -> IcePair | None:
        """The ICE candidate pair the connection uses (host, srflx, relay...), once
        it is up."""
        return selected_pair(self.pc)

    async def wait_closed(self) -> None:
        """Return once the peer connection is closed (the member left, or it failed)."""
        await self._closed.wait()

    async def open_channel(
        self,
        label: str,
        *,
        ordered: bool = True,
        max_retransmits: int | None = None,
        max_packet_life_time: int | None = None,
        protocol: str = "",
        timeout: float | None = None,
    ) -> RTCDataChannel:
        """Open a data channel once the connection is up, and return it open.

        Reliable and ordered by default; ``ordered=False, max_retransmits=0`` for
        data that is stale once late (game state, positions).
        """
        if label.startswith(RESERVED_PREFIX):
            raise ValueError(f"channel labels starting with {RESERVED_PREFIX!r} are hubbub's own")
        await self.wait_connected(timeout)
        needs_negotiation = self.pc.sctp is None
        channel = self.pc.createDataChannel(
            label,
            ordered=ordered,
            maxRetransmits=max_retransmits,
            maxPacketLifeTime=max_packet_life_time,
            protocol=protocol,
        )
        self._tune_sctp(self.pc)
        if needs_negotiation:  # the other's offer had no data section: offer one
            self._queue(_OFFER)
        await files.wait_open(channel, timeout)
        self.channels[label] = channel
        return channel

    async def send_file(
        self,
        path: str | Path,
        *,
        progress: files.Progress | None = None,
        offered: Callable[[], None] | None = None,
        timeout: float | None = None,
        chunk_size: int = files.CHUNK_SIZE,
    ) -> files.TransferResult:
        """Send a file over its own channel (``docs/peer-protocol.md``); return how
        it went. Resumes where the receiver says it has the start already.
        ``offered`` is called once the offer is out, waiting for the receiver's answer."""
        await self.wait_connected(timeout)
        sender = files.FileSender(
            Path(path), progress=progress, offered=offered, chunk_size=chunk_size
        )
        channel = self.pc.createDataChannel(FILE_CHANNEL_PREFIX + sender.transfer_id)
        self._tune_sctp(self.pc)
        return await sender.run(channel, max_message_size=_max_message_size(self.pc))

    async def close(self) -> None:
        """Close the connection to this member; every call waits for the same close,
        which a cancelled caller does not cut short (its sockets would stay open)."""
        await asyncio.shield(self.begin_closing())

    def begin_closing(self) -> asyncio.Future[None]:
        """Start closing (once); the close under way."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return self._closing

    async def _close(self) -> None:
        self._closed.set()
        for task in list(self._tasks):
            task.cancel()
        if self._stepping:
            # aioice keeps the host sockets it bound only once it has bound them all:
            # a gathering cancelled half-way loses them, open. The step in hand ends
            # first (host sockets take milliseconds; past this wait only STUN and
            # TURN queries are left, which a cancel closes).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._step_ended.wait()), STEP_END_WAIT)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        await close_peer_connection(self.pc)
        if self._mesh.peers.get(self.user_id) is self:
            del self._mesh.peers[self.user_id]
        self._mesh._changed()

    # -- negotiation ------------------------------------------------------------

    def _new_peer_connection(self) -> RTCPeerConnection:
        mesh = self._mesh
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=mesh.ice_servers_now(),
                iceTransportPolicy=RTCIceTransportPolicy(mesh.ice_transport_policy),
            )
        )

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is not self.pc:
                return
            state = pc.connectionState
            log.debug("peer %s: connection %s", self.user_id, state)
            if state == "connected":
                self._tune_sctp(pc)
                self._connected.set()
            elif state in ("failed", "closed") and self._connected.is_set():
                # aiortc cannot restart ICE: the connection starts anew instead
                self._connected.clear()
                self._spawn(self._connect_anew())
            self._mesh._changed()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if pc is not self.pc:
                return
            self.tracks.append(track)
            self._mesh._call(self._mesh.on_track, self, track)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if pc is not self.pc:
                return
            if channel.label.startswith(FILE_CHANNEL_PREFIX):
                # Listening from here on, before this handler returns: the offer can
                # be in the same packet as the channel's opening (browsers send it at
                # once), and aiortc hands it over before any task would run. The
                # mesh's task, not the peer's: it must outlive the peer to report a
                # broken transfer.
                receiver = files.FileReceiver(channel, self._mesh.files, self.user_id)
                self._mesh._spawn(receiver.run())
                return
            if channel.label.startswith(RESERVED_PREFIX):
                return  # hubbub's own (hubbub.js's "hubbub-control"): accepted, not the app's
            self.channels[channel.label] = channel
            self._mesh._call(self._mesh.on_datachannel, self, channel)

        return pc

    def _attach_media(self, pc: RTCPeerConnection, offered: set[str] | None) -> None:
        """Add what we send and receive to ``pc``, once: before our own offer
        (``offered`` None), or after the other's offer, to the kinds it offers
        (aiortc cannot answer with a transceiver the offer did not ask for)."""
        if self._media_attached_to is pc:
            return
        self._media_attached_to = pc
        mesh = self._mesh
        sending = set()
        if mesh.media is not None:
            for track in mesh.media.tracks(offered):
                pc.addTrack(track)
                sending.add(track.kind)
        if mesh.receive_media and offered is None:
            for kind in ("audio", "video"):
                if kind not in sending:
                    pc.addTransceiver(kind, direction="recvonly")
        if offered is None and pc.sctp is None:
            # As hubbub.js does: the first offer carries a data section (after the
            # media ones, where browsers expect it), so that app and file channels
            # open later without another offer.
            pc.createDataChannel(CONTROL_CHANNEL)
        self._tune_sctp(pc)

    def _tune_sctp(self, pc: RTCPeerConnection) -> None:
        if pc.sctp is not None:
            delay_sacks(pc.sctp)
            deepen_receive_buffers(pc.sctp)
            large_packets.send_large_packets(pc.sctp, self._remote_max_packet)

    def _description_signal(self, pc: RTCPeerConnection) -> dict[str, Any]:
        # say we read large packets only once we do (docs/peer-protocol.md)
        max_packet_size = large_packets.read_large_packets(pc.sctp)
        return description_signal(pc.localDescription, max_packet_size=max_packet_size)

    def _queue(self, item: object) -> None:
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("peer %s: too many pending signals, one dropped", self.user_id)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect_anew(self) -> None:
        """After a connection that was up failed (its NAT mappings gone, a network
        changed): the impolite side makes a fresh peer connection and offers on it;
        the polite side waits for that offer (which replaces its own connection, see
        _handle_signal), and offers itself if none comes (the other may be a client
        that restarts no connection)."""
        if self.closed:
            return
        if self.polite:
            failed = self.pc
            await asyncio.sleep(RESTART_OFFER_AFTER)
            if self.closed or self.pc is not failed:
                return  # the other's offer came and made a new one
        log.info("peer %s: the connection failed; connecting anew", self.user_id)
        await self._replace_peer_connection()
        self._queue(_OFFER)

    async def _replace_peer_connection(self) -> None:
        old, self.pc = self.pc, self._new_peer_connection()
        self._connected.clear()
        self._remote_max_packet = None
        self.tracks.clear()
        self.channels.clear()
        await close_peer_connection(old)

    async def _offer_if_nobody_does(self) -> None:
        await asyncio.sleep(self._mesh.polite_offer_after)
        self._queue(_FIRST_OFFER)

    async def _work(self) -> None:
        while not self.closed:
            item = await self._inbox.get()
            self._stepping = True
            self._step_ended.clear()
            try:
                if item is _FIRST_OFFER:
                    if self.pc.remoteDescription is None:  # else the other offered first
                        await self._make_offer()
                elif item is _OFFER:
                    await self._make_offer()
                else:
                    await self._handle_signal(item)
            except asyncio.CancelledError:
                raise
            except UnknownSignal:
                pass
            except (NotConnected, BadSignal) as exc:
                log.info("peer %s: %s", self.user_id, exc)
            except Exception:
                # aiortc refused a description or candidate: the peer sent something
                # we cannot use. Log it and go on with the next signal.
                log.exception("peer %s: negotiation step failed", self.user_id)
            finally:
                self._stepping = False
                self._step_ended.set()

    async def _make_offer(self) -> None:
        pc = self.pc
        if pc.signalingState != "stable":
            return
        self._attach_media(pc, None)
        self._making_offer = True
        try:
            await pc.setLocalDescription(await pc.createOffer())
        finally:
            self._making_offer = False
        self._offered_at = time.monotonic()
        await self._mesh._send_signal(self, self._description_signal(pc))

    def _offer_lost(self) -> bool:
        """Our offer is still unanswered after as long as a polite peer waits before
        it offers itself."""
        offered = self._offered_at
        return (
            not self.polite
            and self.pc.signalingState == "have-local-offer"
            and offered is not None
            and time.monotonic() - offered >= self._mesh.polite_offer_after
        )

    async def _handle_signal(self, value: Any) -> None:
        signal = parse_signal(value)
        if isinstance(signal, Candidate):
            if self._ignore_offer:
                if len(self._held_candidates) < MAX_HELD_CANDIDATES:
                    self._held_candidates.append(signal.candidate)
                return  # belongs to an offer we ignored, for now
            if self.pc.remoteDescription is None:
                log.debug("peer %s: candidate before any description, dropped", self.user_id)
                return
            await self.pc.addIceCandidate(signal.candidate)
            return
        description = signal.description
        if description.type == "offer" and _restarts_ice(self.pc, description.sdp):
            # A fresh connection (or an ICE restart, which aiortc cannot do): answer it
            # on a fresh peer connection of our own.
            log.info("peer %s: an offer with new ICE credentials; connecting anew", self.user_id)
            await self._replace_peer_connection()
        move = decide(
            description.type,
            polite=self.polite,
            signaling_state=self.pc.signalingState,
            making_offer=self._making_offer,
        )
        if move is Move.IGNORE and description.type == "offer" and self._offer_lost():
            # A polite peer offers unasked only once it has waited this long without
            # an offer from us: ours never reached it (it was not listening yet).
            log.info("peer %s: our offer went unanswered; taking theirs", self.user_id)
            move = Move.REPLACE_AND_ACCEPT
        log.debug("peer %s: %s -> %s", self.user_id, description.type, move.value)
        self.moves.append(move)
        # as in the pattern, every description decides afresh whether the candidates
        # that follow it are dropped
        self._ignore_offer = move is Move.IGNORE and description.type == "offer"
        if move is Move.IGNORE:
            return
        self._remote_max_packet = signal.max_packet_size
        held, self._held_candidates = self._held_candidates, []
        if move is Move.APPLY_ANSWER:
            await self.pc.setRemoteDescription(description)
            avoid_relaying_into_lans(self.pc)
            if held:
                log.debug("peer %s: %d candidates of an ignored offer", self.user_id, len(held))
            for candidate in held:
                # the answer's own candidates may be the same ones: harmless twice
                with contextlib.suppress(ValueError):
                    await self.pc.addIceCandidate(candidate)
            return
        if move is Move.REPLACE_AND_ACCEPT:
            old, self.pc = self.pc, self._new_peer_connection()
            await close_peer_connection(old)
        pc = self.pc
        await pc.setRemoteDescription(description)
        avoid_relaying_into_lans(pc)
        self._attach_media(pc, {transceiver.kind for transceiver in pc.getTransceivers()})
        await pc.setLocalDescription(await pc.createAnswer())
        await self._mesh._send_signal(self, self._description_signal(pc))


class Mesh:
    """Peer connections to every other member of the client's room.

    ::

        async with Client(url, room="r", user="bot") as client, Mesh(client) as mesh:
            peer = await mesh.wait_for_peer("alice")
            channel = await peer.open_channel("chat")
            channel.send("hi")

    ``ice_servers`` are ``RTCIceServer`` or dicts as a browser takes them
    (``{"urls": ..., "username": ..., "credential": ...}``); by default those the
    server gives (STUN, TURN with fresh credentials), and none when it gives none,
    so only host candidates are used. ``media`` is sent to every peer;
    ``receive_media`` asks every peer for audio and video even when we send none.
    ``on_track``, ``on_datachannel`` and ``on_peer`` are called (and awaited, if
    they return an awaitable, in their own task) as tracks, channels and peers
    arrive. Files offered to us are taken by ``files`` (a :class:`files.FileInbox`),
    or refused when it is None. ``ice_transport_policy="relay"`` sends everything
    through the TURN server (as a browser's ``iceTransportPolicy``).
    """

    def __init__(
        self,
        client: Client,
        *,
        ice_servers: Iterable[RTCIceServer | Mapping[str, Any]] | None = None,
        media: MediaSource | None = None,
        receive_media: bool = False,
        on_peer: PeerCallback | None = None,
        on_track: TrackCallback | None = None,
        on_datachannel: ChannelCallback | None = None,
        files: files.FileInbox | None = None,
        polite_offer_after: float = POLITE_OFFER_AFTER,
        ice_transport_policy: str = "all",
    ) -> None:
        if ice_transport_policy not in ("all", "relay"):
            raise ValueError("ice_transport_policy: 'all' or 'relay'")
        self.client = client
        self.ice_transport_policy = ice_transport_policy
        self.ice_servers = (
            None if ice_servers is None else [_ice_server(server) for server in ice_servers]
        )
        self.media = media
        self.receive_media = receive_media
        self.on_peer = on_peer
        self.on_track = on_track
        self.on_datachannel = on_datachannel
        self.files = files
        self.polite_offer_after = polite_offer_after
        self.peers: dict[str, Peer] = {}
        self._change = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dropped: set[Peer] = set()
        """Peers of members who left, still closing."""
        self._started = False
        self._reconnected = False
        self._held_signals: list[tuple[Peer, Any]] = []
        """Signals made while the connection was down, oldest first: they go out
        when the session is resumed (its peer connections carry on)."""
        self._sending_held = False

    @property
    def hidden(self) -> bool:
        """Whether we joined hidden (the others are not told we are here)."""
        return self.client.grants is not None and "hidden" in self.client.grants

    def ice_servers_now(self) -> list[RTCIceServer]:
        """The ICE servers for a new peer connection."""
        if self.ice_servers is not None:
            return list(self.ice_servers)
        servers = []
        for server in self.client.ice_servers:
            try:
                servers.append(_ice_server(server))
            except (KeyError, TypeError, ValueError):
                log.warning("an ICE server from the server is unusable; skipped")
        return servers

    async def __aenter__(self) -> Mesh:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Connect to the members present and to those who come."""
        if self._started:
            return
        self._started = True
        for participant in self.client.participants.values():
            self._add_peer(participant.user_id, participant.polite)
        self.client.add_listener(self._on_event)
        # then the signals that came before we listened (an offer made as soon as the
        # other saw us join) go to those peers, before anything that comes later
        for early in self.client.take_signals():
            self._on_event(early)

    async def close(self) -> None:
        self.client.remove_listener(self._on_event)
        # the peers of members who left may still be closing: waited for too
        peers = [*self.peers.values(), *self._dropped]
        self.peers.clear()
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_for_peer(self, user_id: str, timeout: float | None = None) -> Peer:
        """The peer ``user_id`` once it is connected (waiting for them to join)."""
        async with asyncio.timeout(timeout):
            while True:
                peer = self.peers.get(user_id)
                if peer is not None and peer.connected:
                    return peer
                self._change.clear()
                if peer is not None:
                    waiter = asyncio.ensure_future(peer.wait_connected())
                    change = asyncio.ensure_future(self._change.wait())
                    try:
                        await asyncio.wait({waiter, change}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for future in (waiter, change):
                            future.cancel()
                        with contextlib.suppress(asyncio.CancelledError, PeerClosed):
                            await waiter
                else:
                    await self._change.wait()

    # -- events from the client ---------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SignalReceived):
            peer = self.peers.get(event.from_user_id)
            if peer is None:
                participant = self.client.participants.get(event.from_user_id)
                if participant is not None:
                    peer = self._add_peer(participant.user_id, participant.polite)
                elif isinstance(event.signal, dict) and event.signal.get("type") == "offer":
                    # a hidden member (a recorder, a bot) offers: we answer it
                    peer = self._add_peer(event.from_user_id, False, offer=False)
                else:
                    return
            peer._queue(event.signal)
        elif isinstance(event, UserJoined):
            self._drop_peer(event.user_id)  # a new session under an old name
            self._add_peer(event.user_id, event.polite)
        elif isinstance(event, UserLeft):
            self._drop_peer(event.user_id)
        elif isinstance(event, Resumed):
            if self._held_signals and not self._sending_held:
                self._sending_held = True
                self._spawn(self._send_held())
        elif isinstance(event, Reconnected):  # a fresh join (a resume changes nothing)
            self._reconnected = True
            self._held_signals.clear()  # every peer connection starts anew
        elif isinstance(event, RoomJoined) and self._reconnected:
            # Back after a reconnection: the others saw us leave and come back and
            # will connect anew, so every old peer connection goes.
            self._reconnected = False
            for user_id in list(self.peers):
                self._drop_peer(user_id)
            for participant in event.participants:
                self._add_peer(participant.user_id, participant.polite)

    async def _send_signal(self, peer: Peer, signal: Any) -> None:
        """Relay ``signal`` to ``peer``'s member; while the connection is down (or
        older held signals wait), keep it for when the session is resumed."""
        if not self._held_signals:
            try:
                await self.client.signal(peer.user_id, signal)
                return
            except NotConnected:
                pass
        if len(self._held_signals) >= MAX_HELD_SIGNALS:
            log.warning("too many signals while disconnected: one to %s dropped", peer.user_id)
            return
        self._held_signals.append((peer, signal))

    async def _send_held(self) -> None:
        """Send the held signals, oldest first, of the peers still here."""
        try:
            held = self._held_signals
            while held:
                peer, signal = held.pop(0)
                if self.peers.get(peer.user_id) is peer:  # not dropped meanwhile
                    try:
                        await self.client.signal(peer.user_id, signal)
                    except NotConnected:
                        held.insert(0, (peer, signal))
                        return  # down again: the next resume sends the rest
        finally:
            self._sending_held = False

    def _add_peer(self, user_id: str, polite: bool, *, offer: bool = True) -> Peer:
        peer = Peer(self, user_id, polite, offer=offer)
        self.peers[user_id] = peer
        self._changed()
        self._call(self.on_peer, peer)
        return peer

    def _drop_peer(self, user_id: str) -> None:
        peer = self.peers.pop(user_id, None)
        if peer is not None:
            self._dropped.add(peer)
            peer.begin_closing().add_done_callback(lambda _: self._dropped.discard(peer))
            self._changed()

    def _changed(self) -> None:
        self._change.set()

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, callback: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
        except Exception:
            log.exception("a mesh callback failed")
            return
        if result is not None:
            self._spawn(_logged(result))


async def _logged(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("a mesh callback failed")


def _ice_server(server: RTCIceServer | Mapping[str, Any]) -> RTCIceServer:
    if isinstance(server, RTCIceServer):
        return server
    return RTCIceServer(
        urls=server["urls"],
        username=server.get("username"),
        credential=server.get("credential"),
    )


def _ice_ufrag(sdp: str) -> str | None:
    for line in sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line.removeprefix("a=ice-ufrag:").strip()
    return None


def _restarts_ice(pc: RTCPeerConnection, sdp: str) -> bool:
    """Whether an offer carries other ICE credentials than the connection has."""
    current = pc.remoteDescription
    if current is None:
        return False
    ufrag = _ice_ufrag(sdp)
    return ufrag is not None and ufrag != _ice_ufrag(current.sdp)


def _max_message_size(pc: RTCPeerConnection) -> int:
    sctp = pc.sctp
    remote = getattr(sctp, "_remote_max_message_size", None) if sctp is not None else None
    return int(remote) if isinstance(remote, int) and remote > 0 else 65536

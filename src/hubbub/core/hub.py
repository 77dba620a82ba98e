"""The hub: every session and room of one server process, and the routing of every
message between them.

Sans-I/O. The server adapter calls :meth:`Hub.connect`, :meth:`Hub.receive` and
:meth:`Hub.disconnect`, and :meth:`Hub.tick` when :meth:`Hub.next_deadline` comes;
everything the hub wants sent goes out through its :class:`~hubbub.core.outbox.Outbox`
(one session) or its broker (a room, or a session that may sit on another node).
Time comes from an injected clock.

The hub itself is a facade: it holds the dispatch table and the entry points of
the adapter and the HTTP API; those of the store, the broker, the membership and the
media bridge are :mod:`~hubbub.core.backend_events`'s. Each is handed to the feature
that owns it (:mod:`~hubbub.core.joining`, :mod:`~hubbub.core.chat`,
:mod:`~hubbub.core.presence`, :mod:`~hubbub.core.calling`,
:mod:`~hubbub.core.notifications`, :mod:`~hubbub.core.resuming`,
:mod:`~hubbub.core.cluster`, :mod:`~hubbub.core.ice`, :mod:`~hubbub.core.lifecycle`),
over one shared :class:`~hubbub.core.context.HubContext`. Whatever a session sends
while it waits is held (:mod:`~hubbub.core.waiting`) and handled, in order, at the
end of the entry point that ended the wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import msgspec

from hubbub.auth.admission import Admission
from hubbub.auth.grants import Grant, Identity
from hubbub.auth.turn import IceServerConfig
from hubbub.broker import Broker, Member, Membership
from hubbub.broker.memory import LocalMembership, MemoryBroker
from hubbub.core import lifecycle
from hubbub.core.backend_events import BackendEvents
from hubbub.core.calling import Calling, new_call_id
from hubbub.core.calls import CallRegistry
from hubbub.core.chat import ChatFeature
from hubbub.core.cluster import ClusterEvents
from hubbub.core.context import HubContext
from hubbub.core.counters import HubCounters
from hubbub.core.events import HubObserver, NoObserver
from hubbub.core.frontends import Frontends, FrontendSettings
from hubbub.core.handover import Handover
from hubbub.core.ice import IceFeature
from hubbub.core.joining import Joining, new_user_id
from hubbub.core.limits import Limits
from hubbub.core.media import MediaFeature
from hubbub.core.media_bridge import MediaRequests, NoMedia
from hubbub.core.notifications import Notifications
from hubbub.core.ordering import DEFAULT_GAP_TIMEOUT, DEFAULT_MAX_HELD, ChatOrdering
from hubbub.core.outbox import Outbox
from hubbub.core.peerjs import PeerjsFeature
from hubbub.core.presence import PresenceFeature
from hubbub.core.resuming import Resuming
from hubbub.core.rooms import RoomRegistry
from hubbub.core.session import Session
from hubbub.core.storage import Storage
from hubbub.core.tracker import TrackerFeature
from hubbub.core.users import UserRegistry
from hubbub.core.waiting import Waiting
from hubbub.core.y_webrtc import YWebrtcFeature
from hubbub.media.modes import MediaSetting
from hubbub.protocol import codec, peerjs, tracker, y_webrtc
from hubbub.protocol.errors import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    no_such_peer,
    not_in_room,
)
from hubbub.protocol.messages import (
    CallAccept,
    CallCancel,
    CallDecline,
    CallEnd,
    CallRequest,
    Chat,
    EndRoom,
    GetNotifications,
    History,
    IncomingMessage,
    JoinRoom,
    LeaveRoom,
    MarkNotificationsRead,
    MediaAnswer,
    MediaCandidate,
    MediaConfigure,
    MediaLeave,
    MediaPublish,
    MediaSending,
    MediaSubscribe,
    MediaUnpublish,
    MediaUnsubscribe,
    Ping,
    Pong,
    RemoveParticipant,
    Resume,
    RoomBroadcast,
    SetPresence,
    Signal,
    SignalRelay,
    Typing,
)
from hubbub.store import Notification, Retention


class Hub:
    """All sessions and rooms of one server process."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        storage: Storage,
        broker: Broker | None = None,
        membership: Membership | None = None,
        limits: Limits | None = None,
        history_on_join: int = 50,
        offline_on_join: int = 50,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_session_id: Callable[[], str] = lifecycle.new_session_id,
        new_user_id: Callable[[], str] = new_user_id,
        new_call_id: Callable[[], str] = new_call_id,
        admission: Admission | None = None,
        ice_servers: IceServerConfig | None = None,
        observer: HubObserver | None = None,
        rng: random.Random | None = None,
        chat_in_seq_order: bool = True,
        chat_gap_timeout: float = DEFAULT_GAP_TIMEOUT,
        chat_gap_max_held: int = DEFAULT_MAX_HELD,
        frontends: FrontendSettings | None = None,
        media: MediaRequests | None = None,
        media_mode: MediaSetting = MediaSetting.AUTO,
        mesh_max_participants: int = 4,
    ) -> None:
        limits = limits or Limits()
        self._waiting = Waiting(limits.message_burst, self._dispatch)
        self._ready = self._waiting.ready
        self._clock = clock
        self._max_json_depth = limits.max_json_depth
        ctx = self._ctx = HubContext(
            outbox=outbox,
            storage=storage,
            broker=broker if broker is not None else MemoryBroker(),
            membership=membership if membership is not None else LocalMembership(),
            limits=limits,
            admission=admission or Admission(),
            observer=observer if observer is not None else NoObserver(),
            clock=clock,
            wall_clock=wall_clock,
            rng=rng,
            history_on_join=history_on_join,
            offline_on_join=offline_on_join,
            retention=retention,
            waiting=self._waiting,
        )
        ctx.lifecycle = self._lifecycle = lifecycle.Lifecycle(ctx, new_session_id)
        ctx.joining = self._joining = Joining(ctx, new_user_id)
        ctx.chat = self._chat = ChatFeature(ctx)
        ctx.presence = self._presence = PresenceFeature(ctx)
        ctx.calling = self._calling = Calling(ctx, new_call_id)
        ctx.notifications = self._notifications = Notifications(ctx)
        ctx.resuming = self._resuming = Resuming(ctx)
        ctx.handover = self._handover = Handover(ctx)
        ctx.cluster = ClusterEvents(ctx)
        ctx.ice = IceFeature(ctx, ice_servers)
        ctx.ordering = ChatOrdering(
            ctx,
            in_seq_order=chat_in_seq_order,
            gap_timeout=chat_gap_timeout,
            max_held=chat_gap_max_held,
        )
        ctx.media = self._media = MediaFeature(
            ctx,
            media if media is not None else NoMedia(),
            default=media_mode,
            mesh_max=mesh_max_participants,
        )
        ctx.frontends = self._frontends = Frontends(ctx, frontends or FrontendSettings())
        self._frontends.peerjs = peer = PeerjsFeature(ctx, self._frontends)
        self._frontends.y_webrtc = yjs = YWebrtcFeature(ctx, self._frontends)
        self._frontends.tracker = torrent = TrackerFeature(ctx, self._frontends)
        self._received = ctx.counters.received
        self._publish_to_session = ctx.broker.publish_to_session
        self.backend_events = BackendEvents(ctx, self._settle)
        """What the store, the broker, the membership and the media bridge call."""
        ctx.broker.attach(self.backend_events)
        ctx.membership.attach_members(self.backend_events)
        joining, chat, presence = self._joining, self._chat, self._presence
        calling, notifications = self._calling, self._notifications
        self._handlers: dict[type[Any], Callable[[Session, Any], None]] = {
            Signal: self._on_signal,
            Chat: chat.on_chat,
            History: chat.on_history,
            JoinRoom: joining.on_join_room,
            LeaveRoom: joining.on_leave_room,
            Ping: self._on_ping,
            SetPresence: presence.on_presence,
            Typing: presence.on_typing,
            RemoveParticipant: joining.on_remove_participant,
            EndRoom: joining.on_end_room,
            GetNotifications: notifications.on_get_notifications,
            MarkNotificationsRead: notifications.on_mark_notifications_read,
            CallRequest: calling.on_call_request,
            CallAccept: calling.on_call_accept,
            CallDecline: calling.on_call_decline,
            CallCancel: calling.on_call_cancel,
            CallEnd: calling.on_call_end,
            Resume: self._resuming.on_resume,
            MediaPublish: self._media.on_media_publish,
            MediaUnpublish: self._media.on_media_unpublish,
            MediaSubscribe: self._media.on_media_subscribe,
            MediaUnsubscribe: self._media.on_media_unsubscribe,
            MediaAnswer: self._media.on_media_answer,
            MediaConfigure: self._media.on_media_configure,
            MediaCandidate: self._media.on_media_candidate,
            MediaLeave: self._media.on_media_leave,
            MediaSending: self._media.on_media_sending,
            # The front-ends' messages (see hubbub.core.frontends).
            peerjs.Heartbeat: peer.on_heartbeat,
            peerjs.Relay: peer.on_relay,
            y_webrtc.Subscribe: yjs.on_subscribe,
            y_webrtc.Unsubscribe: yjs.on_unsubscribe,
            y_webrtc.Publish: yjs.on_publish,
            y_webrtc.Ping: yjs.on_ping,
            tracker.Announce: torrent.on_announce,
            tracker.Scrape: torrent.on_scrape,
        }

    # -- what the rest of the server reads ----------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._ctx.limits

    @property
    def admission(self) -> Admission:
        return self._ctx.admission

    @property
    def rooms(self) -> RoomRegistry:
        return self._ctx.rooms

    @property
    def sessions(self) -> dict[str, Session]:
        return self._ctx.sessions

    @property
    def detached(self) -> dict[str, Session]:
        """The sessions whose connection was lost, waiting for a resume."""
        return self._lifecycle.detached

    @property
    def users(self) -> UserRegistry:
        return self._ctx.users

    @property
    def calls(self) -> CallRegistry:
        return self._ctx.calls

    @property
    def frontends(self) -> Frontends:
        """The PeerJS, y-webrtc and tracker front-ends (see :mod:`hubbub.core.frontends`)."""
        return self._frontends

    @property
    def media(self) -> MediaFeature:
        """Each room's mode, and calls through the media server (see :mod:`hubbub.core.media`)."""
        return self._media

    @property
    def counters(self) -> HubCounters:
        return self._ctx.counters

    @property
    def observer(self) -> HubObserver:
        return self._ctx.observer

    @observer.setter
    def observer(self, observer: HubObserver) -> None:
        self._ctx.observer = observer

    @property
    def pending_deadlines(self) -> int:
        """How many deadlines the core holds, due or not (cancelled ones stay until due
        or compacted)."""
        return len(self._ctx.timers)

    def is_waiting(self, session: Session) -> bool:
        """Whether what the session sends is held (see :mod:`hubbub.core.waiting`)."""
        return Waiting.holds(session)

    # -- what the adapter calls ---------------------------------------------------------

    def connect(
        self, link: Any, identity: Identity | None = None, *, host: str | None = None
    ) -> Session:
        """A client connected; ``link`` is the adapter's handle for it, ``identity``
        what it proved in the handshake (a token), if anything, ``host`` the host it
        reached the server by (its ``Host`` header)."""
        session = self._lifecycle.connect(link, identity, host)
        self._settle()
        return session

    def receive(self, session: Session, text: str | bytes) -> None:
        """One text frame from the session's client."""
        # The hot path: what it reads more than once a message is bound once, in
        # __init__, and the entry point's bookkeeping is inline.
        if session.closing:
            return
        if not session.budget.take(self._clock()):
            self._lifecycle.drop_for_rate(session)
            return
        session.dropped_in_a_row = 0
        try:
            message: IncomingMessage = codec.decode(text, max_depth=self._max_json_depth)
        except ProtocolError as error:
            self._ctx.send_error(session, error)
            return
        self._received[type(message)] += 1
        if session.waiting is not None or session.held is not None:
            try:
                self._waiting.hold(session, message)
            except ProtocolError as error:
                self._ctx.send_error(session, error)
            return
        try:
            self._handlers[type(message)](session, message)
        except ProtocolError as error:
            self._ctx.send_error(session, error)
        if self._ready:
            self._settle()

    def open_peerjs(self, link: Any, key: str, peer_id: str, token: str) -> Session:
        """A PeerJS client connected with these query parameters (see
        :meth:`~hubbub.core.peerjs.PeerjsFeature.open`)."""
        session = self._frontends.peerjs.open(link, key, peer_id, token)
        self._settle()
        return session

    def open_y_webrtc(self, link: Any, identity: Identity | None) -> Session:
        """A y-webrtc client connected (``identity``: what its token proves)."""
        session = self._frontends.y_webrtc.open(link, identity)
        self._settle()
        return session

    def open_tracker(self, link: Any, identity: Identity | None) -> Session:
        """A tracker client connected (``identity``: what its token proves)."""
        session = self._frontends.tracker.open(link, identity)
        self._settle()
        return session

    def receive_frontend(
        self,
        session: Session,
        text: str | bytes,
        decode: Callable[[str | bytes, int], Any],
        protocol: str,
    ) -> None:
        """One text frame from a front-end's client (a session its feature opened),
        decoded by the front-end's codec (``decode(text, max_depth)``), then handled
        as hubbub's own are: the message budget, the waiting queue, the handler of
        its type."""
        if session.closing:
            return
        if not session.budget.take(self._clock()):
            self._lifecycle.drop_for_rate(session)
            return
        session.dropped_in_a_row = 0
        frontends = self._frontends
        try:
            message = decode(text, self._max_json_depth)
        except ProtocolError as error:
            self._ctx.send_error(session, error)
            return
        frontends.received[protocol] += 1
        if session.waiting is not None or session.held is not None:
            try:
                self._waiting.hold(session, message)
            except ProtocolError as error:
                self._ctx.send_error(session, error)
            return
        self._dispatch(session, message)
        if self._ready:
            self._settle()

    def _dispatch(self, session: Session, message: IncomingMessage) -> None:
        try:
            self._handlers[type(message)](session, message)
        except ProtocolError as error:
            self._ctx.send_error(session, error)

    def receive_binary(self, session: Session) -> None:
        """A binary frame: counted against the rate, then refused."""
        if session.closing:
            return
        if not session.budget.take(self._ctx.clock()):
            self._lifecycle.drop_for_rate(session)
            return
        session.dropped_in_a_row = 0
        self._ctx.send_error(
            session,
            ProtocolError(ErrorCode.BINARY_NOT_SUPPORTED, "hubbub speaks JSON in text frames"),
        )

    def disconnect(self, session: Session, *, lost: bool = False) -> None:
        """The connection is gone: closed by either side, or ``lost`` (no close
        frame came: the network went, or the liveness check gave up on it).

        A lost session in a room keeps its place for ``resume_grace`` seconds,
        waiting for its client to ``resume`` it; any other ends now.
        """
        self._lifecycle.disconnect(session, lost=lost)
        self._settle()

    def tick(self, now: float | None = None) -> int:
        """Carry out what is due by ``now`` (the hub's clock when left out): resume
        grace periods, ring timeouts, token-mode deadlines, typing that was not
        renewed, TURN credentials to renew; and end the lost sessions whose replay
        buffer overran. The adapter calls this when :meth:`next_deadline` comes, and
        at least about once a second. Returns how many deadlines came due."""
        ran = self._ctx.timers.run_due(self._ctx.clock() if now is None else now)
        self._lifecycle.end_overrun()
        self._settle()
        return ran

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (the hub's clock); ``None``:
        nothing is scheduled."""
        return self._ctx.timers.next_deadline()

    def stop_input(self) -> None:
        """The server is shutting down: nothing more that clients send is handled."""
        self._lifecycle.stop_input()

    def announce_restart(self, spread_ms: int) -> int:
        """Tell every connected client to come back, each after its own delay of
        up to ``spread_ms`` so that they do not all return at once. A session another
        node was asked to take and has not (:meth:`hand_over_all`) is no longer
        given: its client joins afresh."""
        self._handover.giving.clear()
        return self._lifecycle.announce_restart(spread_ms)

    def hand_over_all(self, spread_ms: int) -> int:
        """In a cluster: ask the other nodes to take every session in a room, for its
        client to resume there (told ``reconnect`` with ``resume`` as each is taken,
        after its own delay of up to ``spread_ms``). Returns how many were asked for."""
        self._ctx.stop_spread_ms = spread_ms
        given = self._handover.give_all()
        self._settle()
        return given

    @property
    def handing_over(self) -> int:
        """Sessions this node asked others to take, not taken yet."""
        return len(self._handover.giving)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close a session's connection; no more of its input is read."""
        self._ctx.close(session, code, reason)
        self._settle()

    # -- what the HTTP API calls ---------------------------------------------------------

    def remove_participant(
        self, room_name: str, user_id: str, remote: Member | None = None
    ) -> bool:
        """Take ``user_id`` out of the room and close its connection (admin).
        ``remote``: the member as the cluster knows it, when this node may not."""
        removed = self._joining.remove_participant(room_name, user_id, remote)
        self._settle()
        return removed

    def end_room(self, room_name: str, keep: Session | None = None) -> int:
        """Take every member out of the room and close their connections (admin);
        returns how many members there were, as far as this node knows."""
        ended = self._joining.end_room(room_name, keep)
        self._settle()
        return ended

    def broadcast(self, room_name: str, data: bytes, event: str | None = None) -> int:
        """Send the application's message (``data``: encoded JSON) to everyone in
        the room, wherever they are connected; returns its time (ms since the epoch)."""
        ctx = self._ctx
        ts = ctx.now_ms()
        message = RoomBroadcast(room=room_name, data=msgspec.Raw(data), ts=ts, event=event)
        payload = codec.encode(message)
        room = ctx.rooms.get(room_name)
        if room is not None:
            ctx.publish_in_order(room, payload, None)
        else:
            ctx.broker.publish_to_room(room_name, payload, None)
        return ts

    def notify(self, notification: Notification) -> int:
        """A stored notification goes live to every connection of its user; returns
        how many of them are connected to this server."""
        return self._notifications.notify(notification)

    def notifications_read(self, user_id: str, ids: list[int]) -> None:
        """The user's notifications were marked read (by its backend): its
        connections are told, so that every one of them shows them read."""
        self._notifications.notifications_read(user_id, ids)

    # -- the two messages that need no feature of their own -----------------------------------

    def _on_signal(self, session: Session, message: Signal) -> None:
        room = session.room
        if room is None:
            raise not_in_room(message.ref)
        self._ctx.admission.require(session.identity, Grant.SIGNAL, message.ref)
        target: Session | Member | None = room.members.get(message.target_user_id)
        if target is None:
            target = self._ctx.membership.remote_member(room.name, message.target_user_id)
        if target is None or target is session:
            raise no_such_peer(message.ref)
        if room.sfu and not session.sfu_capable:
            raise self._media.sfu_required(message.ref)
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a session in a room has a user id
            raise not_in_room(message.ref)
        payload = codec.encode(SignalRelay(signal=message.signal, from_user_id=user_id))
        self._publish_to_session(target.session_id, payload)

    def set_media_mode(self, room: str, setting: MediaSetting | None) -> str:
        """A backend set a room's mode (``None``: the server's default); the mode the
        room is in now."""
        mode = self._media.set_setting(room, setting)
        self._settle()
        return mode.value

    def _on_ping(self, session: Session, message: Ping) -> None:
        self._ctx.send(session, Pong(ref=message.ref))

    def _settle(self) -> None:
        """At the end of an entry point: what the sessions whose wait ended held is
        handled, in order. Not inside a call to the membership, whose in-memory twin
        answers before it returns (its answer comes in through an entry point too):
        held messages must not run in the middle of the work that called it."""
        if self._ready and not self._ctx.membership_calls:
            self._waiting.release()

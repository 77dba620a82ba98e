"""The hub: sessions, rooms and the routing of every message between them.

Sans-I/O. The server adapter calls :meth:`Hub.connect`, :meth:`Hub.receive` and
:meth:`Hub.disconnect`; everything the hub wants sent goes out through its
:class:`~hubbub.core.outbox.Outbox` (one session) or its broker (a room, or a
session that may sit on another node). Time comes from an injected clock.
"""

from __future__ import annotations

import heapq
import hmac
import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from hubbub import randomness
from hubbub.auth.admission import Admission
from hubbub.auth.grants import Grant, Identity
from hubbub.auth.turn import IceServerConfig
from hubbub.broker import (
    Broker,
    CallPlacement,
    CallRoute,
    ClaimOutcome,
    ClaimResult,
    Member,
    Membership,
)
from hubbub.broker.memory import MemoryBroker
from hubbub.core.calls import (
    AlreadyInCall,
    Busy,
    Call,
    CallMove,
    CallRegistry,
    CallState,
    NoSuchCall,
    Party,
    UserUnavailable,
)
from hubbub.core.counters import HubCounters
from hubbub.core.events import CallEvent, HubObserver, NoObserver
from hubbub.core.limits import Limits
from hubbub.core.outbox import Outbox, RelayItem
from hubbub.core.rooms import NoRoomObserver, Room, RoomRegistry
from hubbub.core.session import LinkState, Session, TokenBucket
from hubbub.core.storage import PendingChat, Storage
from hubbub.core.users import UserRegistry
from hubbub.protocol import codec
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError, ResumeFailure
from hubbub.protocol.messages import (
    OFFLINE,
    ONLINE,
    SETTABLE_STATUSES,
    CallAccept,
    CallAccepted,
    CallAnsweredElsewhere,
    CallCancel,
    CallCancelled,
    CallDecline,
    CallDeclined,
    CallEnd,
    CallEnded,
    CallIncoming,
    CallMissed,
    CallRequest,
    CallRinging,
    Chat,
    ChatAck,
    ChatEntry,
    ChatRelay,
    EndRoom,
    Error,
    GetNotifications,
    History,
    HistoryPage,
    IceServer,
    IceServers,
    IncomingMessage,
    JoinRoom,
    LeaveRoom,
    MarkNotificationsRead,
    NotificationEntry,
    NotificationList,
    NotificationPush,
    NotificationsRead,
    OfflineMember,
    Outgoing,
    Participant,
    ParticipantRemoved,
    ParticipantUpdated,
    Ping,
    Pong,
    PresenceUpdate,
    Reconnect,
    Ref,
    RemoveParticipant,
    Resume,
    Resumed,
    RoomBroadcast,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    SetPresence,
    Signal,
    SignalRelay,
    Typing,
    TypingRelay,
    UserJoined,
    UserLeft,
)
from hubbub.store import ChatDraft, Notification, RoomState, StoredChat

log = logging.getLogger("hubbub.core")

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _new_id() -> str:
    return randomness.token_urlsafe(12)


def _new_user_id() -> str:
    return "user-" + randomness.token_hex(4)


class Hub:
    """All sessions and rooms of one server process."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        storage: Storage,
        broker: Broker | None = None,
        limits: Limits | None = None,
        history_on_join: int = 50,
        offline_on_join: int = 50,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_session_id: Callable[[], str] = _new_id,
        new_user_id: Callable[[], str] = _new_user_id,
        admission: Admission | None = None,
        ice_servers: IceServerConfig | None = None,
        observer: HubObserver | None = None,
        new_call_id: Callable[[], str] = _new_id,
        rng: random.Random | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.admission = admission or Admission()
        self._ice = ice_servers if ice_servers else None
        self._ice_refresh: list[tuple[float, str]] = []
        """(when, session id): a heap of the TURN credentials to renew."""
        self.history_on_join = history_on_join
        self.offline_on_join = offline_on_join
        self.rooms = RoomRegistry(recent=history_on_join)
        self.sessions: dict[str, Session] = {}
        self.counters = HubCounters()
        self.users = UserRegistry()
        self.calls = CallRegistry()
        self.observer: HubObserver = observer if observer is not None else NoObserver()
        self._new_call_id = new_call_id
        self.detached: dict[str, Session] = {}
        """The sessions whose connection was lost, waiting for a resume."""
        self._random = rng or random.Random()
        self._outbox = outbox
        self._storage = storage
        self._broker: Broker = broker if broker is not None else MemoryBroker()
        self._broker.attach(self)
        self._membership = membership
        """Who is in a room across the nodes of a cluster; ``None`` on a lone node,
        whose rooms are the whole truth."""
        self._claims: dict[str, tuple[Session, JoinRoom, Identity, Room, Member]] = {}
        """Joins waiting for the cluster's answer, by session id."""
        self._ending_elsewhere: dict[str, tuple[Session, Ref | None]] = {}
        """Resumes of a session held by another node, waiting for it to end it there."""
        self._placing: dict[str, tuple[Session, Ref | None, bytes]] = {}
        """Calls waiting for the cluster's word (is the callee free and connected?),
        by call id: the caller's connection, its ref, the ``call-incoming``."""
        self._remote_calls: dict[str, str] = {}
        """Local session id -> the call it answered, held by another node (the
        caller's), which is told when this connection closes or leaves the room."""
        if membership is not None:
            membership.attach_members(self)
        self._clock = clock
        self._wall_clock = wall_clock
        self._new_session_id = new_session_id
        self._new_user_id = new_user_id
        self._handlers: dict[type[Any], Callable[[Session, Any], None]] = {
            Signal: self._on_signal,
            Chat: self._on_chat,
            History: self._on_history,
            JoinRoom: self._on_join_room,
            LeaveRoom: self._on_leave_room,
            Ping: self._on_ping,
            SetPresence: self._on_presence,
            Typing: self._on_typing,
            RemoveParticipant: self._on_remove_participant,
            EndRoom: self._on_end_room,
            GetNotifications: self._on_get_notifications,
            MarkNotificationsRead: self._on_mark_notifications_read,
            CallRequest: self._on_call_request,
            CallAccept: self._on_call_accept,
            CallDecline: self._on_call_decline,
            CallCancel: self._on_call_cancel,
            CallEnd: self._on_call_end,
            Resume: self._on_resume,
        }

    # -- what the adapter calls ---------------------------------------------

    def connect(self, link: Any, identity: Identity | None = None) -> Session:
        """A client connected; ``link`` is the adapter's handle for it, ``identity``
        what it proved in the handshake (a token), if anything."""
        limits = self.limits
        session_id = self._new_session_id()
        while session_id in self.sessions:  # pragma: no cover - 96 random bits
            session_id = self._new_session_id()
        budget = TokenBucket(limits.message_rate, limits.message_burst, self._clock())
        session = self.sessions[session_id] = Session(
            session_id,
            link,
            budget,
            identity,
            replay_max_messages=limits.resume_buffer_messages,
            replay_max_bytes=limits.resume_buffer_bytes,
        )
        if identity is not None and identity.user_id is not None:
            self._address(session, identity.user_id)
        return session

    def receive(self, session: Session, text: str | bytes) -> None:
        """One text frame from the session's client."""
        if session.closing:
            return
        if not session.budget.take(self._clock()):
            self._drop_for_rate(session)
            return
        session.dropped_in_a_row = 0
        try:
            message: IncomingMessage = codec.decode(text, max_depth=self.limits.max_json_depth)
        except ProtocolError as error:
            self._send_error(session, error)
            return
        self.counters.received[type(message)] += 1
        held = session.held
        if held is not None:
            # A join is waiting for its room: what follows it waits too, in order.
            if len(held) >= self.limits.message_burst:
                self._send_error(
                    session,
                    ProtocolError(
                        ErrorCode.RATE_LIMITED,
                        "slow down: too many messages while joining",
                        ref=message.ref,
                    ),
                )
                return
            held.append(message)
            return
        self._dispatch(session, message)

    def _dispatch(self, session: Session, message: IncomingMessage) -> None:
        try:
            self._handlers[type(message)](session, message)
        except ProtocolError as error:
            self._send_error(session, error)

    def receive_binary(self, session: Session) -> None:
        """A binary frame: counted against the rate, then refused."""
        if session.closing:
            return
        if not session.budget.take(self._clock()):
            self._drop_for_rate(session)
            return
        session.dropped_in_a_row = 0
        self._send_error(
            session,
            ProtocolError(ErrorCode.BINARY_NOT_SUPPORTED, "hubbub speaks JSON in text frames"),
        )

    def disconnect(self, session: Session, *, lost: bool = False) -> None:
        """The connection is gone: closed by either side, or ``lost`` (no close
        frame came: the network went, or the liveness check gave up on it).

        A lost session in a room keeps its place for ``resume_grace`` seconds,
        waiting for its client to ``resume`` it; any other ends now.
        """
        if session.closed:
            return
        if (
            lost
            and not session.closing
            and session.room is not None
            and session.joining is None
            and session.state is LinkState.CONNECTED
        ):
            self._detach(session)
            return
        self._end(session)

    def expire(self) -> int:
        """End the detached sessions whose grace period is over, or that can no
        longer be resumed (their replay buffer overran); the adapter calls this
        about once a second. Returns how many ended."""
        if not self.detached:
            return 0
        deadline = self._clock() - self.limits.resume_grace
        over = [s for s in self.detached.values() if s.lost_at <= deadline or s.overrun]
        for session in over:
            log.info(
                "event=resume-expired session=%s overrun=%s", session.session_id, session.overrun
            )
            self._end(session)
        return len(over)

    def stop_input(self) -> None:
        """The server is shutting down: nothing more that clients send is handled."""
        for session in self.sessions.values():
            session.closing = True

    def announce_restart(self, spread_ms: int) -> int:
        """Tell every connected client to come back, each after its own delay of
        up to ``spread_ms`` so that they do not all return at once."""
        told = 0
        for session in list(self.sessions.values()):
            if session.state is not LinkState.CONNECTED or session.link is None:
                continue
            after = self._random.randint(0, max(0, spread_ms))
            self._outbox.send(session, codec.encode(Reconnect(after_ms=after)))
            told += 1
        return told

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close a session's connection; no more of its input is read."""
        self._close(session, code, reason)

    def remove_participant(
        self, room_name: str, user_id: str, remote: Member | None = None
    ) -> bool:
        """Take ``user_id`` out of the room and close its connection (admin).
        ``remote``: the member as the cluster knows it, when this node may not
        (it has no member in that room)."""
        room = self.rooms.get(room_name)
        member = room.members.get(user_id) if room is not None else None
        if member is None:
            remote = self._remote_member(room_name, user_id) or remote
            if remote is None or self._membership is None:
                return False
            log.info(
                "event=remove session=%s room=%r user=%r", remote.session_id, room_name, user_id
            )
            self._membership.close_remote(
                remote, CloseCode.REMOVED, "removed from the room", announce=True
            )
            return True
        log.info("event=remove session=%s room=%r user=%r", member.session_id, room_name, user_id)
        self._leave(member)
        self._close(member, CloseCode.REMOVED, "removed from the room")
        return True

    def end_room(self, room_name: str, keep: Session | None = None) -> int:
        """Take every member out of the room and close their connections (admin);
        ``keep`` (the admin who asked) leaves the room but stays connected. In a
        cluster, the other nodes do the same with theirs. Returns how many members
        there were on this node, and on others as far as this node knows."""
        elsewhere = 0
        if self._membership is not None:
            elsewhere = len(self._membership.remote_members(room_name))
            self._membership.end_room_elsewhere(room_name)
        return self._end_room_here(room_name, keep) + elsewhere

    def room_ended(self, room: str) -> None:
        """Another node ended the room: this node's members go too."""
        self._end_room_here(room, None)

    def _end_room_here(self, room_name: str, keep: Session | None) -> int:
        room = self.rooms.get(room_name)
        if room is None:
            return 0
        members = list(room.members.values())
        log.info("event=end-room room=%r members=%d", room_name, len(members))
        now_ms = self._now_ms()
        for member in members:
            # Nobody stays to hear user-left: everyone goes at once, unannounced.
            if member.chatted and member.user_id is not None and not member.hidden:
                self._storage.record_seen(room_name, member.user_id, now_ms)
            self._release(member)
            self.rooms.remove(member)
            self._left_room(member, room_name)
            member.user_id = None
            member.hidden = False
            member.typing = False
            member.chatted = False
            if member is not keep:
                self._close(member, CloseCode.ROOM_ENDED, "the room was ended")
        return len(members)

    def broadcast(self, room_name: str, data: bytes, event: str | None = None) -> int:
        """Send the application's message (``data``: encoded JSON) to everyone in
        the room, wherever they are connected; returns its time (ms since the epoch)."""
        ts = self._now_ms()
        message = RoomBroadcast(room=room_name, data=msgspec.Raw(data), ts=ts, event=event)
        payload = codec.encode(message)
        room = self.rooms.get(room_name)
        if room is not None:
            self._publish_in_order(room, payload, None)
        else:
            self._broker.publish_to_room(room_name, payload, None)
        return ts

    def refresh_ice_servers(self) -> int:
        """Send fresh TURN credentials to every session whose are due; the
        adapter calls this about once a second. Returns how many were sent."""
        heap = self._ice_refresh
        now = self._clock()
        sent = 0
        while heap and heap[0][0] <= now:
            due, session_id = heapq.heappop(heap)
            session = self.sessions.get(session_id)
            if session is None or session.room is None or session.ice_refresh_at != due:
                continue
            servers, expires_at = self._ice_servers_for(session)
            self._outbox.send(
                session,
                codec.encode(IceServers(ice_servers=servers, ice_servers_expire_at=expires_at)),
            )
            sent += 1
        return sent

    def expire_calls(self) -> int:
        """End the calls that rang unanswered for ``call_ring_timeout``; the adapter
        calls this about once a second. Returns how many were missed."""
        missed = 0
        for call in self.calls.due(self._clock()):
            if call.apply(CallMove.TIMEOUT):
                self._call_ended(call, CallState.RINGING)
                missed += 1
        return missed

    def notify(self, notification: Notification) -> int:
        """A stored notification goes live to every connection of its user; returns
        how many of them are connected to this server."""
        user_id = notification.user_id
        payload = notification.payload
        push = NotificationPush(
            id=notification.id,
            ts=notification.ts,
            title=payload.get("title"),
            body=payload.get("body"),
            data=payload.get("data"),
        )
        self._broker.publish_to_user(user_id, codec.encode(push))
        return len(self.users.sessions(user_id))

    def notifications_read(self, user_id: str, ids: list[int]) -> None:
        """The user's notifications were marked read (by its backend): its
        connections are told, so that every one of them shows them read."""
        if ids:
            self._broker.publish_to_user(user_id, codec.encode(NotificationsRead(ids=ids)))

    # -- what the storage adapter calls -----------------------------------------

    def chat_stored(self, pending: list[PendingChat], results: list[StoredChat]) -> None:
        """A batch of chat messages is durably stored: relay them, acknowledge them."""
        # Thousands per batch: what does not change within it is looked up once.
        publish_to_room = self._broker.publish_to_room
        publish_to_session = self._broker.publish_to_session
        encode = codec.encode
        keep_seen = self.offline_on_join
        observer = self.rooms.observer
        observed = type(observer) is not NoRoomObserver
        # With the in-process broker, a run of the batch's messages for one room goes
        # to the outbox at once: one pass over the members per run, not per message,
        # each member getting the same messages in the same order.
        in_process = type(self._broker) is MemoryBroker
        run: list[RelayItem] = []
        run_room: Room | None = None
        members: dict[str, Session] = {}
        touched: list[Room] = []
        batch = list(zip(pending, results, strict=True))
        if in_process:
            order = _grouped_by_room(pending)
            if order is not None:
                batch = [batch[position] for position in order]
        for request, stored in batch:
            room = request.room
            session = request.session
            client_id = stored.client_id
            relay: bytes | None = None
            if not stored.duplicate:
                room.remember(stored)
                room.saw(stored.user_id, stored.ts, keep_seen)
                relay = encode(
                    ChatRelay(
                        message=stored.text,
                        user_id=stored.user_id,
                        id=stored.id,
                        seq=stored.seq,
                        ts=stored.ts,
                        client_id=client_id,
                    )
                )
                if observed:
                    fields: dict[str, Any] = {
                        "message": stored.text,
                        "id": stored.id,
                        "seq": stored.seq,
                        "ts": stored.ts,
                    }
                    if client_id is not None:
                        fields["clientId"] = client_id
                    observer.chat_message(room.name, stored.user_id, fields)
            ack = encode(
                ChatAck(
                    id=stored.id,
                    seq=stored.seq,
                    ts=stored.ts,
                    client_id=client_id,
                    duplicate=stored.duplicate,
                    ref=request.ref,
                )
            )
            if room is not run_room:
                if run_room is not None:
                    touched.append(run_room)
                    if run:
                        self._outbox.relay_run(members.values(), run)
                        run = []
                run_room = room
                # As the broker would deliver it: to the room of that name now.
                target = self.rooms.get(room.name)
                members = target.members if target is not None else {}
            if not in_process:
                if relay is not None:
                    publish_to_room(room.name, relay, session.session_id)
                publish_to_session(session.session_id, ack)
            elif members.get(stored.user_id) is session:
                run.append((relay, session, ack))
            else:  # the sender left the room meanwhile: the ack still reaches it
                if relay is not None:
                    run.append((relay, session, ack))
                self.deliver_to_session(session.session_id, ack)
            room.chats_done += 1
            if room.waiting:
                if run:  # what waited behind this chat goes after it
                    self._outbox.relay_run(members.values(), run)
                    run = []
                self._release_waiting(room)
        if run_room is not None:
            touched.append(run_room)
            if run:
                self._outbox.relay_run(members.values(), run)
        # An emptied room goes once its batch is through (not between two of its
        # messages: nothing can join it in between).
        drop_if_empty = self.rooms.drop_if_empty
        for room in touched:
            drop_if_empty(room)

    def chat_failed(self, pending: list[PendingChat]) -> None:
        """A batch could not be stored: nothing of it was, and nothing was relayed."""
        for request in pending:
            self._store_failed(request.session.session_id, request.ref)
            self._chat_done(request.room)

    def room_loaded(self, room_name: str, state: RoomState) -> None:
        """A room's state came from the store: the joins waiting for it go ahead."""
        room = self.rooms.get(room_name)
        if room is None or not room.loading:  # pragma: no cover - one load per room
            return
        room.loaded(state.last_seq, state.recent, state.seen)
        parked, room.parked = room.parked, []
        for session, message, identity in parked:
            if session.closed:
                continue
            session.joining = None
            try:
                self._complete_join(session, message, identity, room)
            except ProtocolError as error:
                self._send_error(session, error)
            self._release_held(session)
        self.rooms.drop_if_empty(room)

    def room_load_failed(self, room_name: str) -> None:
        """A room's state could not be read: the joins waiting for it are refused."""
        room = self.rooms.get(room_name)
        if room is None or not room.loading:  # pragma: no cover - one load per room
            return
        parked, room.parked = room.parked, []
        room.loading = False
        self.rooms.drop_if_empty(room)
        for session, message, _ in parked:
            if session.closed:
                continue
            session.joining = None
            self._store_failed(session.session_id, message.ref)
            self._release_held(session)

    def history_loaded(
        self, session_id: str, room: str, messages: list[StoredChat], ref: Ref | None
    ) -> None:
        page = HistoryPage(room=room, messages=[_entry(m) for m in messages], ref=ref)
        self._broker.publish_to_session(session_id, codec.encode(page))

    def notifications_loaded(
        self,
        session_id: str,
        user_id: str,
        notifications: list[Notification],
        more: bool,
        ref: Ref | None,
        asked: bool,
    ) -> None:
        """The user's unread notifications, for one of its connections: sent when
        asked for, or when there are any."""
        session = self.sessions.get(session_id)
        if session is None or session.addressed_as != user_id:
            return
        if not notifications and not asked:
            return
        entries = [
            NotificationEntry(
                id=n.id,
                ts=n.ts,
                title=n.payload.get("title"),
                body=n.payload.get("body"),
                data=n.payload.get("data"),
            )
            for n in notifications
        ]
        reply = NotificationList(notifications=entries, more=more, ref=ref)
        self._outbox.send(session, codec.encode(reply))

    def notifications_marked(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        """Notifications were marked read from one connection: it gets the ids that
        were unread, and so do the user's other connections."""
        session = self.sessions.get(session_id)
        if session is not None:
            self._outbox.send(session, codec.encode(NotificationsRead(ids=ids, ref=ref)))
        if ids:
            self._broker.publish_to_user(
                user_id, codec.encode(NotificationsRead(ids=ids)), session_id
            )

    def store_failed(self, session_id: str, ref: Ref | None) -> None:
        """A read or write asked for by a session failed."""
        self._store_failed(session_id, ref)

    # -- what the broker calls ----------------------------------------------

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        target = self.rooms.get(room)
        if target is not None:
            self._outbox.broadcast(target.members.values(), payload, exclude)

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            self._outbox.send(session, payload)

    def deliver_to_user(self, user_id: str, payload: bytes, exclude: str | None) -> None:
        sessions = self.users.sessions(user_id)
        if sessions:
            self._outbox.broadcast(sessions, payload, exclude)

    # -- what the cluster membership calls ---------------------------------------

    def claim_answered(self, session_id: str, result: ClaimResult) -> None:
        """The cluster answered a join: admitted (maybe in another's place) or not."""
        pending = self._claims.pop(session_id, None)
        if pending is None:
            return
        session, message, identity, room, member = pending
        room.claiming -= 1
        admitted = result.outcome is ClaimOutcome.ADMITTED
        if session.closed or session.closing:
            if admitted and self._membership is not None:
                self._membership.release(room.name, member)
            self.rooms.drop_if_empty(room)
            return
        session.joining = None
        try:
            if not admitted:
                raise _refusal(result.outcome, message.ref)
            if session.room is not None:
                self._leave(session)
            replaced = result.replaced
            if replaced is not None:
                self._replace_in_cluster(room, replaced, session)
            # Everyone already here joined first, so the newcomer is polite to each.
            participants = [
                Participant(
                    user_id=m.user_id, polite=True, status=m.status, name=m.name, grants=m.grants
                )
                for m in result.members
                if m.session_id != session_id and not m.hidden
            ]
            if message.status is not None:
                session.status = message.status
            # The other nodes heard user-joined from Redis, with the claim itself.
            self._admit(
                session, identity, room, member.user_id, participants, message.ref, local_only=True
            )
        except ProtocolError as error:
            self._send_error(session, error)
        self.rooms.drop_if_empty(room)
        self._release_held(session)

    def members_changed(self, room: str, joined: list[Member], left: list[Member]) -> None:
        """Members came or went elsewhere without a word of their own (their node
        died, or came back after an outage): this node's members of ``room`` hear it."""
        target = self.rooms.get(room)
        if target is None:
            return
        members = target.members.values()
        for gone in left:
            if not gone.hidden:
                payload = codec.encode(UserLeft(user_id=gone.user_id))
                self._outbox.broadcast(members, payload, None)
        for came in joined:
            if not came.hidden:
                announcement = UserJoined(
                    user_id=came.user_id,
                    polite=False,
                    status=came.status,
                    name=came.name,
                    grants=came.grants,
                )
                self._outbox.broadcast(members, codec.encode(announcement), None)

    def close_session(self, session_id: str, code: int, reason: str, announce: bool) -> None:
        """Another node asked: take this session out of its room and close it."""
        session = self.sessions.get(session_id)
        if session is None or session.closing:
            return
        log.info("event=closed-by-cluster session=%s code=%d", session_id, code)
        self._leave(session, announce=announce)
        self._close(session, CloseCode(code), reason)

    def chat_seen(self, room: str, payload: bytes) -> None:
        """A chat message stored by another node: kept for this node's next joiners."""
        target = self.rooms.get(room)
        if target is None:
            return
        try:
            relay = codec.decode_chat_relay(payload)
        except ValueError:  # pragma: no cover - nodes speak the same protocol
            return
        target.remember(
            StoredChat(
                room=room,
                seq=relay.seq,
                id=relay.id,
                ts=relay.ts,
                user_id=relay.user_id,
                text=relay.message,
                client_id=relay.client_id,
            )
        )

    def end_for_resume(self, session_id: str, resume_token: str) -> bool:
        """The client of a local session came back through another node, which
        cannot resume it (sessions do not move): end it here at once, so that its
        place is free for the client's new join, rather than after the grace period."""
        session = self.sessions.get(session_id)
        if (
            session is None
            or session.closing
            or session.room is None
            or not hmac.compare_digest(session.resume_token.encode(), resume_token.encode())
        ):
            return False
        log.info("event=resume-elsewhere session=%s state=%s", session_id, session.state.value)
        if session.state is LinkState.DETACHED:
            self._end(session)
        else:
            # Half-open: the client saw its connection fail before this node did.
            self._leave(session)
            self._close(session, CloseCode.RESUMED_ELSEWHERE, "resumed through another node")
        return True

    def ended_elsewhere(self, asked_by: str, ended: bool) -> None:
        """The other node answered (or did not in time): the resume fails, plainly."""
        pending = self._ending_elsewhere.pop(asked_by, None)
        if pending is None:
            return
        stub, ref = pending
        if stub.closed:
            return
        if ended:
            error = ProtocolError(
                ErrorCode.RESUME_FAILED,
                "the session was held by another node of the cluster, which has ended it; "
                "join the room afresh and fetch the history",
                ref=ref,
                reason=ResumeFailure.OTHER_NODE,
            )
        else:
            error = _unknown_session(ref)
        self._send_error(stub, error)
        self._release_held(stub)

    def call_placed(self, call_id: str, outcome: CallPlacement) -> None:
        """The cluster's word on a call placed here: it rings, or it is refused."""
        pending = self._placing.pop(call_id, None)
        if pending is None:
            return
        session, ref, incoming = pending
        call = self.calls.get(call_id)
        if call is not None and not session.closed:
            if outcome is CallPlacement.PLACED:
                # The cluster rang the other nodes; this one rings its own.
                self._outbox.broadcast(self.users.sessions(call.callee), incoming, None)
                self._ringing(call, session, ref)
            else:
                self.calls.forget(call)
                if outcome is CallPlacement.UNAVAILABLE:
                    self._unreachable_callee(call.callee, call.caller)
                self._send_error(session, _placement_refusal(outcome, ref))
        self._release_held(session)

    def call_moved(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: Ref | None,
        room: str | None,
    ) -> None:
        """A move on a call of this node, made through another node."""
        try:
            what = CallMove(move)
        except ValueError:  # pragma: no cover - nodes speak the same protocol
            return
        call = self.calls.get(call_id)
        if what in (CallMove.CALLEE_GONE, CallMove.LEFT):
            if (
                call is not None
                and call.callee_session == session_id
                and (what is CallMove.CALLEE_GONE or call.room == room)
            ):
                self._call_gone(call, what, user_id)
            return
        try:
            self._apply_call_move(call, what, user_id, session_id, ref)
        except ProtocolError as error:
            self.counters.errors[error.code] += 1
            reply = Error(code=error.code, message=error.message, ref=error.ref)
            self._broker.publish_to_session(session_id, codec.encode(reply))

    def local_members(self) -> dict[str, list[Member]]:
        """Every member on this node, by room."""
        return {
            room.name: [
                Member(
                    user_id=uid,
                    session_id=session.session_id,
                    name=session.identity.name if session.identity else None,
                    grants=_grant_names(session.identity),
                    hidden=session.hidden,
                    status=session.status,
                )
                for uid, session in room.members.items()
            ]
            for room in self.rooms
            if room.members
        }

    def _claim(
        self,
        session: Session,
        message: JoinRoom,
        identity: Identity,
        room: Room,
        user_id: str | None,
    ) -> None:
        """Ask the cluster for the place; the join (and what follows it) waits."""
        assert self._membership is not None
        if user_id is None:
            user_id = self._free_user_id(room)
        member = Member(
            user_id=user_id,
            session_id=session.session_id,
            name=identity.name,
            grants=_grant_names(identity),
            hidden=identity.may(Grant.HIDDEN),
            status=session.status if message.status is None else message.status,
        )
        self._claims[session.session_id] = (session, message, identity, room, member)
        room.claiming += 1
        session.joining = room.name
        if session.held is None:
            session.held = deque()
        # A token proves the id is its holder's: the newcomer takes the place.
        joined = None
        if not member.hidden:
            joined = codec.encode(
                UserJoined(
                    user_id=user_id,
                    polite=False,
                    status=member.status,
                    name=member.name,
                    grants=member.grants,
                )
            )
        self._membership.claim(
            room.name,
            member,
            replace=identity.verified,
            max_members=self.limits.max_participants,
            joined=joined,
            left=codec.encode(UserLeft(user_id=user_id)),
        )

    def _replace_in_cluster(self, room: Room, replaced: Member, by: Session) -> None:
        log.info("event=replace session=%s by=%s", replaced.session_id, by.session_id)
        # The other nodes heard user-left from Redis, with the claim; this node's
        # members hear it now, before the newcomer's user-joined.
        local = self.sessions.get(replaced.session_id)
        if local is not None:
            self._leave(local, announce=False)
            self._close(local, CloseCode.REPLACED, "the same user joined from elsewhere")
        if not replaced.hidden:
            payload = codec.encode(UserLeft(user_id=replaced.user_id))
            self._outbox.broadcast(room.members.values(), payload, None)
        if local is not None:
            return
        assert self._membership is not None
        self._membership.close_remote(
            replaced, CloseCode.REPLACED, "the same user joined from elsewhere", announce=False
        )

    def _remote_member(self, room: str, user_id: str) -> Member | None:
        membership = self._membership
        return None if membership is None else membership.remote_member(room, user_id)

    def _release(self, session: Session) -> None:
        if self._membership is not None and session.room is not None and session.user_id:
            self._membership.release(session.room.name, Member(session.user_id, session.session_id))

    # -- message handlers ---------------------------------------------------

    def _on_signal(self, session: Session, message: Signal) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.SIGNAL, message.ref)
        target: Session | Member | None = room.members.get(message.target_user_id)
        if target is None:
            target = self._remote_member(room.name, message.target_user_id)
        if target is None or target is session:
            raise ProtocolError(
                ErrorCode.NO_SUCH_PEER, "no such user in this room", ref=message.ref
            )
        assert session.user_id is not None  # a session in a room has a user id
        payload = codec.encode(SignalRelay(signal=message.signal, from_user_id=session.user_id))
        self._broker.publish_to_session(target.session_id, payload)

    def _on_chat(self, session: Session, message: Chat) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.CHAT, message.ref)
        if len(message.message) > self.limits.max_chat_length:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"a chat message holds at most {self.limits.max_chat_length} characters",
                ref=message.ref,
            )
        client_id = message.client_id
        if client_id is not None:
            _check_name(client_id, "clientId", self.limits.max_client_id_length, message.ref)
        assert session.user_id is not None
        draft = ChatDraft(
            room=room.name, user_id=session.user_id, text=message.message, client_id=client_id
        )
        if not self._storage.append_chat(PendingChat(session, room, message.ref, draft)):
            raise ProtocolError(
                ErrorCode.STORE_UNAVAILABLE,
                "too many messages are waiting to be stored; send it again later",
                ref=message.ref,
            )
        if session.typing:
            # Ahead of the chat: the indicator goes as the message is on its way.
            self._stop_typing(session, room)
        room.chats_queued += 1
        session.chatted = True

    def _on_history(self, session: Session, message: History) -> None:
        room = session.room
        ref = message.ref
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=ref)
        most = self.limits.max_history_page
        limit = most if message.limit is None else min(message.limit, most)
        if limit < 1:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "limit must be at least 1", ref=ref)
        before = message.before_seq
        if before is not None and before < 1:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "beforeSeq must be at least 1", ref=ref)
        self._storage.load_history(session.session_id, room.name, before, limit, ref)

    def _on_join_room(self, session: Session, message: JoinRoom) -> None:
        limits = self.limits
        ref = message.ref
        room_name = message.room
        _check_name(room_name, "room", limits.max_room_name_length, ref)
        user_id = message.user_id
        if user_id is not None:
            _check_name(user_id, "userId", limits.max_user_id_length, ref)
        if message.status is not None:
            _check_status(message.status, ref)
        current = session.room
        if current is not None and current.name == room_name:
            raise ProtocolError(ErrorCode.ALREADY_IN_ROOM, "already in this room", ref=ref)
        call = self.calls.in_room(room_name)
        identity = self.admission.admit(
            room=room_name,
            user_id=user_id,
            token=message.token,
            shown=session.identity,
            ref=ref,
            invited=(call.caller, call.callee) if call is not None else (),
        )
        room = self.rooms.get(room_name)
        if room is None and len(self.rooms) >= limits.max_rooms:
            raise ProtocolError(
                ErrorCode.TOO_MANY_ROOMS, "the server holds as many rooms as it may", ref=ref
            )
        if room is None or room.loading:
            # The room's history and last sequence number come from the store
            # first; the join, and whatever this session sends next, wait for it.
            if room is None:
                room = self.rooms.create(room_name)
                self._storage.load_room(room_name, self.history_on_join)
            room.parked.append((session, message, identity))
            session.joining = room_name
            session.held = deque()
            return
        self._complete_join(session, message, identity, room)

    def _complete_join(
        self, session: Session, message: JoinRoom, identity: Identity, room: Room
    ) -> None:
        limits = self.limits
        ref = message.ref
        room_name = room.name
        user_id = message.user_id if identity.user_id is None else identity.user_id
        current = session.room
        if current is not None and current.name == room_name:
            raise ProtocolError(ErrorCode.ALREADY_IN_ROOM, "already in this room", ref=ref)
        if self._membership is not None:
            self._claim(session, message, identity, room, user_id)
            return
        replaced: Session | None = None
        if user_id is not None and user_id in room.members:
            # A token proves the id is its holder's: the newcomer takes the
            # place. Without one, nobody takes over another's slot.
            if not identity.verified:
                raise ProtocolError(
                    ErrorCode.USER_ID_TAKEN, "this user id is already in the room", ref=ref
                )
            replaced = room.members[user_id]
        if replaced is None and len(room) >= limits.max_participants:
            raise ProtocolError(ErrorCode.ROOM_FULL, "the room is full", ref=ref)
        if user_id is None:
            user_id = self._free_user_id(room)
        if current is not None:
            self._leave(session)
        if replaced is not None:
            log.info("event=replace session=%s by=%s", replaced.session_id, session.session_id)
            self._leave(replaced)
            self._close(replaced, CloseCode.REPLACED, "the same user joined from elsewhere")
        # Everyone already here joined first, so the newcomer is polite to each.
        participants = [
            Participant(
                user_id=uid,
                polite=True,
                status=member.status,
                name=member.identity.name if member.identity else None,
                grants=_grant_names(member.identity),
                connection="reconnecting" if member.state is LinkState.DETACHED else None,
            )
            for uid, member in room.members.items()
            if not member.hidden
        ]
        if message.status is not None:
            session.status = message.status
        self._admit(session, identity, room, user_id, participants, ref)

    def _admit(
        self,
        session: Session,
        identity: Identity,
        room: Room,
        user_id: str,
        participants: list[Participant],
        ref: Ref | None,
        *,
        local_only: bool = False,
    ) -> None:
        """The join is granted: the session is a member; it and the room are told
        (``local_only``: the members on this node; the cluster was told already)."""
        room_name = room.name
        session.user_id = user_id
        session.identity = identity
        session.hidden = identity.may(Grant.HIDDEN)
        session.chatted = False
        self.rooms.add(room, session)
        log.info(
            "event=join session=%s room=%r user=%r members=%d verified=%s hidden=%s",
            session.session_id,
            room_name,
            user_id,
            len(room),
            identity.verified,
            session.hidden,
        )
        grants = _grant_names(identity)
        joined = RoomJoined(
            room=room_name,
            user_id=user_id,
            session_id=session.session_id,
            participants=participants,
            history=[_entry(m) for m in room.recent],
            last_seq=room.last_seq,
            resume_token=session.resume_token,
            ref=ref,
            name=identity.name,
            grants=grants,
            status=None if session.status == ONLINE else session.status,
            offline=[
                OfflineMember(user_id=uid, last_seen=ts)
                for uid, ts in room.offline(self.offline_on_join)
            ]
            or None,
        )
        if self._ice is not None:
            joined.ice_servers, joined.ice_servers_expire_at = self._ice_servers_for(session)
        self._outbox.send(session, codec.encode(joined))
        if not session.hidden:
            announcement = UserJoined(
                user_id=user_id,
                polite=False,
                status=session.status,
                name=identity.name,
                grants=grants,
            )
            payload = codec.encode(announcement)
            if local_only:
                self._outbox.broadcast(room.members.values(), payload, session.session_id)
            else:
                self._publish_in_order(room, payload, session.session_id)
        self._address(session, user_id)

    def _on_leave_room(self, session: Session, message: LeaveRoom) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "not in a room", ref=message.ref)
        self._leave(session)
        self._outbox.send(session, codec.encode(RoomLeft(room=room.name, ref=message.ref)))

    def _on_ping(self, session: Session, message: Ping) -> None:
        self._outbox.send(session, codec.encode(Pong(ref=message.ref)))

    def _on_presence(self, session: Session, message: SetPresence) -> None:
        ref = message.ref
        _check_status(message.status, ref)
        limits = self.limits
        if session.presence_budget is None:
            session.presence_budget = TokenBucket(
                limits.presence_rate, limits.presence_burst, self._clock()
            )
        self._spend(session.presence_budget, "presence changes", ref)
        changed = session.status != message.status
        session.status = message.status
        room = session.room
        user_id = session.user_id
        if room is not None and user_id is not None:
            if changed and not session.hidden:
                update = PresenceUpdate(status=message.status, user_id=user_id)
                self._publish_in_order(room, codec.encode(update), session.session_id)
            reply = PresenceUpdate(status=message.status, user_id=user_id, ref=ref)
        else:
            # Out of a room: the status is kept for the next join.
            reply = PresenceUpdate(status=message.status, ref=ref)
        self._outbox.send(session, codec.encode(reply))

    def _spend(self, budget: TokenBucket, what: str, ref: Ref | None) -> None:
        """Take one token from a per-connection budget, or refuse with rate-limited."""
        if not budget.take(self._clock()):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"slow down: at most {budget.rate:g} {what} a second",
                ref=ref,
            )

    def _on_typing(self, session: Session, message: Typing) -> None:
        ref = message.ref
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=ref)
        self.admission.require(session.identity, Grant.CHAT, ref)
        assert session.user_id is not None
        if not message.active:
            # Only a member the room sees typing has anything to stop; each stop
            # follows a start, so stops need no budget of their own.
            if session.typing:
                self._stop_typing(session, room)
            return
        limits = self.limits
        if session.typing_budget is None:
            session.typing_budget = TokenBucket(
                limits.typing_rate, limits.typing_burst, self._clock()
            )
        self._spend(session.typing_budget, "typing messages", ref)
        if session.hidden:
            return
        session.typing = True
        relay = TypingRelay(user_id=session.user_id, active=True)
        self._publish_in_order(room, codec.encode(relay), session.session_id)

    def _stop_typing(self, session: Session, room: Room) -> None:
        # In order, as the start was: a stop must never overtake its start.
        session.typing = False
        assert session.user_id is not None
        payload = codec.encode(TypingRelay(user_id=session.user_id, active=False))
        self._publish_in_order(room, payload, session.session_id)

    def _on_remove_participant(self, session: Session, message: RemoveParticipant) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.ADMIN, message.ref)
        target = room.members.get(message.user_id) or self._remote_member(
            room.name, message.user_id
        )
        if target is None or target is session:
            raise ProtocolError(
                ErrorCode.NO_SUCH_PEER, "no such user in this room", ref=message.ref
            )
        self.remove_participant(room.name, message.user_id)
        self._outbox.send(
            session, codec.encode(ParticipantRemoved(user_id=message.user_id, ref=message.ref))
        )

    def _on_end_room(self, session: Session, message: EndRoom) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.ADMIN, message.ref)
        self.end_room(room.name, keep=session)
        self._outbox.send(session, codec.encode(RoomEnded(room=room.name, ref=message.ref)))

    def _on_get_notifications(self, session: Session, message: GetNotifications) -> None:
        ref = message.ref
        user_id = self._identified(session, ref)
        most = self.limits.max_notification_page
        limit = most if message.limit is None else min(message.limit, most)
        if limit < 1:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "limit must be at least 1", ref=ref)
        self._storage.load_notifications(session.session_id, user_id, limit, ref, True)

    def _on_mark_notifications_read(self, session: Session, message: MarkNotificationsRead) -> None:
        ref = message.ref
        user_id = self._identified(session, ref)
        ids = list(dict.fromkeys(message.ids))
        if not ids:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "ids must not be empty", ref=ref)
        most = self.limits.max_notification_page
        if len(ids) > most:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"ids holds at most {most} ids", ref=ref)
        self._storage.mark_notifications_read(session.session_id, user_id, ids, ref)

    def _on_call_request(self, session: Session, message: CallRequest) -> None:
        ref = message.ref
        caller = self._identified(session, ref)
        self.admission.require(session.identity, Grant.SIGNAL, ref)
        callee = message.target_user_id
        _check_name(callee, "targetUserId", self.limits.max_user_id_length, ref)
        if callee == caller:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "a user cannot call itself", ref=ref)
        calls = self.calls
        membership = self._membership
        if calls.of_user(caller) is not None:
            raise AlreadyInCall(ref)
        # In a cluster, whether the callee is connected somewhere is Redis's to say.
        if membership is None and not self.users.connected(callee):
            self._unreachable_callee(callee, caller)
            raise UserUnavailable(ref)
        if calls.of_user(callee) is not None:
            raise Busy(ref)
        call_id = self._new_call_id()
        while calls.get(call_id) is not None:  # pragma: no cover - 96 random bits
            call_id = self._new_call_id()
        call = Call(
            call_id,
            caller,
            session.session_id,
            callee,
            self._clock() + self.limits.call_ring_timeout,
        )
        calls.place(call)
        name = session.identity.name if session.identity is not None else None
        incoming = codec.encode(CallIncoming(call_id=call_id, from_user_id=caller, name=name))
        if membership is not None:
            # The cluster checks both parties and rings the callee's other nodes
            # at once; what the caller sends meanwhile waits, in order.
            self._placing[call_id] = (session, ref, incoming)
            session.held = deque()
            membership.place_call(call_id, caller, callee, incoming)
            return
        self._broker.publish_to_user(callee, incoming)
        self._ringing(call, session, ref)

    def _ringing(self, call: Call, session: Session, ref: Ref | None) -> None:
        log.info(
            "event=call-ringing call=%s caller=%r callee=%r", call.call_id, call.caller, call.callee
        )
        ringing = CallRinging(call_id=call.call_id, target_user_id=call.callee, ref=ref)
        self._outbox.send(session, codec.encode(ringing))
        self.observer.call_changed(CallEvent("ringing", call.call_id, call.caller, call.callee))

    def _on_call_accept(self, session: Session, message: CallAccept) -> None:
        self._call_move(session, message.call_id, CallMove.ACCEPT, message.ref)

    def _accept_call(self, call: Call, party: Party, session_id: str, ref: Ref | None) -> None:
        call.apply(CallMove.ACCEPT, party, ref)
        call.callee_session = session_id
        room = "call-" + self._new_call_id()
        while self.rooms.get(room) is not None or self.calls.in_room(room) is not None:
            room = "call-" + self._new_call_id()  # pragma: no cover - 96 random bits
        self.calls.accepted(call, room)
        log.info("event=call-accepted call=%s room=%r", call.call_id, room)
        broker = self._broker
        to_caller = CallAccepted(call_id=call.call_id, room=room, peer_user_id=call.callee)
        broker.publish_to_session(call.caller_session, codec.encode(to_caller))
        to_callee = CallAccepted(call_id=call.call_id, room=room, peer_user_id=call.caller, ref=ref)
        broker.publish_to_session(session_id, codec.encode(to_callee))
        elsewhere = CallAnsweredElsewhere(call_id=call.call_id)
        broker.publish_to_user(call.callee, codec.encode(elsewhere), session_id)
        self.observer.call_changed(
            CallEvent("accepted", call.call_id, call.caller, call.callee, room=room)
        )

    def _on_call_decline(self, session: Session, message: CallDecline) -> None:
        self._call_move(session, message.call_id, CallMove.DECLINE, message.ref)

    def _on_call_cancel(self, session: Session, message: CallCancel) -> None:
        self._call_move(session, message.call_id, CallMove.CANCEL, message.ref)

    def _on_call_end(self, session: Session, message: CallEnd) -> None:
        self._call_move(session, message.call_id, CallMove.HANG_UP, message.ref)

    # -- calls ------------------------------------------------------------------

    def _call_move(self, session: Session, call_id: str, move: CallMove, ref: Ref | None) -> None:
        """A party's move from one of its connections here; a call held by another
        node (the caller's) gets it from there."""
        user_id = self._identified(session, ref)
        call = self.calls.get(call_id)
        membership = self._membership
        if call is None and membership is not None:
            route = membership.call_move(call_id, move.value, user_id, session.session_id, ref)
            if route is CallRoute.UNREACHABLE:
                raise _cluster_unavailable(ref)
            if route is CallRoute.SENT:
                if move is CallMove.ACCEPT:
                    self._remote_calls[session.session_id] = call_id
                return
        self._apply_call_move(call, move, user_id, session.session_id, ref)

    def _apply_call_move(
        self, call: Call | None, move: CallMove, user_id: str, session_id: str, ref: Ref | None
    ) -> None:
        """Make a client's move on a call of this node, made from connection
        ``session_id`` (here or on another node) of ``user_id``."""
        party = call.party(user_id) if call is not None else None
        if call is None or party is None:
            raise NoSuchCall(ref)
        if move is CallMove.ACCEPT:
            self._accept_call(call, party, session_id, ref)
            return
        was = call.state
        call.apply(move, party, ref)
        self._call_ended(call, was, by_session=session_id, by_user=user_id, ref=ref)

    def _call_gone(self, call: Call, move: CallMove, user_id: str) -> None:
        """A party's connection closed or left the call's room."""
        was = call.state
        if call.apply(move):
            self._call_ended(call, was, by_user=user_id)

    def _call_ended(
        self,
        call: Call,
        was: CallState,
        *,
        by_session: str | None = None,
        by_user: str | None = None,
        ref: Ref | None = None,
    ) -> None:
        """The one place an ended call is told to its parties and observers.

        The caller's connection and the callee's (every one of them if the call
        was still ringing) hear of it; ``by_session``, the connection whose message
        ended it (here or on another node), gets the reply with its ``ref``.
        """
        self.calls.forget(call)
        if self._membership is not None:
            self._membership.call_over(call.call_id, call.caller, call.callee)
        reason = call.reason or "hung-up"
        call_id = call.call_id
        log.info("event=call-ended call=%s reason=%s", call_id, reason)
        ender = by_user or ""
        plain = codec.encode(_call_over(reason, call_id, ender, None))
        broker = self._broker
        by_id = by_session
        if call.caller_session != by_id:
            broker.publish_to_session(call.caller_session, plain)
        if was is CallState.RINGING:
            broker.publish_to_user(call.callee, plain, by_id)
        elif call.callee_session is not None and call.callee_session != by_id:
            broker.publish_to_session(call.callee_session, plain)
        if by_session is not None:
            reply = _call_over(reason, call_id, ender, ref)
            broker.publish_to_session(by_session, codec.encode(reply))
        if reason == "missed":
            self._missed_call(call.callee, call.caller, f"missed-call:{call_id}", call_id)
        self.observer.call_changed(
            CallEvent("ended", call_id, call.caller, call.callee, room=call.room, reason=reason)
        )

    def _unreachable_callee(self, callee: str, caller: str) -> None:
        """The callee has no connection: told on their next connect. One per caller
        and ring time: calling again and again stores no more."""
        window = int(self._wall_clock() // max(self.limits.call_ring_timeout, 1.0))
        self._missed_call(callee, caller, f"missed-call:{caller}:{window}", None)

    def _missed_call(self, callee: str, caller: str, key: str, call_id: str | None) -> None:
        """A call the callee did not take: kept as a notification, so that a callee
        who was away (or offline) sees it on their next connect, until read."""
        data: dict[str, Any] = {"kind": "missed-call", "fromUserId": caller}
        if call_id is not None:
            data["callId"] = call_id
        payload = {"title": "Missed call", "body": f"Missed call from {caller}", "data": data}
        self._storage.store_notification(callee, payload, key)

    def _left_room(self, session: Session, room_name: str) -> None:
        """A connection left a room: if it was a party's connection in the call
        held there, the call is over."""
        call = self.calls.in_room(room_name)
        if call is None:
            call_id = self._remote_calls.get(session.session_id)
            if call_id is not None and session.addressed_as is not None:
                assert self._membership is not None
                self._membership.call_move(
                    call_id,
                    CallMove.LEFT.value,
                    session.addressed_as,
                    session.session_id,
                    None,
                    room_name,
                )
            return
        if session.session_id == call.caller_session:
            self._call_gone(call, CallMove.LEFT, call.caller)
        elif session.session_id == call.callee_session:
            self._call_gone(call, CallMove.LEFT, call.callee)

    # -- user addressing ----------------------------------------------------------

    def _identified(self, session: Session, ref: Ref | None) -> str:
        user_id = session.addressed_as
        if user_id is None:
            raise ProtocolError(
                ErrorCode.UNIDENTIFIED,
                "who are you? join a room, or show an access token, first",
                ref=ref,
            )
        return user_id

    def _address(self, session: Session, user_id: str) -> None:
        """Make the connection part of ``user_id``'s personal stream; its unread
        notifications are on their way."""
        if session.addressed_as == user_id:
            return
        self._unaddress(session)
        first_here = not self.users.connected(user_id)
        self.users.address(session, user_id)
        if first_here and self._membership is not None:
            self._membership.user_here(user_id, True)
        self._storage.load_notifications(
            session.session_id, user_id, self.limits.max_notification_page, None, False
        )

    def _unaddress(self, session: Session) -> None:
        """The connection leaves its user's stream (it closed, or is someone else
        now): a call that rested on it is over."""
        user_id = self.users.forget(session)
        if user_id is None:
            return
        membership = self._membership
        if membership is not None:
            if not self.users.connected(user_id):
                membership.user_here(user_id, False)
            remote_call = self._remote_calls.pop(session.session_id, None)
            if remote_call is not None:
                move = CallMove.CALLEE_GONE.value
                membership.call_move(remote_call, move, user_id, session.session_id, None)
        call = self.calls.of_user(user_id)
        if call is None:
            return
        if session.session_id == call.caller_session:
            self._call_gone(call, CallMove.CALLER_GONE, user_id)
        elif user_id == call.callee and (
            session.session_id == call.callee_session
            # Ringing: in a cluster, other nodes may still ring; the call times out.
            or (
                call.state is CallState.RINGING
                and membership is None
                and not self.users.connected(user_id)
            )
        ):
            self._call_gone(call, CallMove.CALLEE_GONE, user_id)

    def _on_resume(self, stub: Session, message: Resume) -> None:
        """A new connection takes back a session: ``stub`` is the one it was given
        at connect, dropped once the resume succeeds."""
        ref = message.ref
        if stub.room is not None or stub.joining is not None:
            raise ProtocolError(
                ErrorCode.ALREADY_IN_ROOM, "resume on a new connection, before joining", ref=ref
            )
        session = self.sessions.get(message.session_id)
        membership = self._membership
        if (
            session is None
            and membership is not None
            and membership.end_elsewhere(message.session_id, message.resume_token, stub.session_id)
        ):
            # Another node holds it: it is ended there, then this one answers;
            # what the client sends meanwhile waits, in order.
            stub.held = deque()
            self._ending_elsewhere[stub.session_id] = (stub, ref)
            return
        if (
            session is None
            or session is stub
            or session.closing
            or session.room is None
            or session.user_id is None
            or not hmac.compare_digest(session.resume_token.encode(), message.resume_token.encode())
        ):
            raise _unknown_session(ref)
        shown = stub.identity
        if shown is not None and shown.verified and shown.user_id != session.user_id:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "this connection's token is for another user", ref=ref
            )
        last_n = message.last_n
        if last_n < 0 or last_n > session.last_n:
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"lastN must be between 0 and {session.last_n}, the last number sent",
                ref=ref,
            )
        missed = session.held_after(last_n)
        if missed is None:
            # The client is told to start afresh, so its place must be free now.
            log.info("event=resume-overrun session=%s last_n=%d", session.session_id, last_n)
            self._leave(session)
            self._close(session, CloseCode.RESUMED_ELSEWHERE, "the session could not be resumed")
            raise ProtocolError(
                ErrorCode.RESUME_FAILED,
                "messages after lastN are no longer held; join the room afresh "
                "and fetch the history",
                ref=ref,
                reason=ResumeFailure.OVERRUN,
            )
        room = session.room
        user_id = session.user_id
        old_link, new_link = session.link, stub.link
        was = session.state
        # This connection carries the session from now on; its own one is dropped.
        self.sessions.pop(stub.session_id, None)
        self._unaddress(stub)
        stub.closing = stub.closed = True
        stub.held = None
        stub.move(LinkState.ENDED)
        session.move(LinkState.CONNECTED)
        session.link = new_link
        session.dropped_in_a_row = 0
        self.detached.pop(session.session_id, None)
        self._outbox.moved(new_link, session)
        if old_link is not None:
            # Half-open: the client saw its connection fail before the server did.
            stub.link = old_link
            self._outbox.moved(old_link, stub)
            self._outbox.close(stub, CloseCode.RESUMED_ELSEWHERE, "resumed on another connection")
        log.info(
            "event=resume session=%s from=%s replayed=%d takeover=%s",
            session.session_id,
            was.value,
            len(missed),
            old_link is not None,
        )
        resumed = Resumed(
            session_id=session.session_id,
            room=room.name,
            user_id=user_id,
            last_n=session.last_n,
            ref=ref,
        )
        self._outbox.send_unnumbered(session, codec.encode(resumed))
        if missed:
            self._outbox.replay(session, last_n + 1, missed)
        if was is LinkState.DETACHED and not session.hidden:
            back = ParticipantUpdated(user_id=user_id, connection="connected")
            self._publish_in_order(room, codec.encode(back), session.session_id)

    # -- helpers --------------------------------------------------------------

    def _detach(self, session: Session) -> None:
        """The connection was lost: keep the session's place, record what it is sent."""
        session.move(LinkState.DETACHED)
        session.link = None
        session.lost_at = self._clock()
        session.lost_n = session.last_n
        self.detached[session.session_id] = session
        room = session.room
        log.info(
            "event=lost session=%s room=%r user=%r n=%d",
            session.session_id,
            room.name if room else None,
            session.user_id,
            session.last_n,
        )
        if room is not None and session.user_id is not None and not session.hidden:
            away = ParticipantUpdated(user_id=session.user_id, connection="reconnecting")
            self._publish_in_order(room, codec.encode(away), session.session_id)

    def _end(self, session: Session) -> None:
        """The session is over: it leaves its room (announced) and is forgotten."""
        session.closing = session.closed = True
        session.held = None
        if session.state is not LinkState.ENDED:
            session.move(LinkState.ENDED)
        self._unaddress(session)
        self._leave(session)
        self.sessions.pop(session.session_id, None)
        self.detached.pop(session.session_id, None)

    def _leave(self, session: Session, announce: bool = True) -> None:
        user_id = session.user_id
        room = self.rooms.remove(session)
        if room is not None:
            self._left_room(session, room.name)
        if room is None or user_id is None:
            return
        log.info(
            "event=leave session=%s room=%r user=%r members=%d",
            session.session_id,
            room.name,
            user_id,
            len(room),
        )
        session.user_id = None
        chatted, session.chatted = session.chatted, False
        if self._membership is not None:
            self._membership.release(room.name, Member(user_id, session.session_id))
        if session.hidden or not announce:
            session.hidden = False
            session.typing = False
            return
        if session.typing:
            session.typing = False
            stop = TypingRelay(user_id=user_id, active=False)
            self._publish_in_order(room, codec.encode(stop), None)
        self._publish_in_order(room, codec.encode(UserLeft(user_id=user_id)), None)
        if chatted or user_id in room.seen:
            # One of the room's offline members from now on.
            now_ms = self._now_ms()
            room.saw(user_id, now_ms, self.offline_on_join)
            self._storage.record_seen(room.name, user_id, now_ms)
            offline = PresenceUpdate(status=OFFLINE, user_id=user_id, last_seen=now_ms)
            self._publish_in_order(room, codec.encode(offline), None)

    def _publish_in_order(self, room: Room, payload: bytes, exclude: str | None) -> None:
        """Publish to a room behind the chat queued there before: chat reaches the
        room once stored, and a member's leave must not overtake its last words."""
        if room.busy:
            room.waiting.append((room.chats_queued, payload, exclude))
        else:
            self._broker.publish_to_room(room.name, payload, exclude)

    def _chat_done(self, room: Room) -> None:
        room.chats_done += 1
        self._release_waiting(room)
        self.rooms.drop_if_empty(room)

    def _release_waiting(self, room: Room) -> None:
        """Relay what waited for the room's chat stored so far."""
        waiting = room.waiting
        while waiting and waiting[0][0] <= room.chats_done:
            _, payload, exclude = waiting.popleft()
            self._broker.publish_to_room(room.name, payload, exclude)

    def _release_held(self, session: Session) -> None:
        """Handle what a session sent while its join waited, until another join waits."""
        held = session.held
        while held and session.joining is None and not session.closing:
            self._dispatch(session, held.popleft())
        if session.joining is None:
            session.held = None

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _store_failed(self, session_id: str, ref: Ref | None) -> None:
        error = Error(
            code=ErrorCode.STORE_UNAVAILABLE,
            message="the store is unavailable; nothing was stored, try again later",
            ref=ref,
        )
        self._broker.publish_to_session(session_id, codec.encode(error))

    def _close(self, session: Session, code: CloseCode, reason: str) -> None:
        session.closing = True
        if session.state is LinkState.DETACHED:
            self._end(session)  # no connection to close: it is over at once
            return
        self._outbox.close(session, code, reason)

    def _ice_servers_for(self, session: Session) -> tuple[list[IceServer], int | None]:
        """The session's ICE servers, its TURN credentials renewed ahead of expiry."""
        ice = self._ice
        if ice is None or session.user_id is None:  # pragma: no cover - callers check
            return [], None
        servers, expires_at = ice.for_user(session.user_id)
        if expires_at is not None:
            due = self._clock() + ice.refresh_after
            session.ice_refresh_at = due
            heap = self._ice_refresh
            heapq.heappush(heap, (due, session.session_id))
            if len(heap) > 2 * len(self.sessions) + 64:
                # Entries of sessions that left stay until due; under churn, drop
                # them now so that the heap stays the size of the live sessions.
                self._ice_refresh = heap = [
                    (when, sid)
                    for when, sid in heap
                    if (live := self.sessions.get(sid)) is not None
                    and live.room is not None
                    and live.ice_refresh_at == when
                ]
                heapq.heapify(heap)
        return servers, expires_at

    def _free_user_id(self, room: Room | None) -> str:
        user_id = self._new_user_id()
        while room is not None and user_id in room.members:
            user_id = self._new_user_id()
        return user_id

    def _drop_for_rate(self, session: Session) -> None:
        self.counters.rate_limited += 1
        session.dropped_in_a_row += 1
        dropped = session.dropped_in_a_row
        limits = self.limits
        if dropped == 1:
            # One error per run of drops: answering every dropped message would
            # turn a flood into a flood of errors.
            self._send_error(
                session,
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"slow down: at most {limits.message_rate:g} messages a second",
                ),
            )
        if dropped >= limits.flood_disconnect_after:
            log.info("event=flood session=%s dropped=%d", session.session_id, dropped)
            session.closing = True
            self._outbox.close(session, CloseCode.POLICY_VIOLATION, "message flood")

    def _send_error(self, session: Session, error: ProtocolError) -> None:
        self.counters.errors[error.code] += 1
        self._outbox.send(
            session,
            codec.encode(
                Error(code=error.code, message=error.message, ref=error.ref, reason=error.reason)
            ),
        )
        if error.close_code is not None:
            session.closing = True
            self._outbox.close(session, error.close_code, error.message)


def _call_over(reason: str, call_id: str, ender: str, ref: Ref | None) -> Outgoing:
    """What the parties of a call that ended for ``reason`` are told."""
    if reason == "declined":
        return CallDeclined(call_id=call_id, ref=ref)
    if reason == "cancelled":
        return CallCancelled(call_id=call_id, ref=ref)
    if reason == "missed":
        return CallMissed(call_id=call_id)
    return CallEnded(call_id=call_id, reason=reason, by_user_id=ender, ref=ref)


def _placement_refusal(outcome: CallPlacement, ref: Ref | None) -> ProtocolError:
    if outcome is CallPlacement.BUSY:
        return Busy(ref)
    if outcome is CallPlacement.ALREADY_IN_CALL:
        return AlreadyInCall(ref)
    if outcome is CallPlacement.UNAVAILABLE:
        return UserUnavailable(ref)
    return _cluster_unavailable(ref)


def _cluster_unavailable(ref: Ref | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.CLUSTER_UNAVAILABLE,
        "the server cannot reach the rest of its cluster; try again later",
        ref=ref,
    )


def _unknown_session(ref: Ref | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RESUME_FAILED,
        "there is no such session to resume; join the room afresh",
        ref=ref,
        reason=ResumeFailure.UNKNOWN_SESSION,
    )


def _refusal(outcome: ClaimOutcome, ref: Ref | None) -> ProtocolError:
    if outcome is ClaimOutcome.TAKEN:
        return ProtocolError(
            ErrorCode.USER_ID_TAKEN, "this user id is already in the room", ref=ref
        )
    if outcome is ClaimOutcome.FULL:
        return ProtocolError(ErrorCode.ROOM_FULL, "the room is full", ref=ref)
    return ProtocolError(
        ErrorCode.CLUSTER_UNAVAILABLE,
        "the server cannot reach the rest of its cluster; try again later",
        ref=ref,
    )


def _grant_names(identity: Identity | None) -> list[str] | None:
    """What a member's token grants, as shown to the room; nothing without a token."""
    if identity is None or not identity.verified:
        return None
    return sorted(grant.value for grant in identity.grants)


def _entry(message: StoredChat) -> ChatEntry:
    return ChatEntry(
        id=message.id,
        seq=message.seq,
        ts=message.ts,
        user_id=message.user_id,
        message=message.text,
        client_id=message.client_id,
    )


def _check_status(status: str, ref: Ref | None) -> None:
    if status not in SETTABLE_STATUSES:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            "status is one of " + ", ".join(sorted(SETTABLE_STATUSES)),
            ref=ref,
        )


def _grouped_by_room(pending: list[PendingChat]) -> list[int] | None:
    """The batch's positions, each room's messages together (rooms in the order
    they first appear, each room's messages in their order), so that the relay
    makes one pass over a room's members per batch rather than per message; or
    ``None`` to keep the order as it is.

    A member hears only its room's messages and its own acks, so the order each
    member sees is the same either way, unless a sender has left the room it
    sent a message of this batch to: then the order stays as it is, so that its
    acks and what it hears in its new room come in the order they happened."""
    groups: dict[Room, list[int]] = {}
    for position, request in enumerate(pending):
        room = request.room
        if request.session.room is not room:
            return None
        group = groups.get(room)
        if group is None:
            groups[room] = [position]
        else:
            group.append(position)
    if len(groups) in (1, len(pending)):  # nothing to gain
        return None
    return [position for group in groups.values() for position in group]


def _check_name(value: str, field: str, max_length: int, ref: Ref | None) -> None:
    if not value:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{field} must not be empty", ref=ref)
    if len(value) > max_length:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{field} holds at most {max_length} characters", ref=ref
        )
    if _CONTROL_CHARACTERS.search(value):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"{field} must not hold control characters", ref=ref
        )

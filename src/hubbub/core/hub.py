"""The hub: sessions, rooms and the routing of every message between them.

Sans-I/O. The server adapter calls :meth:`Hub.connect`, :meth:`Hub.receive` and
:meth:`Hub.disconnect`; everything the hub wants sent goes out through its
:class:`~hubbub.core.outbox.Outbox` (one session) or its broker (a room, or a
session that may sit on another node). Time comes from an injected clock.
"""

from __future__ import annotations

import heapq
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from hubbub.auth.admission import Admission
from hubbub.auth.grants import Grant, Identity
from hubbub.auth.turn import IceServerConfig
from hubbub.broker import Broker
from hubbub.broker.memory import MemoryBroker
from hubbub.core.counters import HubCounters
from hubbub.core.limits import Limits
from hubbub.core.outbox import Outbox
from hubbub.core.rooms import Room, RoomRegistry
from hubbub.core.session import Session, TokenBucket
from hubbub.protocol import codec
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError
from hubbub.protocol.messages import (
    Chat,
    ChatRelay,
    EndRoom,
    Error,
    IceServer,
    IceServers,
    IncomingMessage,
    JoinRoom,
    LeaveRoom,
    Participant,
    ParticipantRemoved,
    Ping,
    Pong,
    Ref,
    RemoveParticipant,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    Signal,
    SignalRelay,
    UserJoined,
    UserLeft,
)

log = logging.getLogger("hubbub.core")

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _new_id() -> str:
    return secrets.token_urlsafe(12)


def _new_user_id() -> str:
    return "user-" + secrets.token_hex(4)


class Hub:
    """All sessions and rooms of one server process."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        broker: Broker | None = None,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_session_id: Callable[[], str] = _new_id,
        new_user_id: Callable[[], str] = _new_user_id,
        admission: Admission | None = None,
        ice_servers: IceServerConfig | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.admission = admission or Admission()
        self._ice = ice_servers if ice_servers else None
        self._ice_refresh: list[tuple[float, str]] = []
        """(when, session id): a heap of the TURN credentials to renew."""
        self.rooms = RoomRegistry()
        self.sessions: dict[str, Session] = {}
        self.counters = HubCounters()
        self._outbox = outbox
        self._broker: Broker = broker if broker is not None else MemoryBroker()
        self._broker.attach(self)
        self._clock = clock
        self._new_session_id = new_session_id
        self._new_user_id = new_user_id
        self._handlers: dict[type[Any], Callable[[Session, Any], None]] = {
            Signal: self._on_signal,
            Chat: self._on_chat,
            JoinRoom: self._on_join_room,
            LeaveRoom: self._on_leave_room,
            Ping: self._on_ping,
            RemoveParticipant: self._on_remove_participant,
            EndRoom: self._on_end_room,
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
        session = self.sessions[session_id] = Session(session_id, link, budget, identity)
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
            kind = type(message)
            self.counters.received[kind] += 1
            self._handlers[kind](session, message)
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

    def disconnect(self, session: Session) -> None:
        """The connection is gone (closed by either side, or lost)."""
        if session.closed:
            return
        session.closing = session.closed = True
        self._leave(session)
        self.sessions.pop(session.session_id, None)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close a session's connection; no more of its input is read."""
        self._close(session, code, reason)

    def remove_participant(self, room_name: str, user_id: str) -> bool:
        """Take ``user_id`` out of the room and close its connection (admin)."""
        room = self.rooms.get(room_name)
        member = room.members.get(user_id) if room is not None else None
        if member is None:
            return False
        log.info("event=remove session=%s room=%r user=%r", member.session_id, room_name, user_id)
        self._leave(member)
        self._close(member, CloseCode.REMOVED, "removed from the room")
        return True

    def end_room(self, room_name: str, keep: Session | None = None) -> int:
        """Take every member out of the room and close their connections (admin);
        ``keep`` (the admin who asked) leaves the room but stays connected.
        Returns how many members there were."""
        room = self.rooms.get(room_name)
        if room is None:
            return 0
        members = list(room.members.values())
        log.info("event=end-room room=%r members=%d", room_name, len(members))
        for member in members:
            # Nobody stays to hear user-left: everyone goes at once, unannounced.
            self.rooms.remove(member)
            member.user_id = None
            member.hidden = False
            if member is not keep:
                self._close(member, CloseCode.ROOM_ENDED, "the room was ended")
        return len(members)

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

    # -- what the broker calls ----------------------------------------------

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        target = self.rooms.get(room)
        if target is not None:
            self._outbox.broadcast(target.members.values(), payload, exclude)

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            self._outbox.send(session, payload)

    # -- message handlers ---------------------------------------------------

    def _on_signal(self, session: Session, message: Signal) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.SIGNAL, message.ref)
        target = room.members.get(message.target_user_id)
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
        assert session.user_id is not None
        payload = codec.encode(ChatRelay(message=message.message, user_id=session.user_id))
        self._broker.publish_to_room(room.name, payload, session.session_id)
        self.rooms.observer.chat_message(room.name, session.user_id, {"message": message.message})

    def _on_join_room(self, session: Session, message: JoinRoom) -> None:
        limits = self.limits
        ref = message.ref
        room_name = message.room
        _check_name(room_name, "room", limits.max_room_name_length, ref)
        user_id = message.user_id
        if user_id is not None:
            _check_name(user_id, "userId", limits.max_user_id_length, ref)
        current = session.room
        if current is not None and current.name == room_name:
            raise ProtocolError(ErrorCode.ALREADY_IN_ROOM, "already in this room", ref=ref)
        identity = self.admission.admit(
            room=room_name, user_id=user_id, token=message.token, shown=session.identity, ref=ref
        )
        if identity.user_id is not None:
            user_id = identity.user_id
        room = self.rooms.get(room_name)
        replaced: Session | None = None
        if room is not None:
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
        elif len(self.rooms) >= limits.max_rooms:
            raise ProtocolError(
                ErrorCode.TOO_MANY_ROOMS, "the server holds as many rooms as it may", ref=ref
            )
        if user_id is None:
            user_id = self._free_user_id(room)
        if current is not None:
            self._leave(session)
        if replaced is not None:
            log.info("event=replace session=%s by=%s", replaced.session_id, session.session_id)
            self._leave(replaced)
            self._close(replaced, CloseCode.REPLACED, "the same user joined from elsewhere")
        room = self.rooms.get_or_create(room_name)
        # Everyone already here joined first, so the newcomer is polite to each.
        participants = [
            Participant(
                user_id=uid,
                polite=True,
                name=member.identity.name if member.identity else None,
                grants=_grant_names(member.identity),
            )
            for uid, member in room.members.items()
            if not member.hidden
        ]
        session.user_id = user_id
        session.identity = identity
        session.hidden = identity.may(Grant.HIDDEN)
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
            ref=ref,
            name=identity.name,
            grants=grants,
        )
        if self._ice is not None:
            joined.ice_servers, joined.ice_servers_expire_at = self._ice_servers_for(session)
        self._outbox.send(session, codec.encode(joined))
        if not session.hidden:
            announcement = UserJoined(
                user_id=user_id, polite=False, name=identity.name, grants=grants
            )
            self._broker.publish_to_room(room_name, codec.encode(announcement), session.session_id)

    def _on_leave_room(self, session: Session, message: LeaveRoom) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "not in a room", ref=message.ref)
        self._leave(session)
        self._outbox.send(session, codec.encode(RoomLeft(room=room.name, ref=message.ref)))

    def _on_ping(self, session: Session, message: Ping) -> None:
        self._outbox.send(session, codec.encode(Pong(ref=message.ref)))

    def _on_remove_participant(self, session: Session, message: RemoveParticipant) -> None:
        room = session.room
        if room is None:
            raise ProtocolError(ErrorCode.NOT_IN_ROOM, "join a room first", ref=message.ref)
        self.admission.require(session.identity, Grant.ADMIN, message.ref)
        target = room.members.get(message.user_id)
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

    # -- helpers --------------------------------------------------------------

    def _leave(self, session: Session) -> None:
        user_id = session.user_id
        room = self.rooms.remove(session)
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
        if session.hidden:
            session.hidden = False
            return
        self._broker.publish_to_room(room.name, codec.encode(UserLeft(user_id=user_id)), None)

    def _close(self, session: Session, code: CloseCode, reason: str) -> None:
        session.closing = True
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
            session, codec.encode(Error(code=error.code, message=error.message, ref=error.ref))
        )
        if error.close_code is not None:
            session.closing = True
            self._outbox.close(session, error.close_code, error.message)


def _grant_names(identity: Identity | None) -> list[str] | None:
    """What a member's token grants, as shown to the room; nothing without a token."""
    if identity is None or not identity.verified:
        return None
    return sorted(grant.value for grant in identity.grants)


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

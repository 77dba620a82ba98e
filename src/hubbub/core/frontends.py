"""Front-ends: other libraries' signaling protocols (PeerJS, y-webrtc, WebTorrent
trackers) spoken over the same rooms, sessions, limits and cluster as hubbub's own.

Each front-end is a codec (:mod:`hubbub.protocol.peerjs`, ``y_webrtc``, ``tracker``:
frames in, typed messages out, its own bytes out) and a feature of the core
(:mod:`hubbub.core.peerjs`, ``y_webrtc``, ``tracker``). A frame from a front-end's
client goes through :meth:`~hubbub.core.hub.Hub.receive_frontend`: the message
budget, the waiting queue and the dispatch table are hubbub's own, and so are the
rooms a front-end's peers meet in (``peerjs:KEY``, ``y-webrtc:TOPIC``,
``tracker:INFOHASH``), the membership that admits them (one id per room across a
cluster, ``max_participants``), and the broker that carries their messages between
nodes. This module holds what the three share:

- a front-end connection is one session (:meth:`Frontends.connect`), with no
  user stream (notifications, calls) and no resume: a lost connection ends;
- a PeerJS connection is a member of its key's room itself; a y-webrtc or tracker
  connection may be in many rooms (topics, swarms), so it has a *member session*
  in each, made here, sharing its link and its message budget;
- every member is hidden (hubbub's ``user-joined`` and ``user-left`` mean nothing to
  these clients), and every place is claimed from the membership while the
  connection waits (:mod:`hubbub.core.waiting`): what it sends meanwhile is held and
  handled in order once every claim is answered.

What a front-end sends goes out through the outbox as its own bytes; the adapter
writes them as they are (no ``n``, nothing kept for a resume), and turns what the
core sends every session (an ``error``) into the front-end's own form.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubbub.auth.grants import Identity
from hubbub.broker import ClaimOutcome, ClaimResult, Member
from hubbub.core.context import HubContext
from hubbub.core.rooms import Room
from hubbub.core.session import Session
from hubbub.core.waiting import Wait
from hubbub.protocol import peerjs, tracker, y_webrtc
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError

if TYPE_CHECKING:
    from hubbub.core.peerjs import PeerjsFeature
    from hubbub.core.tracker import TrackerFeature
    from hubbub.core.y_webrtc import YWebrtcFeature

log = logging.getLogger("hubbub.core")

PROTOCOLS = ("peerjs", "y-webrtc", "tracker")
"""The front-ends, by the name the settings and the metrics use."""

ROOM_PREFIXES = (peerjs.ROOM_PREFIX, y_webrtc.ROOM_PREFIX, tracker.ROOM_PREFIX)
"""Rooms of the front-ends: hubbub's own clients may not join them."""


def frontend_room(name: str) -> bool:
    return name.startswith(ROOM_PREFIXES)


@dataclass(frozen=True, slots=True)
class FrontendSettings:
    """What the front-ends need that is not a limit on clients."""

    peerjs_keys: tuple[str, ...] = ("peerjs",)
    """The PeerJS keys (applications) served; a client with another gets ``Invalid
    key provided``."""
    peerjs_alive_timeout: float = 60.0
    """Seconds a PeerJS client may send nothing (it sends a heartbeat every 5 s)
    before its connection is closed."""
    peerjs_expire_timeout: float = 5.0
    """Seconds a message for a PeerJS peer that is not connected is kept for it;
    then its sender gets ``EXPIRE``."""
    tracker_interval: int = 120
    """Seconds a tracker client is told to wait between two announces."""


class FrontendConnection:
    """One client of a front-end: its session, and its member sessions by room."""

    __slots__ = ("claims", "members", "protocol", "session", "state")

    def __init__(self, protocol: str, session: Session) -> None:
        self.protocol = protocol
        self.session = session
        self.members: dict[str, Session] = {}
        """Room name -> the member session in it (y-webrtc, tracker)."""
        self.claims: dict[str, Session] = {}
        """Room name -> the session whose place is being claimed there."""
        self.state: Any = None
        """What the front-end's feature keeps for the connection."""

    def rooms(self) -> int:
        """The rooms it is in or is joining."""
        return len(self.members) + len(self.claims)


Answered = Callable[[ClaimResult, Session], None]


@dataclass(slots=True)
class _Claim:
    connection: FrontendConnection
    session: Session
    room: Room
    member: Member
    identity: Identity
    answered: Answered


class Frontends:
    """The connections of every front-end, their member sessions and their claims."""

    peerjs: PeerjsFeature
    y_webrtc: YWebrtcFeature
    tracker: TrackerFeature

    def __init__(self, ctx: HubContext, settings: FrontendSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self._connections: dict[str, FrontendConnection] = {}
        """The connection's session id -> the connection."""
        self._member_of: dict[str, FrontendConnection] = {}
        """A member session's id -> its connection."""
        self._claims: dict[str, _Claim] = {}
        """Session id -> its claim the membership has not answered yet."""
        self.received: dict[str, int] = dict.fromkeys(PROTOCOLS, 0)
        """Messages decoded, by front-end."""
        self.refused: dict[str, int] = dict.fromkeys(PROTOCOLS, 0)
        """Frames and requests refused, by front-end."""

    # -- connections --------------------------------------------------------------

    def connect(self, protocol: str, link: Any, identity: Identity | None) -> FrontendConnection:
        """A client of ``protocol`` connected (``identity``: what its token proves)."""
        session = self.ctx.lifecycle.new_session(link, identity)
        connection = self._connections[session.session_id] = FrontendConnection(protocol, session)
        return connection

    def connection(self, session: Session) -> FrontendConnection | None:
        return self._connections.get(session.session_id)

    def connections(self, protocol: str) -> int:
        return sum(1 for c in self._connections.values() if c.protocol == protocol)

    def new_member(self, connection: FrontendConnection) -> Session:
        """A session for one more room of ``connection`` (its link, its budget)."""
        owner = connection.session
        session = self.ctx.lifecycle.new_session(owner.link, owner.identity, owner.budget)
        self._member_of[session.session_id] = connection
        return session

    def ended(self, session: Session) -> None:
        """A session ended (see :meth:`Lifecycle.end`): a connection's member
        sessions end with it; a member session leaves its connection."""
        session_id = session.session_id
        owner = self._member_of.pop(session_id, None)
        if owner is not None:
            for room, member in list(owner.members.items()):
                if member is session:
                    del owner.members[room]
            return
        connection = self._connections.pop(session_id, None)
        if connection is None:
            return
        lifecycle = self.ctx.lifecycle
        for member in list(connection.members.values()):
            lifecycle.end(member)
        connection.members.clear()
        feature = self._feature(connection.protocol)
        feature.ended(connection)

    def leave(self, connection: FrontendConnection, room_name: str) -> bool:
        """The connection leaves one of its rooms (its member session ends)."""
        member = connection.members.pop(room_name, None)
        if member is None:
            return False
        self.ctx.lifecycle.end(member)
        return True

    # -- claims -------------------------------------------------------------------

    def claim(
        self,
        connection: FrontendConnection,
        session: Session,
        room_name: str,
        user_id: str,
        identity: Identity,
        *,
        replace: bool,
        answered: Answered,
        status: str = "online",
    ) -> None:
        """Ask the membership for a place for ``session`` in ``room_name`` as
        ``user_id``; ``answered(result, session)`` once it answers, the session a
        member by then if admitted. The connection waits meanwhile. Raises
        ``too-many-rooms`` if the room would be one too many."""
        ctx = self.ctx
        room = ctx.rooms.get(room_name)
        if room is None:
            if len(ctx.rooms) >= ctx.limits.max_rooms:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_ROOMS, "the server holds as many rooms as it may"
                )
            room = ctx.rooms.create(room_name)
            room.loading = False  # nothing of a front-end's room is stored
        member = Member(user_id=user_id, session_id=session.session_id, hidden=True, status=status)
        self._claims[session.session_id] = _Claim(
            connection, session, room, member, identity, answered
        )
        connection.claims[room_name] = session
        room.claims += 1
        owner = connection.session
        if owner.waiting is None:
            ctx.waiting.begin(owner, Wait.CLAIM)
        ctx.ask_membership(
            lambda: ctx.membership.claim(
                room_name, member, replace=replace, max_members=ctx.limits.max_participants
            )
        )

    def claim_answered(self, session_id: str, result: ClaimResult) -> bool:
        """The membership's answer, if the claim was a front-end's (False: not one)."""
        claim = self._claims.pop(session_id, None)
        if claim is None:
            return False
        ctx = self.ctx
        connection, session, room = claim.connection, claim.session, claim.room
        owner = connection.session
        admitted = result.outcome is ClaimOutcome.ADMITTED
        connection.claims.pop(room.name, None)
        try:
            if owner.closing or session.closing:
                if admitted:
                    ctx.membership.release(room.name, claim.member)
                self.discard(connection, session)
                return True
            if admitted:
                if result.replaced is not None:
                    self._replace(result.replaced, session)
                session.user_id = claim.member.user_id
                session.identity = claim.identity
                session.hidden = True
                session.status = claim.member.status
                ctx.rooms.add(room, session)
                if session is not owner:
                    connection.members[room.name] = session
                log.info(
                    "event=frontend-join protocol=%s session=%s room=%r user=%r members=%d",
                    connection.protocol,
                    session.session_id,
                    room.name,
                    session.user_id,
                    len(room),
                )
            else:
                self.discard(connection, session)
            claim.answered(result, session)
        finally:
            room.claims -= 1
            ctx.rooms.drop_if_empty(room)
            if not connection.claims and owner.waiting is Wait.CLAIM:
                ctx.waiting.end(owner)
        return True

    def discard(self, connection: FrontendConnection, session: Session) -> None:
        """A member session that did not get its place is forgotten."""
        if session is connection.session:
            return
        self._member_of.pop(session.session_id, None)
        session.closing = session.closed = True
        self.ctx.sessions.pop(session.session_id, None)

    def _replace(self, replaced: Member, by: Session) -> None:
        """The newcomer took the place of ``replaced``: that one's connection is
        closed (4009), wherever it is."""
        ctx = self.ctx
        log.info("event=replace session=%s by=%s", replaced.session_id, by.session_id)
        reason = "the same peer connected from elsewhere"
        local = ctx.sessions.get(replaced.session_id)
        if local is not None:
            ctx.joining.leave(local, announce=False)
            ctx.close(local, CloseCode.REPLACED, reason)
        else:
            ctx.membership.close_remote(replaced, CloseCode.REPLACED, reason, announce=False)

    # -- routing ----------------------------------------------------------------

    def find(self, room: Room, user_id: str) -> str | None:
        """The session id of ``user_id`` in ``room``, on this node or another."""
        local = room.members.get(user_id)
        if local is not None:
            return local.session_id
        remote = self.ctx.membership.remote_member(room.name, user_id)
        return None if remote is None else remote.session_id

    def size(self, room: Room) -> int:
        """How many members ``room`` has, on every node."""
        return len(room.members) + len(self.ctx.membership.remote_members(room.name))

    def refuse(self, session: Session, error: ProtocolError) -> bool:
        """Send a refusal in the form of the front-end whose connection ``session``
        is; False: it is none (a client of hubbub's own protocol)."""
        connection = self._connections.get(session.session_id)
        if connection is None:
            return False
        self.refused[connection.protocol] += 1
        self._feature(connection.protocol).refuse(connection, error)
        return True

    def _feature(self, protocol: str) -> Any:
        if protocol == "peerjs":
            return self.peerjs
        if protocol == "y-webrtc":
            return self.y_webrtc
        return self.tracker

"""The PeerJS front-end: a PeerServer's work over hubbub's rooms.

A key is an application: its peers are the members of the room ``peerjs:KEY``,
each under its PeerJS id, so an id is taken once per key across a cluster and the
room's ``max_participants`` is the key's concurrent limit. A connection opens with
its key, id and token (:meth:`PeerjsFeature.open`): it gets ``OPEN``, or
``ID-TAKEN`` or ``ERROR`` and is closed. Then each ``OFFER``, ``ANSWER``,
``CANDIDATE``, ``LEAVE`` and ``EXPIRE`` goes to its ``dst`` with ``src`` set, on
whichever node the peer is. A message for a peer that is not connected (yet) is
kept for it ``peerjs_expire_timeout`` seconds (at most :data:`MAX_QUEUED` of them),
handed over when it connects, and otherwise answered with one ``EXPIRE`` per
sender: the client reports ``peer-unavailable``.

Who may take an id back:

- a hubbub access token as the PeerJS ``token`` (its ``sub`` is the id): the
  newest connection takes the id, wherever the old one is (closed with 4009), so
  a reload or a reconnect never meets ``ID-TAKEN``; in token mode nothing else
  is accepted;
- in open mode, PeerJS's own random token: a connection with the token the id's
  holder on this node opened with takes its place, as the reference server lets
  it (and is not sent ``OPEN`` again).

A client that sends nothing for ``peerjs_alive_timeout`` seconds (it sends a
heartbeat every 5) is closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hubbub.auth import AuthMode, TokenError
from hubbub.auth.grants import OPEN_IDENTITY, Grant, Identity
from hubbub.broker import ClaimOutcome, ClaimResult
from hubbub.core.context import HubContext
from hubbub.core.frontends import FrontendConnection, Frontends
from hubbub.core.session import Session
from hubbub.protocol import peerjs
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError

log = logging.getLogger("hubbub.core")

MAX_QUEUED = 64
"""Most messages kept for one absent peer of a key; more are dropped."""

QUEUE_POLL = 0.2
"""Seconds between two looks for absent peers that connected to another node of
a cluster (a peer that connects here gets what was kept for it at once)."""


@dataclass(slots=True)
class PeerState:
    """A PeerJS connection as this front-end knows it."""

    key: str
    peer_id: str
    token: str
    last_heard: float
    open: bool = False
    """Its id is its own: it got ``OPEN`` (or took its place back)."""


@dataclass(slots=True)
class _Queue:
    created_at: float
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    """(sender's id, the relayed message), oldest first."""


class PeerjsFeature:
    def __init__(self, ctx: HubContext, frontends: Frontends) -> None:
        self.ctx = ctx
        self.frontends = frontends
        self.settings = frontends.settings
        self._queues: dict[tuple[str, str], _Queue] = {}
        """(room, absent peer's id) -> what waits for it."""
        self._polling = False
        self.expired = 0
        """EXPIRE messages sent."""

    # -- a connection opens ---------------------------------------------------------

    def open(self, link: Any, key: str, peer_id: str, token: str) -> Session:
        """A client connected with these query parameters: it claims its id, and is
        told how that went (at once on a lone node)."""
        ctx = self.ctx
        connection = self.frontends.connect("peerjs", link, None)
        session = connection.session
        connection.state = PeerState(key, peer_id, token, ctx.now())
        if not (key and peer_id and token):
            self._fail(session, peerjs.INVALID_WS_PARAMETERS)
            return session
        if key not in self.settings.peerjs_keys:
            self._fail(session, peerjs.INVALID_KEY)
            return session
        if not peerjs.valid_id(peer_id, ctx.limits.max_user_id_length):
            self._fail(session, peerjs.INVALID_ID)
            return session
        room = peerjs.room_name(key)
        try:
            identity = self._identify(token, peer_id, room)
        except ProtocolError as error:
            self._fail(session, error.message)
            return session
        session.identity = identity
        replace = identity.verified
        if not replace:
            holder = ctx.rooms.get(room)
            present = holder.members.get(peer_id) if holder is not None else None
            other = self.frontends.connection(present) if present is not None else None
            # The reference server's rule: the holder's own token takes the id over.
            replace = other is not None and other.state.token == token
        try:
            self.frontends.claim(
                connection,
                session,
                room,
                peer_id,
                identity,
                replace=replace,
                answered=lambda result, _: self._claimed(connection, result),
            )
        except ProtocolError as error:
            self._fail(session, error.message)
        return session

    def _identify(self, token: str, peer_id: str, room: str) -> Identity:
        """The identity a PeerJS token gives: a hubbub access token's, or, in open
        mode, anyone's."""
        admission = self.ctx.admission
        if token.count(".") == 2:  # a JWT; PeerJS's own tokens are base 36
            try:
                identity = admission.identify(token)
            except TokenError as error:
                raise ProtocolError(
                    error.code, f"{peerjs.INVALID_TOKEN}: {error.message}"
                ) from None
            if identity.user_id != peer_id:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    f"{peerjs.INVALID_TOKEN}: the id is not the token's subject",
                )
            return admission.admit(room=room, user_id=peer_id, token=None, shown=identity, ref=None)
        if admission.mode is AuthMode.TOKEN:
            raise ProtocolError(ErrorCode.FORBIDDEN, peerjs.INVALID_TOKEN)
        return admission.admit(
            room=room, user_id=peer_id, token=None, shown=OPEN_IDENTITY, ref=None
        )

    def _claimed(self, connection: FrontendConnection, result: ClaimResult) -> None:
        ctx = self.ctx
        session = connection.session
        state: PeerState = connection.state
        outcome = result.outcome
        if outcome is ClaimOutcome.TAKEN:
            self.frontends.refused["peerjs"] += 1
            ctx.outbox.send(session, peerjs.ID_TAKEN_MESSAGE)
            ctx.close(session, CloseCode.NORMAL, peerjs.ID_TAKEN)
            return
        if outcome is ClaimOutcome.FULL:
            self._fail(session, peerjs.CONNECTION_LIMIT_EXCEED)
            return
        if outcome is not ClaimOutcome.ADMITTED:
            self._fail(session, "the cluster cannot be reached: try again")
            return
        swapped = result.replaced is not None and not (session.identity or OPEN_IDENTITY).verified
        state.open = True
        if not swapped:
            ctx.outbox.send(session, peerjs.OPEN)
        state.last_heard = ctx.now()
        ctx.timers.schedule(
            state.last_heard + self.settings.peerjs_alive_timeout, self._alive_due, connection
        )
        room = session.room
        if room is not None:
            self._hand_over((room.name, state.peer_id), session.session_id)

    def _fail(self, session: Session, message: str) -> None:
        """Refuse the connection as a PeerServer does: ``ERROR``, then close."""
        self.frontends.refused["peerjs"] += 1
        self.ctx.outbox.send(session, peerjs.error(message))
        self.ctx.close(session, CloseCode.NORMAL, message[:100])

    # -- messages --------------------------------------------------------------------

    def on_heartbeat(self, session: Session, message: peerjs.Heartbeat) -> None:
        connection = self.frontends.connection(session)
        if connection is not None:
            connection.state.last_heard = self.ctx.now()

    def on_relay(self, session: Session, message: peerjs.Relay) -> None:
        connection = self.frontends.connection(session)
        room = session.room
        if connection is None or room is None or session.user_id is None:
            return  # its id was refused: it is being closed
        ctx = self.ctx
        connection.state.last_heard = ctx.now()
        ctx.admission.require(session.identity, Grant.SIGNAL, None)
        dst = message.dst
        payload = peerjs.relayed(message.type, session.user_id, dst, message.payload)
        key = (room.name, dst)
        target = self.frontends.find(room, dst)
        if target is not None:
            if key in self._queues:
                self._hand_over(key, target)
            ctx.broker.publish_to_session(target, payload)
            return
        if message.type in peerjs.NOT_QUEUED:
            return
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(ctx.now())
            ctx.timers.schedule(
                queue.created_at + self.settings.peerjs_expire_timeout, self._expire_due, key
            )
            self._poll_soon()
        if len(queue.messages) < MAX_QUEUED:
            queue.messages.append((session.user_id, payload))

    # -- what waits for absent peers ---------------------------------------------------------

    def _hand_over(self, key: tuple[str, str], target: str) -> None:
        queue = self._queues.pop(key, None)
        if queue is None:
            return
        publish = self.ctx.broker.publish_to_session
        for _, payload in queue.messages:
            publish(target, payload)

    def _expire_due(self, key: tuple[str, str]) -> None:
        queue = self._queues.get(key)
        if queue is None or queue.created_at + self.settings.peerjs_expire_timeout > self.ctx.now():
            return
        del self._queues[key]
        room = self.ctx.rooms.get(key[0])
        absent = key[1]
        told: set[str] = set()
        for sender, _ in queue.messages:
            if sender in told:
                continue
            told.add(sender)
            target = self.frontends.find(room, sender) if room is not None else None
            if target is not None:
                self.expired += 1
                self.ctx.broker.publish_to_session(target, peerjs.expire(absent, sender))

    def _poll_soon(self) -> None:
        if not self._polling:
            self._polling = True
            self.ctx.timers.schedule(self.ctx.now() + QUEUE_POLL, self._poll_due, None)

    def _poll_due(self, _: object) -> None:
        """Hand over what waits for peers that connected to another node since."""
        self._polling = False
        if not self._queues:
            return
        membership = self.ctx.membership
        for key in list(self._queues):
            found = membership.remote_member(key[0], key[1])
            if found is not None:
                self._hand_over(key, found.session_id)
        if self._queues:
            self._poll_soon()

    def _alive_due(self, connection: FrontendConnection) -> None:
        session = connection.session
        if session.closing:
            return
        state: PeerState = connection.state
        timeout = self.settings.peerjs_alive_timeout
        due = state.last_heard + timeout
        if due > self.ctx.now():
            self.ctx.timers.schedule(due, self._alive_due, connection)
            return
        log.info("event=peerjs-alive-timeout session=%s", session.session_id)
        self.ctx.close(session, CloseCode.NORMAL, "no heartbeat")

    # -- what the shared part asks ------------------------------------------------------------

    def refuse(self, connection: FrontendConnection, error: ProtocolError) -> None:
        self.ctx.outbox.send(connection.session, peerjs.error(error.message))

    def ended(self, connection: FrontendConnection) -> None:
        pass  # what was kept for its peers expires on its own

    @property
    def queued(self) -> int:
        """Messages kept for absent peers."""
        return sum(len(queue.messages) for queue in self._queues.values())

"""Sessions handed between the nodes of a cluster: a client that comes back through
another node resumes its session there, with every message it missed once and in
order; a node that stops hands its sessions to the others first, so that its
clients resume elsewhere rather than join afresh.

The node where the client came back (the *taker*) asks the membership where the
session is (:meth:`Membership.find_session`). Its node offers it, with its room; the
taker gets the room ready (its state loaded, as for a join) and takes the session
(:meth:`Membership.take_session`), which marks a point in the room's order: from
there on, what the room gets is the taker's to deliver (:meth:`Handover.taking`:
it keeps it, in order, for the session), and no longer the old node's (which
cuts the session there and hands over its state: :meth:`Handover.cut`). The state
comes (:meth:`Handover.handed`): the session goes on here, with the same user, room,
token and numbering, its replay buffer as it was plus what was kept meanwhile; the
client is told ``resumed`` (with the session's new id) and gets what it missed.

Chat goes by ``seq``: the old node says the last ``seq`` it gave the session; chat
after it that this node delivered before the mark is taken from the room's recent
chat, chat up to it that this node delivers after the mark is left out.

The old node forwards what still comes for the old session id (a chat's ack, a
signal sent before its sender heard of the move) to the new one, for a while.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hubbub.auth.grants import Grant, Identity, RoomScope
from hubbub.broker import Located, Member, SessionFound, SessionState, SharedMedia
from hubbub.core.context import HubContext
from hubbub.core.rooms import ParkedTake, Room
from hubbub.core.session import LinkState, Session
from hubbub.core.waiting import Wait
from hubbub.protocol import codec
from hubbub.protocol.errors import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    ResumeFailure,
    unknown_session,
)
from hubbub.protocol.messages import ChatRelay, Reconnect, Resume

log = logging.getLogger("hubbub.core")

FORWARD_FOR = 60.0
"""Seconds a node forwards what still comes for a session it handed over."""


@dataclass(slots=True)
class Take:
    """A session this node is taking, for local session ``by``."""

    by: Session
    room: str
    session_id: str
    resume: Resume | None
    """The client's ``resume`` (None: adopted for a client yet to come back)."""
    since_seq: int = 0
    """The room's last chat here when the mark came back."""
    kept: list[tuple[int | None, bytes, str | None]] | None = None
    """What the room got since the mark: (chat seq or None, payload, exclude)."""
    direct: list[bytes] = field(default_factory=list)
    """What was sent to the new session itself meanwhile (forwarded acks, signals)."""
    state: SessionState | None = None
    """Its state, come while this node's room had not had all the chat the old node
    gave it: it waits for the room to catch up."""
    asks: list[tuple[str, str]] = field(default_factory=list)
    """Other nodes asking for it meanwhile (its client went there): (token, asked by),
    answered once it is here."""


class Handover:
    """Both sides of a hand-over, and a stopping node's hand-over of all its sessions."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx
        self._asking: dict[str, Resume] = {}
        """Resumes waiting for the membership to find their session: new session id ->
        the resume."""
        self._taking: dict[str, Take] = {}
        """Sessions being taken, by the id of the local session taking them."""
        self.moved: dict[str, str] = {}
        """Sessions handed to other nodes: old id -> id there (forwarded to)."""
        self.stopping = False
        """This node stops: the clients of the sessions it hands over are told to come
        back (``reconnect``) and resume."""
        self.giving: set[str] = set()
        """Sessions this stopping node asked other nodes to take, not yet cut."""

    @property
    def taking_count(self) -> int:
        return len(self._taking)

    # -- the client came back here: find its session ------------------------------------

    def ask(self, stub: Session, message: Resume) -> bool:
        """``resume`` of a session that is not here: find it; True if it is looked
        for (the stub waits), False if it cannot be anywhere else."""
        ctx = self.ctx
        if not ctx.membership.find_session(
            message.session_id, message.resume_token, stub.session_id
        ):
            return False
        self._asking[stub.session_id] = message
        ctx.waiting.begin(stub, Wait.HANDOVER)
        return True

    def found(self, asked_by: str, found: SessionFound) -> None:
        ctx = self.ctx
        message = self._asking.pop(asked_by, None)
        stub = ctx.sessions.get(asked_by)
        if message is None or stub is None or stub.waiting is not Wait.HANDOVER:
            return
        if found.located is Located.THERE:
            self._take(stub, found.room, found.session_id, message)
            return
        ctx.waiting.end(stub)
        if found.located is Located.HERE:
            try:
                ctx.resuming.resume_moved(stub, found.session_id, message)
            except ProtocolError as error:
                ctx.send_error(stub, error)
            return
        if found.located is Located.NODE_GONE:
            ctx.send_error(stub, node_gone(message.ref))
        else:
            ctx.send_error(stub, unknown_session(message.ref))

    # -- taking it ---------------------------------------------------------------------

    def _take(self, by: Session, room_name: str, session_id: str, resume: Resume | None) -> None:
        """Get the room ready here, then take the session (waiting meanwhile)."""
        ctx = self.ctx
        by.waiting = Wait.HANDOVER
        take = self._taking[by.session_id] = Take(by, room_name, session_id, resume)
        room = ctx.rooms.get(room_name)
        if room is None:
            room = ctx.rooms.create(room_name)
            ctx.storage.load_room(room_name, ctx.history_on_join)
        room.claims += 1  # the room stays while the session is on its way
        if room.busy and not room.releasing:
            room.pending.append((room.chats_queued, ParkedTake(by.session_id)))
            return
        self._mark(take)

    def parked_take_due(self, parked: ParkedTake) -> None:
        take = self._taking.get(parked.taken_by)
        if take is not None:
            self._mark(take)

    def _mark(self, take: Take) -> None:
        self.ctx.membership.take_session(take.room, take.session_id, take.by.session_id)

    def taking(
        self, room_name: str, session_id: str, taken_by: str, media: SharedMedia | None = None
    ) -> None:
        """The mark came back: what the room gets from here on is kept for the session;
        the room's calls are as ``media`` says (this node may have had no member there)."""
        take = self._taking.get(taken_by)
        room = self.ctx.rooms.get(room_name)
        if take is None or room is None or take.kept is not None:
            return
        self.ctx.media.claimed(room_name, media)
        take.since_seq = room.last_seq
        take.kept = []
        room.recorders.append(take)

    def keep(self, room: Room, seq: int | None, payload: bytes, exclude: str | None) -> None:
        """What ``room`` gets, for the sessions being taken into it (see
        :meth:`HubContext.room_broadcast`)."""
        for take in room.recorders:
            if take.kept is not None:
                take.kept.append((seq, payload, exclude))

    def keep_direct(self, session: Session, payload: bytes) -> bool:
        """A message to a session taking another: kept for it. False if it is not."""
        take = self._taking.get(session.session_id)
        if take is None:
            return False
        take.direct.append(payload)
        return True

    def handed(self, taken_by: str, state: SessionState | None) -> None:
        """The taken session's state: it goes on here, as ``taken_by`` (once this
        node's room has had every chat the old node gave it, read from the store if
        need be: it must not give it any of them again)."""
        ctx = self.ctx
        take = self._taking.get(taken_by)
        if take is None:
            return
        room = ctx.rooms.get(take.room)
        if state is not None and room is not None and room.last_seq < state.seq:
            take.state = state
            ctx.ordering.reach(room, state.seq)
            return
        self._finish(take, state)

    def caught_up(self, room: Room) -> None:
        """``room`` delivered more chat: the sessions that waited for it go on."""
        for take in list(room.recorders):
            if take.state is not None and room.last_seq >= take.state.seq:
                self._finish(take, take.state)

    def _finish(self, take: Take, state: SessionState | None) -> None:
        taken_by = take.by.session_id
        if self._taking.pop(taken_by, None) is None:
            return
        self._settle(take, state)
        for resume_token, asked_by in take.asks:
            self._offer(taken_by, resume_token, asked_by)

    def _settle(self, take: Take, state: SessionState | None) -> None:
        ctx = self.ctx
        taken_by = take.by.session_id
        room = ctx.rooms.get(take.room)
        if room is not None:
            if take in room.recorders:
                room.recorders.remove(take)
            room.claims -= 1
        session = take.by
        alive = session.session_id in ctx.sessions and not session.closed
        if state is None or room is None or not alive or state.room != take.room:
            if state is not None and room is not None:
                # Its place is this node's now, with nobody to fill it.
                ctx.membership.release(take.room, Member(state.user_id, taken_by))
            if room is not None:
                ctx.rooms.drop_if_empty(room)
            if alive and take.resume is not None:
                ctx.send_error(session, unknown_session(take.resume.ref))
                ctx.waiting.end(session)
            elif alive:
                ctx.lifecycle.end(session)
            return
        self._become(session, state, take, room)
        log.info(
            "event=session-taken session=%s from=%s room=%r last_n=%d",
            session.session_id,
            state.session_id,
            room.name,
            session.last_n,
        )
        if take.resume is not None:
            ctx.waiting.end(session)
            try:
                ctx.resuming.resumed_here(session, take.resume, state.lost_for is not None)
            except ProtocolError as error:
                ctx.send_error(session, error)
        else:
            session.waiting = None  # nothing was sent on it: it has no connection
            ctx.lifecycle.detach_adopted(session, state.lost_for, state.last_n)
        ctx.rooms.drop_if_empty(room)

    def _become(self, session: Session, state: SessionState, take: Take, room: Room) -> None:
        """``session`` takes on everything ``state`` was, and what was kept for it."""
        ctx = self.ctx
        session.user_id = state.user_id
        session.identity = Identity(
            user_id=state.identity_user_id,
            rooms=RoomScope(frozenset(state.room_names), tuple(state.room_prefixes)),
            grants=frozenset(Grant(g) for g in state.grants if g in Grant._value2member_map_),
            name=state.name,
            verified=state.verified,
            expires_at=state.expires_at,
        )
        session.hidden = state.hidden
        session.status = state.status
        session.chatted = state.chatted
        session.resume_token = state.resume_token
        session.replay = list(state.replay)
        session.replay_bytes = sum(map(len, session.replay))
        session.last_n = state.last_n
        old = state.session_id
        # Chat this node delivered before the mark and the old node had not given the
        # session yet, from the room's recent chat; then what the room got since.
        encode = codec.encode
        for message in room.recent:
            if state.seq < message.seq <= take.since_seq and message.user_id != state.user_id:
                relay = ChatRelay(
                    message=message.text,
                    user_id=message.user_id,
                    id=message.id,
                    seq=message.seq,
                    ts=message.ts,
                    client_id=message.client_id,
                )
                session.number(encode(relay))
        for seq, payload, exclude in take.kept or []:
            if exclude in (old, session.session_id):
                continue  # its own (a chat's ack comes from its old node)
            if seq is not None and seq <= state.seq:
                continue  # the old node gave it this chat already
            session.number(payload)
        for payload in take.direct:
            session.number(payload)
        room.members[state.user_id] = session
        session.room = room
        media_mode = ctx.media.adopted(session, room, capable=state.sfu, sending=state.sending)
        if media_mode is not None:  # after what it missed, as the rest of what it is sent
            session.number(encode(media_mode))
        if not ctx.users.connected(state.user_id):
            ctx.membership.user_here(state.user_id, True)
        ctx.users.address(session, state.user_id)
        if state.typing and not state.hidden:
            session.typing = True
            ctx.presence.typing_lapses(session)

    # -- the old node's side -------------------------------------------------------------

    def asked(self, session_id: str, resume_token: str, asked_by: str) -> None:
        """Another node's client came back with the id and token of this node's
        session: offered, if it can be handed over (once it is here, for one still
        on its way here); sent on, if it moved on."""
        ctx = self.ctx
        moved = self.moved.get(session_id)
        if moved is not None:
            ctx.membership.offer_session(asked_by, session_id, moved_to=moved)
            return
        take = self._taking.get(session_id)
        if take is not None:
            take.asks.append((resume_token, asked_by))
            return
        self._offer(session_id, resume_token, asked_by)

    def _offer(self, session_id: str, resume_token: str, asked_by: str) -> None:
        ctx = self.ctx
        session = ctx.sessions.get(session_id)
        if (
            session is None
            or (session.closing and session_id not in self.giving)
            or session.room is None
            or session.user_id is None
            or session.waiting is not None
            or not ctx.resuming.token_matches(session, resume_token)
        ):
            ctx.membership.offer_session(asked_by, session_id)
            return
        ctx.membership.offer_session(asked_by, session_id, session.room.name, session.user_id)

    def cut(self, room_name: str, session_id: str, taken_by: str) -> SessionState | None:
        """The mark of the node taking the session came: the session leaves this node
        here, quietly (it goes on there); its state goes with it."""
        ctx = self.ctx
        session = ctx.sessions.get(session_id)
        room = session.room if session is not None else None
        if (
            session is None
            or room is None
            or room.name != room_name
            or session.user_id is None
            or (session.closing and session_id not in self.giving)
        ):
            return None
        self.giving.discard(session_id)
        identity = session.identity
        lost_for = None  # connected: its client is told to come back (or is back)
        if session.state is LinkState.DETACHED:
            lost_for = ctx.now() - session.lost_at
        media = ctx.media.part_of(session_id)
        state = SessionState(
            session_id=session_id,
            room=room.name,
            user_id=session.user_id,
            resume_token=session.resume_token,
            identity_user_id=identity.user_id if identity else None,
            room_names=sorted(identity.rooms.names) if identity else [],
            room_prefixes=list(identity.rooms.prefixes) if identity else [""],
            grants=sorted(g.value for g in identity.grants) if identity else [],
            name=identity.name if identity else None,
            verified=identity.verified if identity else False,
            expires_at=identity.expires_at if identity else None,
            hidden=session.hidden,
            status=session.status,
            chatted=session.chatted,
            typing=session.typing,
            last_n=session.last_n,
            replay=list(session.replay),
            seq=room.last_seq,
            lost_for=lost_for,
            sfu=media.capable if media is not None else session.sfu_capable,
            sending=media is not None and media.sending,
        )
        # Out of the room and of this node, without a word to the room: the member
        # goes on, elsewhere.
        if room.members.get(session.user_id) is session:
            del room.members[session.user_id]
        session.room = None
        session.typing = False
        # What it had on the media server was this node's: it goes (its feed too),
        # and the new node tells its client to publish and subscribe again there.
        ctx.media.left(session, room, moved_to=taken_by)
        link = session.link
        ctx.lifecycle.hand_off(session)
        self.moved[session_id] = taken_by
        ctx.timers.schedule(ctx.now() + FORWARD_FOR, self._forget_moved, session_id)
        if link is not None:
            if self.stopping:
                after = ctx.random.randint(0, max(0, int(ctx.stop_spread_ms)))
                ctx.outbox.send_unnumbered(
                    session, codec.encode(Reconnect(after_ms=after, resume=True))
                )
                ctx.outbox.close(session, CloseCode.GOING_AWAY, "server shutting down")
            else:
                # Half-open: its client is on the other node already.
                ctx.outbox.close(session, CloseCode.RESUMED_ELSEWHERE, "resumed on another node")
        ctx.rooms.drop_if_empty(room)
        return state

    def _forget_moved(self, session_id: str) -> None:
        self.moved.pop(session_id, None)

    def forward(self, session_id: str, payload: bytes) -> bool:
        """What still comes for a session that moved goes after it; False if it did not."""
        to = self.moved.get(session_id)
        if to is None:
            return False
        self.ctx.broker.publish_to_session(to, payload)
        return True

    # -- a node that stops -----------------------------------------------------------------

    def give_all(self) -> int:
        """Ask the other nodes to take every session here that is in a room: each
        comes back cut (:meth:`cut`). Returns how many were asked for."""
        ctx = self.ctx
        self.stopping = True
        for session in list(ctx.sessions.values()):
            room = session.room
            if (
                room is None
                or session.user_id is None
                or session.waiting is not None
                or session.state is LinkState.ENDED
            ):
                continue
            if ctx.membership.give_session(
                session.session_id, session.resume_token, room.name, session.user_id
            ):
                self.giving.add(session.session_id)
        return len(self.giving)

    # -- another node stops ------------------------------------------------------------------

    def adopt(self, session_id: str, resume_token: str, room: str, user_id: str) -> None:
        """Take a session of a node that stops, for its client to resume here or
        anywhere (it finds its way here)."""
        ctx = self.ctx
        if ctx.lifecycle.stopping:
            return  # this node stops too: the other's session stays there
        session = ctx.lifecycle.connect(None, None)
        self._take(session, room, session_id, None)


def node_gone(ref: object) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RESUME_FAILED,
        "the server that held the session is gone, and what it was sent since its "
        "connection was lost with it (its chat is stored): join the room afresh and "
        "fetch the history",
        ref=ref,  # type: ignore[arg-type]
        reason=ResumeFailure.NODE_GONE,
    )

"""Joining and leaving rooms: admission, the claim of a place, the order a room's
members see things in, and the end of rooms and of memberships.

A join goes through three steps, each of which may wait (:mod:`hubbub.core.waiting`):

1. admission (the token, the grants, the room's name): at once;
2. its turn in the room (:meth:`Joining.release`): a room whose state is loading
   from the store, or with chat on its way to the store, or with messages waiting
   behind such chat, takes the join in order behind them, so that every member sees
   the room's events in the order the server took them;
3. the claim of a place (:meth:`Joining.claim_answered`): the membership grants the
   user id (or the place of the member it replaces) and says who is there, at once
   on a lone node, through Redis in a cluster.

A room stays in the registry while it has members, a join on its way in, or
messages on their way out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from hubbub import randomness
from hubbub.auth.grants import Grant, Identity
from hubbub.broker import ClaimOutcome, ClaimResult, Member
from hubbub.core.context import HubContext
from hubbub.core.frontends import frontend_room
from hubbub.core.rooms import Departure, ParkedJoin, ParkedTake, Room, RoomMessage
from hubbub.core.session import LinkState, Session
from hubbub.core.waiting import Wait
from hubbub.protocol import codec
from hubbub.protocol.errors import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    already_in_room,
    check_name,
    check_status,
    cluster_unavailable,
    no_such_peer,
    not_in_room,
    room_full,
    store_unavailable,
    user_id_taken,
)
from hubbub.protocol.messages import (
    OFFLINE,
    ONLINE,
    RECONNECTING,
    SETTABLE_STATUSES,
    ChatEntry,
    EndRoom,
    JoinRoom,
    LeaveRoom,
    OfflineMember,
    Participant,
    ParticipantRemoved,
    PresenceUpdate,
    Ref,
    RemoveParticipant,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    TypingRelay,
    UserJoined,
    UserLeft,
)
from hubbub.store import RoomState, StoredChat

log = logging.getLogger("hubbub.core")


def new_user_id() -> str:
    return "user-" + randomness.token_hex(4)


def grant_names(identity: Identity | None) -> list[str] | None:
    """What a member's token grants, as shown to the room; nothing without a token."""
    if identity is None or not identity.verified:
        return None
    return sorted(grant.value for grant in identity.grants)


def member_of(session: Session) -> Member:
    """A member as the cluster lists it (its session in a room)."""
    identity = session.identity
    return Member(
        user_id=session.user_id or "",
        session_id=session.session_id,
        name=identity.name if identity else None,
        grants=grant_names(identity),
        hidden=session.hidden,
        status=session.status,
        reconnecting=session.state is LinkState.DETACHED,
    )


def chat_entry(message: StoredChat) -> ChatEntry:
    return ChatEntry(
        id=message.id,
        seq=message.seq,
        ts=message.ts,
        user_id=message.user_id,
        message=message.text,
        client_id=message.client_id,
    )


@dataclass(slots=True)
class Claim:
    """A join whose place the membership has been asked for."""

    session: Session
    message: JoinRoom
    identity: Identity
    room: Room
    member: Member


class Joining:
    """Joins, leaves, and the end of rooms."""

    def __init__(self, ctx: HubContext, new_user_id: Callable[[], str] = new_user_id) -> None:
        self.ctx = ctx
        self._new_user_id = new_user_id
        self._claims: dict[str, Claim] = {}
        """The claims the membership has not answered yet, by session id."""

    # -- join-room ------------------------------------------------------------------

    def on_join_room(self, session: Session, message: JoinRoom) -> None:
        ctx = self.ctx
        limits = ctx.limits
        ref = message.ref
        room_name = message.room
        check_name(room_name, "room", limits.max_room_name_length, ref)
        if frontend_room(room_name):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "this room belongs to another protocol's clients", ref=ref
            )
        user_id = message.user_id
        if user_id is not None:
            check_name(user_id, "userId", limits.max_user_id_length, ref)
        if message.status is not None:
            check_status(message.status, SETTABLE_STATUSES, ref)
        current = session.room
        if current is not None and current.name == room_name:
            raise already_in_room(ref)
        call = ctx.calls.in_room(room_name)
        identity = ctx.admission.admit(
            room=room_name,
            user_id=user_id,
            token=message.token,
            shown=session.identity,
            ref=ref,
            invited=(call.caller, call.callee) if call is not None else (),
        )
        room = ctx.rooms.get(room_name)
        if room is None:
            if len(ctx.rooms) >= limits.max_rooms:
                raise ProtocolError(
                    ErrorCode.TOO_MANY_ROOMS, "the server holds as many rooms as it may", ref=ref
                )
            # The room's history and last sequence number come from the store
            # first; the join, and whatever this session sends next, wait for it.
            room = ctx.rooms.create(room_name)
            ctx.storage.load_room(room_name, ctx.history_on_join)
        if room.busy and not room.releasing:
            room.pending.append((room.chats_queued, ParkedJoin(session, message, identity)))
            ctx.waiting.begin(session, Wait.ROOM)
            return
        self._claim(session, message, identity, room)

    def release(self, room: Room) -> None:
        """Carry out what waited in the room whose turn has come (its state arrived,
        or the chat ahead of it is stored), in order."""
        if room.releasing:
            return  # the release in progress goes on to it
        room.releasing = True
        try:
            while (due := room.next_due()) is not None:
                if isinstance(due, RoomMessage):
                    self.ctx.broker.publish_to_room(room.name, due.payload, due.exclude)
                elif isinstance(due, Departure):
                    self._depart(room, due)
                elif isinstance(due, ParkedTake):
                    self.ctx.handover.parked_take_due(due)
                else:
                    self._parked_join_due(room, due)
        finally:
            room.releasing = False
        self.ctx.rooms.drop_if_empty(room)

    def _parked_join_due(self, room: Room, parked: ParkedJoin) -> None:
        session = parked.session
        if session.closed or session.waiting is not Wait.ROOM:
            return
        session.waiting = None
        try:
            self._claim(session, parked.message, parked.identity, room)
        except ProtocolError as error:
            self.ctx.send_error(session, error)
        if session.waiting is None:
            self.ctx.waiting.end(session)

    def room_loaded(self, room_name: str, state: RoomState) -> None:
        room = self.ctx.rooms.get(room_name)
        if room is None or not room.loading:  # pragma: no cover - one load per room
            return
        room.loaded(state.last_seq, state.recent, state.seen)
        self.release(room)

    def room_load_failed(self, room_name: str) -> None:
        ctx = self.ctx
        room = ctx.rooms.get(room_name)
        if room is None or not room.loading:  # pragma: no cover - one load per room
            return
        parked = [due for _, due in room.pending if isinstance(due, ParkedJoin)]
        room.pending.clear()
        room.loading = False
        ctx.rooms.drop_if_empty(room)
        for join in parked:
            session = join.session
            if session.closed or session.waiting is not Wait.ROOM:
                continue
            ctx.send_error(session, store_unavailable(join.message.ref))
            ctx.waiting.end(session)

    # -- the claim of a place -------------------------------------------------------

    def _claim(self, session: Session, message: JoinRoom, identity: Identity, room: Room) -> None:
        """Ask the membership for the place; the join, and what follows it, wait for
        the answer (given at once on a lone node)."""
        ctx = self.ctx
        current = session.room
        if current is not None and current.name == room.name:
            raise already_in_room(message.ref)
        user_id = message.user_id if identity.user_id is None else identity.user_id
        if user_id is None:
            user_id = self.free_user_id(room)
        member = Member(
            user_id=user_id,
            session_id=session.session_id,
            name=identity.name,
            grants=grant_names(identity),
            hidden=identity.may(Grant.HIDDEN),
            status=session.status if message.status is None else message.status,
        )
        self._claims[session.session_id] = Claim(session, message, identity, room, member)
        room.claims += 1
        ctx.waiting.begin(session, Wait.CLAIM)
        # Other nodes' members hear of the newcomer (and of whom it replaces) in the
        # same step as the claim: a node joining at the same time lists it or hears
        # of it, never both. This node's members hear it when the claim is granted.
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
        left = codec.encode(UserLeft(user_id=user_id))
        # A token proves the id is its holder's: the newcomer takes the place.
        ctx.ask_membership(
            lambda: ctx.membership.claim(
                room.name,
                member,
                replace=identity.verified,
                max_members=ctx.limits.max_participants,
                joined=joined,
                left=left,
            )
        )

    def claim_answered(self, session_id: str, result: ClaimResult) -> None:
        """The membership answered a join: admitted (maybe in another's place) or not."""
        claim = self._claims.pop(session_id, None)
        if claim is None:
            return
        ctx = self.ctx
        session, message, room, member = claim.session, claim.message, claim.room, claim.member
        admitted = result.outcome is ClaimOutcome.ADMITTED
        if session.closed or session.closing or session.waiting is not Wait.CLAIM:
            if admitted:
                ctx.membership.release(room.name, member)
                if not ctx.users.connected(member.user_id):
                    # The claim made the user reachable here: it is not.
                    ctx.membership.user_here(member.user_id, False)
            room.claims -= 1
            ctx.rooms.drop_if_empty(room)
            return
        try:
            if result.outcome is ClaimOutcome.TAKEN:
                raise user_id_taken(message.ref, self._held_for_ms(room, result, member.user_id))
            if not admitted:
                raise _claim_refusal(result.outcome, message.ref)
            if session.room is not None:
                self.leave(session)
            if result.replaced is not None:
                self._replace(room, result.replaced, session)
            participants = self._participants(room, result.members, session_id)
            ctx.media.claimed(room.name, result.media)
            if message.status is not None:
                session.status = message.status
            self._admit(
                session,
                claim.identity,
                room,
                member.user_id,
                participants,
                message.ref,
                message.features,
            )
        except ProtocolError as error:
            ctx.send_error(session, error)
        finally:
            # Only now: the room must not be dropped between the replaced member's
            # leave and the newcomer's arrival.
            room.claims -= 1
            ctx.rooms.drop_if_empty(room)
            ctx.waiting.end(session)

    def _held_for_ms(self, room: Room, result: ClaimResult, user_id: str) -> int | None:
        """How long at most ``user_id`` is held in ``room`` for a session of its that
        lost its connection and may still resume; None if its holder is connected."""
        ctx = self.ctx
        grace = ctx.limits.resume_grace
        holder = room.members.get(user_id)
        if holder is not None and holder.session_id in ctx.lifecycle.detached:
            return max(0, round((holder.lost_at + grace - ctx.now()) * 1000))
        for member in result.members:
            if member.user_id == user_id and member.reconnecting and holder is None:
                return round(grace * 1000)  # another node's: at most its whole grace
        return None

    def _participants(self, room: Room, members: list[Member], me: str) -> list[Participant]:
        """The other members, in join order: everyone already here joined first, so
        the newcomer is polite to each. A member on this node as it is now (status,
        connection); one on another node as the membership has it."""
        found: list[Participant] = []
        local = room.members
        for member in members:
            if member.session_id == me or member.hidden:
                continue
            here = local.get(member.user_id)
            if here is not None and here.session_id == member.session_id:
                found.append(
                    Participant(
                        user_id=member.user_id,
                        polite=True,
                        status=here.status,
                        name=here.identity.name if here.identity else None,
                        grants=grant_names(here.identity),
                        connection=RECONNECTING if here.state is LinkState.DETACHED else None,
                    )
                )
            else:
                found.append(
                    Participant(
                        user_id=member.user_id,
                        polite=True,
                        status=member.status,
                        name=member.name,
                        grants=member.grants,
                        connection=RECONNECTING if member.reconnecting else None,
                    )
                )
        return found

    def _replace(self, room: Room, replaced: Member, by: Session) -> None:
        """The newcomer takes the place of the member with its user id: that one's
        connection is closed (4009), and this node's members hear it left."""
        ctx = self.ctx
        log.info("event=replace session=%s by=%s", replaced.session_id, by.session_id)
        reason = "the same user joined from elsewhere"
        local = ctx.sessions.get(replaced.session_id)
        if local is not None:
            self.leave(local, announce=False)
            ctx.close(local, CloseCode.REPLACED, reason)
        else:
            ctx.membership.close_remote(replaced, CloseCode.REPLACED, reason, announce=False)
        if not replaced.hidden:
            payload = codec.encode(UserLeft(user_id=replaced.user_id))
            ctx.room_broadcast(room, payload, None)

    def _admit(
        self,
        session: Session,
        identity: Identity,
        room: Room,
        user_id: str,
        participants: list[Participant],
        ref: Ref | None,
        features: list[str] | None = None,
    ) -> None:
        """The join is granted: the session is a member; it and this node's members
        are told (the other nodes' were, with the claim)."""
        ctx = self.ctx
        room_name = room.name
        session.user_id = user_id
        session.identity = identity
        session.hidden = identity.may(Grant.HIDDEN)
        session.chatted = False
        ctx.rooms.add(room, session)
        log.info(
            "event=join session=%s room=%r user=%r members=%d verified=%s hidden=%s",
            session.session_id,
            room_name,
            user_id,
            len(room),
            identity.verified,
            session.hidden,
        )
        grants = grant_names(identity)
        listed = {p.user_id for p in participants}
        media_mode = ctx.media.prepare(room)
        joined = RoomJoined(
            room=room_name,
            user_id=user_id,
            session_id=session.session_id,
            participants=participants,
            history=[chat_entry(m) for m in room.history(ctx.retention, ctx.now_ms())],
            last_seq=room.last_seq,
            resume_token=session.resume_token,
            ref=ref,
            name=identity.name,
            grants=grants,
            status=None if session.status == ONLINE else session.status,
            offline=[
                OfflineMember(user_id=uid, last_seen=ts)
                for uid, ts in room.offline(ctx.offline_on_join)
                if uid not in listed  # a member whose leave is still on its way
            ]
            or None,
            media_mode=media_mode,
        )
        ctx.ice.add_to(joined, session)
        ctx.send(session, joined)
        if not session.hidden:
            announcement = UserJoined(
                user_id=user_id,
                polite=False,
                status=session.status,
                name=identity.name,
                grants=grants,
            )
            payload = codec.encode(announcement)
            ctx.room_broadcast(room, payload, session.session_id)
        ctx.lifecycle.address(session, user_id)
        ctx.media.joined(session, room, features)

    def free_user_id(self, room: Room | None) -> str:
        user_id = self._new_user_id()
        while room is not None and user_id in room.members:
            user_id = self._new_user_id()
        return user_id

    # -- leaving --------------------------------------------------------------------

    def on_leave_room(self, session: Session, message: LeaveRoom) -> None:
        room = session.room
        if room is None:
            raise not_in_room(message.ref, "not in a room")
        self.leave(session)
        self.ctx.send(session, RoomLeft(room=room.name, ref=message.ref))

    def leave(self, session: Session, announce: bool = True) -> None:
        """Take the session out of its room at once; the room hears it (``user-left``,
        and ``presence`` offline for a member who chatted) in its place, behind the
        chat the member sent before, and its place is free from then on."""
        ctx = self.ctx
        user_id = session.user_id
        room = ctx.rooms.remove(session)
        if room is not None:
            ctx.calling.left_room(session, room.name)
        if room is None or user_id is None:
            return
        log.info(
            "event=leave session=%s room=%r user=%r members=%d",
            session.session_id,
            room.name,
            user_id,
            len(room),
        )
        departure = Departure(
            user_id,
            session.session_id,
            quiet=session.hidden or not announce,
            typing=session.typing,
            chatted=session.chatted,
        )
        session.user_id = None
        session.hidden = session.typing = session.chatted = False
        if room.busy and not room.releasing:
            room.pending.append((room.chats_queued, departure))
        else:
            self._depart(room, departure)
        # After user-left: a change of the room's mode it brings reaches members who
        # no longer count the one who left.
        ctx.media.left(session, room)
        ctx.rooms.drop_if_empty(room)

    def _depart(self, room: Room, departure: Departure) -> None:
        """A leave's turn: the place is given back, and the room told."""
        ctx = self.ctx
        user_id = departure.user_id
        # One of the room's offline members from now on, on every node: it chatted.
        offline_at = None
        if not departure.quiet and (departure.chatted or user_id in room.seen):
            offline_at = ctx.now_ms()
        ctx.membership.release(room.name, Member(user_id, departure.session_id), offline_at)
        if departure.quiet:
            return
        publish = ctx.broker.publish_to_room
        if departure.typing:
            publish(room.name, codec.encode(TypingRelay(user_id=user_id, active=False)), None)
        publish(room.name, codec.encode(UserLeft(user_id=user_id)), None)
        if offline_at is not None:
            room.saw(user_id, offline_at, ctx.offline_on_join)
            ctx.storage.record_seen(room.name, user_id, offline_at)
            offline = PresenceUpdate(status=OFFLINE, user_id=user_id, last_seen=offline_at)
            publish(room.name, codec.encode(offline), None)

    # -- removing members and ending rooms (admins) ---------------------------------------

    def on_remove_participant(self, session: Session, message: RemoveParticipant) -> None:
        ctx = self.ctx
        room = session.room
        if room is None:
            raise not_in_room(message.ref)
        ctx.admission.require(session.identity, Grant.ADMIN, message.ref)
        target = room.members.get(message.user_id) or ctx.membership.remote_member(
            room.name, message.user_id
        )
        if target is None or target is session:
            raise no_such_peer(message.ref)
        self.remove_participant(room.name, message.user_id)
        ctx.send(session, ParticipantRemoved(user_id=message.user_id, ref=message.ref))

    def remove_participant(
        self, room_name: str, user_id: str, remote: Member | None = None
    ) -> bool:
        ctx = self.ctx
        room = ctx.rooms.get(room_name)
        member = room.members.get(user_id) if room is not None else None
        if member is None:
            remote = ctx.membership.remote_member(room_name, user_id) or remote
            if remote is None:
                return False
            log.info(
                "event=remove session=%s room=%r user=%r", remote.session_id, room_name, user_id
            )
            ctx.membership.close_remote(
                remote, CloseCode.REMOVED, "removed from the room", announce=True
            )
            return True
        log.info("event=remove session=%s room=%r user=%r", member.session_id, room_name, user_id)
        self.leave(member)
        ctx.close(member, CloseCode.REMOVED, "removed from the room")
        return True

    def on_end_room(self, session: Session, message: EndRoom) -> None:
        ctx = self.ctx
        room = session.room
        if room is None:
            raise not_in_room(message.ref)
        ctx.admission.require(session.identity, Grant.ADMIN, message.ref)
        self.end_room(room.name, keep=session)
        ctx.send(session, RoomEnded(room=room.name, ref=message.ref))

    def end_room(self, room_name: str, keep: Session | None = None) -> int:
        """Take every member out of the room and close their connections; ``keep``
        (the admin who asked) leaves the room but stays connected. The other nodes do
        the same with theirs. Returns how many members there were, as far as this
        node knows."""
        membership = self.ctx.membership
        elsewhere = len(membership.remote_members(room_name))
        membership.end_room_elsewhere(room_name)
        return self.end_room_here(room_name, keep) + elsewhere

    def end_room_here(self, room_name: str, keep: Session | None) -> int:
        ctx = self.ctx
        room = ctx.rooms.get(room_name)
        if room is None:
            return 0
        members = list(room.members.values())
        log.info("event=end-room room=%r members=%d", room_name, len(members))
        now_ms = ctx.now_ms()
        for member in members:
            # Nobody stays to hear user-left: everyone goes at once, unannounced.
            if member.chatted and member.user_id is not None and not member.hidden:
                ctx.storage.record_seen(room_name, member.user_id, now_ms)
            if member.user_id is not None:
                seen_at = now_ms if member.chatted and not member.hidden else None
                ctx.membership.release(
                    room_name, Member(member.user_id, member.session_id), seen_at
                )
            ctx.rooms.remove(member)
            ctx.calling.left_room(member, room_name)
            ctx.media.left(member, room)
            member.user_id = None
            member.hidden = False
            member.typing = False
            member.chatted = False
            if member is not keep:
                ctx.close(member, CloseCode.ROOM_ENDED, "the room was ended")
        return len(members)


def _claim_refusal(outcome: ClaimOutcome, ref: Ref | None) -> ProtocolError:
    if outcome is ClaimOutcome.TAKEN:
        return user_id_taken(ref)
    if outcome is ClaimOutcome.FULL:
        return room_full(ref)
    return cluster_unavailable(ref)

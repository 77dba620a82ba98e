"""Presence statuses and typing indicators: each member's own, told to its room in
order with everything else the room hears.

A member that said it is typing and neither renewed it nor stopped within
``typing_timeout`` is taken to have stopped: the room is told so, as it would be if
the member had said it (a client that crashed mid-word leaves no indicator behind).
"""

from __future__ import annotations

from hubbub.auth.grants import Grant
from hubbub.core.context import HubContext
from hubbub.core.joining import member_of
from hubbub.core.rooms import Room
from hubbub.core.session import Session, TokenBucket
from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError, check_status, not_in_room
from hubbub.protocol.messages import (
    SETTABLE_STATUSES,
    PresenceUpdate,
    Ref,
    SetPresence,
    Typing,
    TypingRelay,
)


class PresenceFeature:
    """``presence`` and ``typing``."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def on_presence(self, session: Session, message: SetPresence) -> None:
        ctx = self.ctx
        ref = message.ref
        check_status(message.status, SETTABLE_STATUSES, ref)
        limits = ctx.limits
        if session.presence_budget is None:
            session.presence_budget = TokenBucket(
                limits.presence_rate, limits.presence_burst, ctx.now()
            )
        self._spend(session.presence_budget, "presence changes", ref)
        changed = session.status != message.status
        session.status = message.status
        room = session.room
        user_id = session.user_id
        if room is not None and user_id is not None:
            if changed:
                # What the cluster lists of the member (the HTTP API, room-joined on
                # another node) says so too.
                ctx.membership.update(room.name, member_of(session))
            if changed and not session.hidden:
                update = PresenceUpdate(status=message.status, user_id=user_id)
                ctx.publish_in_order(room, codec.encode(update), session.session_id)
            reply = PresenceUpdate(status=message.status, user_id=user_id, ref=ref)
        else:
            # Out of a room: the status is kept for the next join.
            reply = PresenceUpdate(status=message.status, ref=ref)
        ctx.send(session, reply)

    def on_typing(self, session: Session, message: Typing) -> None:
        ctx = self.ctx
        ref = message.ref
        room = session.room
        if room is None:
            raise not_in_room(ref)
        ctx.admission.require(session.identity, Grant.CHAT, ref)
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a session in a room has a user id
            raise not_in_room(ref)
        if not message.active:
            # Only a member the room sees typing has anything to stop; each stop
            # follows a start, so stops need no budget of their own.
            if session.typing:
                self.stop_typing(session, room)
            return
        limits = ctx.limits
        if session.typing_budget is None:
            session.typing_budget = TokenBucket(limits.typing_rate, limits.typing_burst, ctx.now())
        self._spend(session.typing_budget, "typing messages", ref)
        if session.hidden:
            return
        session.typing = True
        session.typing_until = until = ctx.now() + limits.typing_timeout
        ctx.timers.schedule(until, self._typing_due, session)
        relay = TypingRelay(user_id=user_id, active=True)
        ctx.publish_in_order(room, codec.encode(relay), session.session_id)

    def typing_lapses(self, session: Session) -> None:
        """A member the room sees typing (it came from another node so): it stops
        being seen so within ``typing_timeout`` unless it types again."""
        ctx = self.ctx
        session.typing_until = until = ctx.now() + ctx.limits.typing_timeout
        ctx.timers.schedule(until, self._typing_due, session)

    def _typing_due(self, session: Session) -> None:
        room = session.room
        if session.typing and room is not None and session.typing_until <= self.ctx.now():
            self.stop_typing(session, room)

    def stop_typing(self, session: Session, room: Room) -> None:
        """The room is told the member stopped typing; in order, as the start was: a
        stop never overtakes its start."""
        session.typing = False
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a session in a room has a user id
            return
        payload = codec.encode(TypingRelay(user_id=user_id, active=False))
        self.ctx.publish_in_order(room, payload, session.session_id)

    def _spend(self, budget: TokenBucket, what: str, ref: Ref | None) -> None:
        """Take one token from a per-connection budget, or refuse with rate-limited."""
        if not budget.take(self.ctx.now()):
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"slow down: at most {budget.rate:g} {what} a second",
                ref=ref,
            )

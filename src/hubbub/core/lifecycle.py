"""A session from its connect to its end: the message budget, the token-mode
deadline, a lost connection's grace period, the user stream it is addressed to, and
the end that takes it out of everything.

A session's connection states and their moves are in :mod:`hubbub.core.session`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hubbub import randomness
from hubbub.auth.admission import AuthMode
from hubbub.auth.grants import Identity
from hubbub.core.context import HubContext
from hubbub.core.session import LinkState, Session, TokenBucket
from hubbub.protocol import codec
from hubbub.protocol.errors import CloseCode, ErrorCode, ProtocolError
from hubbub.protocol.messages import RECONNECTING, ParticipantUpdated, Reconnect

log = logging.getLogger("hubbub.core")


def new_session_id() -> str:
    return randomness.token_urlsafe(12)


class Lifecycle:
    """Connects, disconnects, losses and ends of sessions."""

    def __init__(self, ctx: HubContext, new_session_id: Callable[[], str] = new_session_id) -> None:
        self.ctx = ctx
        self._new_session_id = new_session_id
        self.detached: dict[str, Session] = {}
        """The sessions whose connection was lost, waiting for a resume."""

    # -- connect and disconnect ---------------------------------------------------

    def connect(self, link: Any, identity: Identity | None, host: str | None = None) -> Session:
        ctx = self.ctx
        limits = ctx.limits
        session = self.new_session(link, identity, host=host)
        now = ctx.now()
        if identity is not None and identity.user_id is not None:
            self.address(session, identity.user_id)
        elif ctx.admission.mode is AuthMode.TOKEN:
            # A connection that proves nothing holds a slot only for a while.
            ctx.timers.schedule(now + limits.auth_timeout, self._auth_due, session)
        return session

    def new_session(
        self,
        link: Any,
        identity: Identity | None,
        budget: TokenBucket | None = None,
        host: str | None = None,
    ) -> Session:
        """A session with its own id and message budget (or ``budget``, shared with
        another session of the same connection), known to the hub from now on;
        ``host`` is the host its client reached the server by."""
        ctx = self.ctx
        limits = ctx.limits
        sessions = ctx.sessions
        session_id = self._new_session_id()
        while session_id in sessions:  # pragma: no cover - 96 random bits
            session_id = self._new_session_id()
        if budget is None:
            budget = TokenBucket(limits.message_rate, limits.message_burst, ctx.now())
        session = sessions[session_id] = Session(
            session_id,
            link,
            budget,
            identity,
            host=host,
            replay_max_messages=limits.resume_buffer_messages,
            replay_max_bytes=limits.resume_buffer_bytes,
        )
        return session

    def _auth_due(self, session: Session) -> None:
        if session.closing or session.identity is not None:
            return
        log.info("event=auth-timeout session=%s", session.session_id)
        self.ctx.close(session, CloseCode.AUTH_TIMEOUT, "no access token shown")

    def disconnect(self, session: Session, *, lost: bool) -> None:
        if session.closed:
            return
        if (
            lost
            and not session.closing
            and session.room is not None
            and session.waiting is None
            and session.state is LinkState.CONNECTED
        ):
            self._detach(session)
            return
        self.end(session)

    def _detach(self, session: Session) -> None:
        """The connection was lost: keep the session's place, record what it is sent."""
        ctx = self.ctx
        session.move(LinkState.DETACHED)
        session.link = None
        session.lost_at = lost_at = ctx.now()
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
        ctx.timers.schedule(lost_at + ctx.limits.resume_grace, self._grace_over, session)
        if room is not None and session.user_id is not None and not session.hidden:
            away = ParticipantUpdated(user_id=session.user_id, connection=RECONNECTING)
            ctx.publish_in_order(room, codec.encode(away), session.session_id)

    def _grace_over(self, session: Session) -> None:
        if (
            session.state is LinkState.DETACHED
            and session.lost_at + self.ctx.limits.resume_grace <= self.ctx.now()
        ):
            log.info("event=resume-expired session=%s overrun=False", session.session_id)
            self.end(session)

    def end_overrun(self) -> int:
        """End the detached sessions that can no longer be resumed whole (a message
        sent since the loss is gone from the replay buffer); returns how many."""
        if not self.detached:
            return 0
        over = [s for s in self.detached.values() if s.overrun]
        for session in over:
            log.info("event=resume-expired session=%s overrun=True", session.session_id)
            self.end(session)
        return len(over)

    def reattached(self, session: Session) -> None:
        """A resume gave the session a connection again."""
        self.detached.pop(session.session_id, None)

    def end(self, session: Session) -> None:
        """The session is over: it leaves its room (announced) and is forgotten."""
        ctx = self.ctx
        session.closing = session.closed = True
        ctx.waiting.forget(session)
        if session.state is not LinkState.ENDED:
            session.move(LinkState.ENDED)
        self.unaddress(session)
        ctx.joining.leave(session)
        ctx.frontends.ended(session)
        ctx.sessions.pop(session.session_id, None)
        self.detached.pop(session.session_id, None)

    # -- shutdown ------------------------------------------------------------------

    def stop_input(self) -> None:
        for session in self.ctx.sessions.values():
            session.closing = True

    def announce_restart(self, spread_ms: int) -> int:
        ctx = self.ctx
        told = 0
        for session in list(ctx.sessions.values()):
            if session.state is not LinkState.CONNECTED or session.link is None:
                continue
            after = ctx.random.randint(0, max(0, spread_ms))
            ctx.send(session, Reconnect(after_ms=after))
            told += 1
        return told

    # -- the message budget ------------------------------------------------------------

    def drop_for_rate(self, session: Session) -> None:
        ctx = self.ctx
        ctx.counters.rate_limited += 1
        session.dropped_in_a_row += 1
        dropped = session.dropped_in_a_row
        limits = ctx.limits
        if dropped == 1:
            # One error per run of drops: answering every dropped message would
            # turn a flood into a flood of errors.
            ctx.send_error(
                session,
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"slow down: at most {limits.message_rate:g} messages a second",
                ),
            )
        if dropped >= limits.flood_disconnect_after:
            log.info("event=flood session=%s dropped=%d", session.session_id, dropped)
            session.closing = True
            ctx.outbox.close(session, CloseCode.POLICY_VIOLATION, "message flood")

    # -- the user stream ---------------------------------------------------------------

    def address(self, session: Session, user_id: str) -> None:
        """Make the connection part of ``user_id``'s personal stream; its unread
        notifications are on their way."""
        if session.addressed_as == user_id:
            return
        self.unaddress(session)
        ctx = self.ctx
        first_here = not ctx.users.connected(user_id)
        ctx.users.address(session, user_id)
        if first_here:
            ctx.membership.user_here(user_id, True)
        ctx.notifications.load_unread(session, user_id)

    def unaddress(self, session: Session) -> None:
        """The connection leaves its user's stream (it closed, or is someone else
        now): a call that rested on it is over."""
        ctx = self.ctx
        user_id = ctx.users.forget(session)
        if user_id is None:
            return
        connected = ctx.users.connected(user_id)
        if not connected:
            ctx.membership.user_here(user_id, False)
        ctx.calling.connection_gone(session, user_id, connected)

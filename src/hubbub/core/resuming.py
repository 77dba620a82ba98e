"""Resume: a new connection takes back a session whose connection was lost (or
looks alive but is not), and gets every message it missed, once, in order.

A session is held by one node of a cluster. A client that comes back through
another node resumes there all the same: the session is handed over to that node
(:mod:`hubbub.core.handover`; the connection waits meanwhile,
:class:`~hubbub.core.waiting.Wait.HANDOVER`), then resumed as here, under the new id
``resumed`` gives.
"""

from __future__ import annotations

import hmac
import logging
from typing import NoReturn

from hubbub.core.context import HubContext
from hubbub.core.joining import member_of
from hubbub.core.session import LinkState, Session
from hubbub.protocol import codec
from hubbub.protocol.errors import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    ResumeFailure,
    already_in_room,
    unknown_session,
)
from hubbub.protocol.messages import CONNECTED, ParticipantUpdated, Ref, Resume, Resumed

log = logging.getLogger("hubbub.core")


def _same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Resuming:
    """``resume``, here and through another node."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx
        self._handovers: dict[str, Ref | None] = {}
        """Resumes waiting for another node to end the session it held: the new
        connection's session id -> the resume's ref."""

    def on_resume(self, stub: Session, message: Resume) -> None:
        """``stub`` is the session the new connection was given at connect, dropped
        once the resume succeeds."""
        ctx = self.ctx
        ref = message.ref
        if stub.room is not None or stub.waiting is not None:
            raise already_in_room(ref, "resume on a new connection, before joining")
        session = ctx.sessions.get(message.session_id)
        if session is None and ctx.handover.ask(stub, message):
            # Another node holds it (or held it): it is handed over to this one,
            # then resumed; what the client sends meanwhile waits, in order.
            return
        self._resume(stub, session, message)

    def resume_moved(self, stub: Session, session_id: str, message: Resume) -> None:
        """The session the client asked for moved to this node meanwhile (as
        ``session_id``): resume it here."""
        self._resume(stub, self.ctx.sessions.get(session_id), message)

    def token_matches(self, session: Session, resume_token: str) -> bool:
        return _same_secret(session.resume_token, resume_token)

    def _resume(self, stub: Session, session: Session | None, message: Resume) -> None:
        ref = message.ref
        if (
            session is None
            or session is stub
            or session.closing
            or session.room is None
            or session.user_id is None
            or not _same_secret(session.resume_token, message.resume_token)
        ):
            raise unknown_session(ref)
        shown = stub.identity
        if shown is not None and shown.verified and shown.user_id != session.user_id:
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "this connection's token is for another user", ref=ref
            )
        last_n = message.last_n
        if last_n > session.last_n:  # the codec holds it to 0 and up
            raise ProtocolError(
                ErrorCode.BAD_MESSAGE,
                f"lastN must be between 0 and {session.last_n}, the last number sent",
                ref=ref,
            )
        missed = session.held_after(last_n)
        if missed is None:
            self._overrun(session, last_n, ref)
        self._take_over(stub, session, last_n, missed, ref)

    def _overrun(self, session: Session, last_n: int, ref: Ref | None) -> NoReturn:
        # The client is told to start afresh, so its place must be free now.
        ctx = self.ctx
        log.info("event=resume-overrun session=%s last_n=%d", session.session_id, last_n)
        ctx.joining.leave(session)
        ctx.close(session, CloseCode.RESUMED_ELSEWHERE, "the session could not be resumed")
        raise ProtocolError(
            ErrorCode.RESUME_FAILED,
            "messages after lastN are no longer held; join the room afresh and fetch the history",
            ref=ref,
            reason=ResumeFailure.OVERRUN,
        )

    def resumed_here(self, session: Session, message: Resume, was_detached: bool) -> None:
        """A session handed over by another node for this connection's client (the
        connection is ``session``'s own): what it missed, and the live stream."""
        ctx = self.ctx
        room = session.room
        user_id = session.user_id
        last_n = message.last_n
        if room is None or user_id is None:  # pragma: no cover - the hand-over sets both
            raise unknown_session(message.ref)
        missed = session.held_after(last_n) if last_n <= session.last_n else None
        if missed is None:
            if last_n > session.last_n:
                ctx.joining.leave(session)
                raise unknown_session(message.ref)
            self._overrun(session, last_n, message.ref)
        log.info(
            "event=resume session=%s from=handover replayed=%d", session.session_id, len(missed)
        )
        self._resumed(session, last_n, missed, message.ref)
        if was_detached:
            ctx.membership.update(room.name, member_of(session))
            if not session.hidden:
                back = ParticipantUpdated(user_id=user_id, connection=CONNECTED)
                ctx.publish_in_order(room, codec.encode(back), session.session_id)

    def _resumed(self, session: Session, last_n: int, missed: list[bytes], ref: Ref | None) -> None:
        room = session.room
        user_id = session.user_id
        if room is None or user_id is None:  # pragma: no cover - checked by the callers
            return
        outbox = self.ctx.outbox
        resumed = Resumed(
            session_id=session.session_id,
            room=room.name,
            user_id=user_id,
            last_n=session.last_n,
            ref=ref,
        )
        outbox.send_unnumbered(session, codec.encode(resumed))
        if missed:
            outbox.replay(session, last_n + 1, missed)

    def _take_over(
        self, stub: Session, session: Session, last_n: int, missed: list[bytes], ref: Ref | None
    ) -> None:
        ctx = self.ctx
        outbox = ctx.outbox
        room = session.room
        user_id = session.user_id
        if room is None or user_id is None:  # pragma: no cover - checked by the caller
            return
        old_link, new_link = session.link, stub.link
        was = session.state
        # This connection carries the session from now on; its own one is dropped,
        # and what the client sent after its resume (held while the session was
        # looked for) is the session's.
        ctx.sessions.pop(stub.session_id, None)
        ctx.lifecycle.unaddress(stub)
        stub.closing = stub.closed = True
        held = stub.held
        ctx.waiting.forget(stub)
        if held:
            if session.held:
                held.extendleft(reversed(session.held))
            session.held = held
            if session.waiting is None:
                ctx.waiting.ready.append(session)
        stub.move(LinkState.ENDED)
        session.move(LinkState.CONNECTED)
        session.link = new_link
        session.dropped_in_a_row = 0
        ctx.lifecycle.reattached(session)
        outbox.moved(new_link, session)
        if old_link is not None:
            # Half-open: the client saw its connection fail before the server did.
            stub.link = old_link
            outbox.moved(old_link, stub)
            outbox.close(stub, CloseCode.RESUMED_ELSEWHERE, "resumed on another connection")
        log.info(
            "event=resume session=%s from=%s replayed=%d takeover=%s",
            session.session_id,
            was.value,
            len(missed),
            old_link is not None,
        )
        self._resumed(session, last_n, missed, ref)
        if was is LinkState.DETACHED:
            ctx.membership.update(room.name, member_of(session))
        if was is LinkState.DETACHED and not session.hidden:
            back = ParticipantUpdated(user_id=user_id, connection=CONNECTED)
            ctx.publish_in_order(room, codec.encode(back), session.session_id)

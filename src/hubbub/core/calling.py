"""Calls between users, around the state machine of :mod:`hubbub.core.calls`: placing
(asking the membership whether the callee can ring, wherever it is connected), the
moves of either party from any of its connections, the ring timeout, and what
becomes of a call when a party's connection closes or leaves the call's room.

A call lives on the node of the caller's connection. On a lone node the membership
answers a placement at once; in a cluster a party's move made through another node
comes here (:meth:`Calling.call_moved`), and a move made here on another node's call
goes there (:data:`CallRoute.SENT`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hubbub import randomness
from hubbub.auth.grants import Grant
from hubbub.broker import CallPlacement, CallRoute
from hubbub.core.calls import (
    AlreadyInCall,
    Busy,
    Call,
    CallMove,
    CallState,
    NoSuchCall,
    Party,
    UserUnavailable,
)
from hubbub.core.context import HubContext
from hubbub.core.events import CallEvent
from hubbub.core.session import Session
from hubbub.core.waiting import Wait
from hubbub.protocol import codec
from hubbub.protocol.errors import (
    ErrorCode,
    ProtocolError,
    check_name,
    cluster_unavailable,
    unidentified,
)
from hubbub.protocol.messages import (
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
    Error,
    Outgoing,
    Ref,
)

log = logging.getLogger("hubbub.core")


def new_call_id() -> str:
    return randomness.token_urlsafe(12)


def identified(session: Session, ref: Ref | None) -> str:
    """The user the connection is addressed as, or ``unidentified``."""
    user_id = session.addressed_as
    if user_id is None:
        raise unidentified(ref)
    return user_id


class Calling:
    """``call-request``, ``call-accept``, ``call-decline``, ``call-cancel``, ``call-end``."""

    def __init__(self, ctx: HubContext, new_call_id: Callable[[], str] = new_call_id) -> None:
        self.ctx = ctx
        self._new_call_id = new_call_id
        self._placing: dict[str, tuple[Session, Ref | None, bytes]] = {}
        """Calls the membership has not answered yet, by call id: the caller's
        connection, its ref, the ``call-incoming``."""
        self._remote_calls: dict[str, str] = {}
        """Local session id -> the call it answered, held by another node (the
        caller's), which is told when this connection closes or leaves the room."""

    # -- placing a call --------------------------------------------------------------

    def on_call_request(self, session: Session, message: CallRequest) -> None:
        ctx = self.ctx
        ref = message.ref
        caller = identified(session, ref)
        ctx.admission.require(session.identity, Grant.SIGNAL, ref)
        callee = message.target_user_id
        check_name(callee, "targetUserId", ctx.limits.max_user_id_length, ref)
        if callee == caller:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "a user cannot call itself", ref=ref)
        calls = ctx.calls
        if calls.of_user(caller) is not None:
            raise AlreadyInCall(ref)
        if calls.of_user(callee) is not None:
            raise Busy(ref)
        call_id = self._new_call_id()
        while calls.get(call_id) is not None:  # pragma: no cover - 96 random bits
            call_id = self._new_call_id()
        call = Call(
            call_id, caller, session.session_id, callee, ctx.now() + ctx.limits.call_ring_timeout
        )
        calls.place(call)
        name = session.identity.name if session.identity is not None else None
        incoming = codec.encode(CallIncoming(call_id=call_id, from_user_id=caller, name=name))
        # The membership checks both parties wherever they are connected and rings
        # the callee's other nodes at once; what the caller sends meanwhile waits.
        self._placing[call_id] = (session, ref, incoming)
        ctx.waiting.begin(session, Wait.CALL)
        ctx.ask_membership(lambda: ctx.membership.place_call(call_id, caller, callee, incoming))

    def call_placed(self, call_id: str, outcome: CallPlacement) -> None:
        """The membership's word on a call placed here: it rings, or it is refused."""
        pending = self._placing.pop(call_id, None)
        if pending is None:
            return
        ctx = self.ctx
        session, ref, incoming = pending
        call = ctx.calls.get(call_id)
        if call is not None and not session.closed:
            if outcome is CallPlacement.PLACED:
                # The cluster rang the other nodes; this one rings its own.
                ctx.outbox.broadcast(ctx.users.sessions(call.callee), incoming, None)
                self._ringing(call, session, ref)
            else:
                ctx.calls.forget(call)
                if outcome is CallPlacement.UNAVAILABLE:
                    self._unreachable_callee(call.callee, call.caller)
                ctx.send_error(session, _placement_refusal(outcome, ref))
        # (A caller that went meanwhile ended its call as it went.)
        if session.waiting is Wait.CALL:
            ctx.waiting.end(session)

    def _ringing(self, call: Call, session: Session, ref: Ref | None) -> None:
        ctx = self.ctx
        log.info(
            "event=call-ringing call=%s caller=%r callee=%r", call.call_id, call.caller, call.callee
        )
        ctx.timers.schedule(call.ends_ringing_at, self._ring_due, call)
        ctx.send(session, CallRinging(call_id=call.call_id, target_user_id=call.callee, ref=ref))
        ctx.observer.call_changed(CallEvent("ringing", call.call_id, call.caller, call.callee))

    def _ring_due(self, call: Call) -> None:
        """Nobody answered in time: the call is missed."""
        if self.ctx.calls.get(call.call_id) is call and call.apply(CallMove.TIMEOUT):
            self._call_ended(call, CallState.RINGING)

    # -- moves -------------------------------------------------------------------------

    def on_call_accept(self, session: Session, message: CallAccept) -> None:
        self._call_move(session, message.call_id, CallMove.ACCEPT, message.ref)

    def on_call_decline(self, session: Session, message: CallDecline) -> None:
        self._call_move(session, message.call_id, CallMove.DECLINE, message.ref)

    def on_call_cancel(self, session: Session, message: CallCancel) -> None:
        self._call_move(session, message.call_id, CallMove.CANCEL, message.ref)

    def on_call_end(self, session: Session, message: CallEnd) -> None:
        self._call_move(session, message.call_id, CallMove.HANG_UP, message.ref)

    def _call_move(self, session: Session, call_id: str, move: CallMove, ref: Ref | None) -> None:
        """A party's move from one of its connections here; a call held by another
        node (the caller's) gets it from there."""
        ctx = self.ctx
        user_id = identified(session, ref)
        call = ctx.calls.get(call_id)
        if call is None:
            route = ctx.membership.call_move(call_id, move.value, user_id, session.session_id, ref)
            if route is CallRoute.UNREACHABLE:
                raise cluster_unavailable(ref)
            if route is CallRoute.SENT:
                if move is CallMove.ACCEPT:
                    self._remote_calls[session.session_id] = call_id
                return
        self._apply_call_move(call, move, user_id, session.session_id, ref)

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
        ctx = self.ctx
        try:
            what = CallMove(move)
        except ValueError:  # pragma: no cover - nodes speak the same protocol
            return
        call = ctx.calls.get(call_id)
        if what in (CallMove.CALLEE_GONE, CallMove.LEFT):
            if call is None:
                return
            theirs = (
                session_id
                and call.callee_session == session_id
                and (what is CallMove.CALLEE_GONE or call.room == room)
            )
            # Or the cluster's word: the callee has no connection left to ring.
            unreachable = (
                what is CallMove.CALLEE_GONE
                and not session_id
                and call.state is CallState.RINGING
                and user_id == call.callee
            )
            if theirs or unreachable:
                self._call_gone(call, what, user_id)
            return
        try:
            self._apply_call_move(call, what, user_id, session_id, ref)
        except ProtocolError as error:
            ctx.counters.errors[error.code] += 1
            reply = Error(code=error.code, message=error.message, ref=error.ref)
            ctx.broker.publish_to_session(session_id, codec.encode(reply))

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

    def _accept_call(self, call: Call, party: Party, session_id: str, ref: Ref | None) -> None:
        ctx = self.ctx
        call.apply(CallMove.ACCEPT, party, ref)
        call.callee_session = session_id
        room = "call-" + self._new_call_id()
        while ctx.rooms.get(room) is not None or ctx.calls.in_room(room) is not None:
            room = "call-" + self._new_call_id()  # pragma: no cover - 96 random bits
        ctx.calls.accepted(call, room)
        log.info("event=call-accepted call=%s room=%r", call.call_id, room)
        broker = ctx.broker
        to_caller = CallAccepted(call_id=call.call_id, room=room, peer_user_id=call.callee)
        broker.publish_to_session(call.caller_session, codec.encode(to_caller))
        to_callee = CallAccepted(call_id=call.call_id, room=room, peer_user_id=call.caller, ref=ref)
        broker.publish_to_session(session_id, codec.encode(to_callee))
        elsewhere = CallAnsweredElsewhere(call_id=call.call_id)
        broker.publish_to_user(call.callee, codec.encode(elsewhere), session_id)
        ctx.observer.call_changed(
            CallEvent("accepted", call.call_id, call.caller, call.callee, room=room)
        )

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
        ctx = self.ctx
        ctx.calls.forget(call)
        ctx.membership.call_over(call.call_id, call.caller, call.callee)
        reason = call.reason or "hung-up"
        call_id = call.call_id
        log.info("event=call-ended call=%s reason=%s", call_id, reason)
        ender = by_user or ""
        plain = codec.encode(_call_over(reason, call_id, ender, None))
        broker = ctx.broker
        if call.caller_session != by_session:
            broker.publish_to_session(call.caller_session, plain)
        if was is CallState.RINGING:
            broker.publish_to_user(call.callee, plain, by_session)
        elif call.callee_session is not None and call.callee_session != by_session:
            broker.publish_to_session(call.callee_session, plain)
        if by_session is not None:
            reply = _call_over(reason, call_id, ender, ref)
            broker.publish_to_session(by_session, codec.encode(reply))
        if reason == "missed":
            self._missed_call(call.callee, call.caller, f"missed-call:{call_id}", call_id)
        ctx.observer.call_changed(
            CallEvent("ended", call_id, call.caller, call.callee, room=call.room, reason=reason)
        )

    def _unreachable_callee(self, callee: str, caller: str) -> None:
        """The callee has no connection: told on their next connect. One per caller
        and ring time: calling again and again stores no more."""
        ctx = self.ctx
        window = int(ctx.wall_clock() // max(ctx.limits.call_ring_timeout, 1.0))
        self._missed_call(callee, caller, f"missed-call:{caller}:{window}", None)

    def _missed_call(self, callee: str, caller: str, key: str, call_id: str | None) -> None:
        """A call the callee did not take: kept as a notification, so that a callee
        who was away (or offline) sees it on their next connect, until read."""
        data: dict[str, Any] = {"kind": "missed-call", "fromUserId": caller}
        if call_id is not None:
            data["callId"] = call_id
        payload = {"title": "Missed call", "body": f"Missed call from {caller}", "data": data}
        self.ctx.storage.store_notification(callee, payload, key)

    # -- connections that go -------------------------------------------------------------

    def left_room(self, session: Session, room_name: str) -> None:
        """A connection left a room: if it was a party's connection in the call
        held there, the call is over."""
        ctx = self.ctx
        call = ctx.calls.in_room(room_name)
        if call is None:
            call_id = self._remote_calls.get(session.session_id)
            if call_id is not None and session.addressed_as is not None:
                ctx.membership.call_move(
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

    def connection_gone(self, session: Session, user_id: str, connected_here: bool) -> None:
        """A connection of ``user_id`` left its user stream (closed, or is someone
        else now); ``connected_here``: the user has other connections on this node."""
        ctx = self.ctx
        remote_call = self._remote_calls.pop(session.session_id, None)
        if remote_call is not None:
            move = CallMove.CALLEE_GONE.value
            ctx.membership.call_move(remote_call, move, user_id, session.session_id, None)
        call = ctx.calls.of_user(user_id)
        if call is None:
            return
        if session.session_id == call.caller_session:
            self._call_gone(call, CallMove.CALLER_GONE, user_id)
        elif user_id == call.callee and (
            session.session_id == call.callee_session
            or (
                # Ringing: missed once the callee has no connection left to ring,
                # here or on another node.
                call.state is CallState.RINGING
                and not connected_here
                and not ctx.membership.connected_elsewhere(user_id)
            )
        ):
            self._call_gone(call, CallMove.CALLEE_GONE, user_id)


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
    return cluster_unavailable(ref)

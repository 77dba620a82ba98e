"""Calls between two users: the seed's VideoCallApp flow (idle -> calling -> in call).

One call, one state machine, whose every transition is in :data:`TRANSITIONS`::

                    accept (callee)
      RINGING ────────────────────────────► ACTIVE
         │  decline (callee)   -> declined     │  hang-up (either)  -> hung-up
         │  cancel (caller)    -> cancelled    │  left (a party left the room)
         │  timeout            -> missed       │  gone (a party's connection closed)
         │  gone (caller)      -> cancelled    ▼
         │  gone (callee)      -> missed     ENDED
         └──────────────────────────────────► ENDED

A move the table does not allow raises the :class:`CallError` named in
:data:`ILLEGAL` (each maps to an error code); a move by the wrong party raises
:class:`NotYourMove`. An ended call is forgotten: any move on it is
:class:`NoSuchCall`, as for a call that never was (or is someone else's).

The parties are users: the caller is the user who asked, the callee the user
asked for. While the call rings, every connection of the callee rings; the one
that accepts is the callee's connection in the call. Sans-I/O: each call keeps its
ring deadline (``ends_ringing_at``), which the hub's timers bring round; nothing
here waits.
"""

from __future__ import annotations

from enum import StrEnum

from hubbub.protocol.errors import ErrorCode, ProtocolError
from hubbub.protocol.messages import Ref


class CallState(StrEnum):
    RINGING = "ringing"
    """Placed; the callee's connections ring (the caller is *calling*)."""
    ACTIVE = "active"
    """Accepted: both parties were told the room to join (*in call*)."""
    ENDED = "ended"
    """Over, for the reason the move that ended it gives; forgotten at once."""


class CallMove(StrEnum):
    ACCEPT = "accept"
    """``call-accept`` from a connection of the callee."""
    DECLINE = "decline"
    """``call-decline`` from a connection of the callee."""
    CANCEL = "cancel"
    """``call-cancel`` from the caller."""
    HANG_UP = "hang-up"
    """``call-end`` from either party."""
    TIMEOUT = "timeout"
    """Nobody answered within ``call_ring_timeout``."""
    CALLER_GONE = "caller-gone"
    """The caller's connection in the call closed."""
    CALLEE_GONE = "callee-gone"
    """Ringing: the callee's last connection closed. In a call: the connection
    that answered closed."""
    LEFT = "left"
    """A party's connection in the call left the call's room."""


class Party(StrEnum):
    CALLER = "caller"
    CALLEE = "callee"
    EITHER = "either"
    SERVER = "server"
    """Moves the hub makes (time, connections), never a client."""


WHO_MAY: dict[CallMove, Party] = {
    CallMove.ACCEPT: Party.CALLEE,
    CallMove.DECLINE: Party.CALLEE,
    CallMove.CANCEL: Party.CALLER,
    CallMove.HANG_UP: Party.EITHER,
    CallMove.TIMEOUT: Party.SERVER,
    CallMove.CALLER_GONE: Party.SERVER,
    CallMove.CALLEE_GONE: Party.SERVER,
    CallMove.LEFT: Party.SERVER,
}

TRANSITIONS: dict[tuple[CallState, CallMove], tuple[CallState, str | None]] = {
    # (state, move): (next state, why it ended)
    (CallState.RINGING, CallMove.ACCEPT): (CallState.ACTIVE, None),
    (CallState.RINGING, CallMove.DECLINE): (CallState.ENDED, "declined"),
    (CallState.RINGING, CallMove.CANCEL): (CallState.ENDED, "cancelled"),
    (CallState.RINGING, CallMove.TIMEOUT): (CallState.ENDED, "missed"),
    (CallState.RINGING, CallMove.CALLER_GONE): (CallState.ENDED, "cancelled"),
    (CallState.RINGING, CallMove.CALLEE_GONE): (CallState.ENDED, "missed"),
    (CallState.ACTIVE, CallMove.HANG_UP): (CallState.ENDED, "hung-up"),
    (CallState.ACTIVE, CallMove.LEFT): (CallState.ENDED, "left"),
    (CallState.ACTIVE, CallMove.CALLER_GONE): (CallState.ENDED, "disconnected"),
    (CallState.ACTIVE, CallMove.CALLEE_GONE): (CallState.ENDED, "disconnected"),
}


# -- the errors ---------------------------------------------------------------
#
#   ProtocolError
#   └── CallError
#       ├── NoSuchCall       no-such-call       unknown, ended, or not the sender's
#       ├── NotYourMove      forbidden          the other party's move
#       ├── CallNotRinging   call-not-ringing   accept/decline/cancel once answered
#       ├── CallNotActive    call-not-active    hang up before it was answered
#       ├── UserUnavailable  user-unavailable   the callee has no connection
#       ├── Busy             busy               the callee is in a call
#       └── AlreadyInCall    already-in-call    the caller is in a call


class CallError(ProtocolError):
    """A call move that is refused; ``code`` says why."""

    code_of: ErrorCode
    text: str

    def __init__(self, ref: Ref | None = None) -> None:
        super().__init__(self.code_of, self.text, ref=ref)


class NoSuchCall(CallError):
    code_of = ErrorCode.NO_SUCH_CALL
    text = "no such call: it ended, or it is not yours"


class NotYourMove(CallError):
    code_of = ErrorCode.FORBIDDEN
    text = "that is the other party's move"


class CallNotRinging(CallError):
    code_of = ErrorCode.CALL_NOT_RINGING
    text = "the call was answered already"


class CallNotActive(CallError):
    code_of = ErrorCode.CALL_NOT_ACTIVE
    text = "the call has not been answered: cancel or decline it instead"


class UserUnavailable(CallError):
    code_of = ErrorCode.USER_UNAVAILABLE
    text = "that user is not connected"


class Busy(CallError):
    code_of = ErrorCode.BUSY
    text = "that user is in a call"


class AlreadyInCall(CallError):
    code_of = ErrorCode.ALREADY_IN_CALL
    text = "you are in a call already: end it first"


ILLEGAL: dict[tuple[CallState, CallMove], type[CallError]] = {
    (CallState.RINGING, CallMove.HANG_UP): CallNotActive,
    (CallState.ACTIVE, CallMove.ACCEPT): CallNotRinging,
    (CallState.ACTIVE, CallMove.DECLINE): CallNotRinging,
    (CallState.ACTIVE, CallMove.CANCEL): CallNotRinging,
    **{(CallState.ENDED, move): NoSuchCall for move in CallMove},
}
"""Every client move the table does not allow, and the error it gets. Server
moves that do not apply (a ring timeout after the answer, say) are ignored."""


class Call:
    """One call between two users."""

    __slots__ = (
        "call_id",
        "callee",
        "callee_session",
        "caller",
        "caller_session",
        "ends_ringing_at",
        "reason",
        "room",
        "state",
    )

    def __init__(
        self, call_id: str, caller: str, caller_session: str, callee: str, ends_ringing_at: float
    ) -> None:
        self.call_id = call_id
        self.caller = caller
        self.caller_session = caller_session
        """The caller's connection: the one that placed the call."""
        self.callee = callee
        self.callee_session: str | None = None
        """The callee's connection in the call: the one that accepted."""
        self.ends_ringing_at = ends_ringing_at
        self.state = CallState.RINGING
        self.room: str | None = None
        """The room both parties are to join, once accepted."""
        self.reason: str | None = None
        """Why it ended, once ENDED."""

    def party(self, user_id: str | None) -> Party | None:
        if user_id == self.caller:
            return Party.CALLER
        if user_id == self.callee:
            return Party.CALLEE
        return None

    def apply(self, move: CallMove, by: Party = Party.SERVER, ref: Ref | None = None) -> bool:
        """Make ``move``; ``True`` if the state changed. Raises the move's
        :class:`CallError` when the table refuses it."""
        allowed = WHO_MAY[move]
        if by is not Party.SERVER and allowed is not Party.EITHER and allowed is not by:
            raise NotYourMove(ref)
        step = TRANSITIONS.get((self.state, move))
        if step is None:
            if by is Party.SERVER:
                return False
            raise ILLEGAL[(self.state, move)](ref)
        self.state, reason = step
        if reason is not None:
            self.reason = reason
        return True

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {self.caller}->{self.callee} {self.state}>"


class CallRegistry:
    """The calls in progress (ringing or active), by id, by user and by room."""

    __slots__ = ("_by_id", "_by_room", "_by_user")

    def __init__(self) -> None:
        self._by_id: dict[str, Call] = {}
        self._by_user: dict[str, Call] = {}
        self._by_room: dict[str, Call] = {}

    def get(self, call_id: str) -> Call | None:
        return self._by_id.get(call_id)

    def of_user(self, user_id: str) -> Call | None:
        """The call the user is in (a user is in at most one)."""
        return self._by_user.get(user_id)

    def in_room(self, room: str) -> Call | None:
        return self._by_room.get(room)

    def place(self, call: Call) -> None:
        """A new ringing call; its parties must be in no other call."""
        if call.caller in self._by_user or call.callee in self._by_user:
            raise ValueError("a user is in one call at a time")  # pragma: no cover - checked
        self._by_id[call.call_id] = call
        self._by_user[call.caller] = call
        self._by_user[call.callee] = call

    def accepted(self, call: Call, room: str) -> None:
        call.room = room
        self._by_room[room] = call

    def forget(self, call: Call) -> None:
        """An ended call is gone."""
        self._by_id.pop(call.call_id, None)
        for user_id in (call.caller, call.callee):
            if self._by_user.get(user_id) is call:
                del self._by_user[user_id]
        if call.room is not None and self._by_room.get(call.room) is call:
            del self._by_room[call.room]

    def __len__(self) -> int:
        return len(self._by_id)

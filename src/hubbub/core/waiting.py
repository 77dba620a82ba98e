"""The one way a session waits: what it sends while something it depends on is
pending is held, in one FIFO queue, and handled in order once the wait is over.

A session waits for one thing at a time (:class:`Wait`): its join, for the room's
state to come from the store or for the room's earlier chat to be stored; its join,
for the cluster to grant the place; its resume, for another node to hand the
session over; its call, for the cluster to say whether it rings. Whatever the
client sends meanwhile goes to the back of the session's queue (at most
``message_burst`` messages; past that each is refused with ``rate-limited``).

When the wait ends, the session is put on the ready list, and the hub handles its
queue from the front at the end of whatever it is doing (not inside it: a wait may
end deep inside another session's work). A queued message may start another wait
(a second ``join-room``): handling stops there, and what is behind it stays in the
same queue, in order, until that wait is over too. Nothing is ever dropped from a
queue but the messages of a session that ended.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any

from hubbub.core.session import Session
from hubbub.protocol.errors import ErrorCode, ProtocolError


class Wait(Enum):
    """What a session waits for."""

    ROOM = "room"
    """Its join: the room's state, loading from the store, or the chat sent to the
    room before the join, being stored (so that the join takes its place after it)."""
    CLAIM = "claim"
    """Its join: the cluster's answer to the claim of its place."""
    HANDOVER = "handover"
    """Its resume: another node ending the session it held, for this one."""
    CALL = "call"
    """Its call: the cluster's word on whether the callee rings."""


class Waiting:
    """The held queues of waiting sessions, and the sessions whose wait is over."""

    __slots__ = ("_dispatch", "_releasing", "bound", "ready")

    def __init__(self, bound: int, dispatch: Callable[[Session, Any], None]) -> None:
        self.bound = bound
        """Most messages one session's queue holds (``message_burst``)."""
        self._dispatch = dispatch
        self.ready: deque[Session] = deque()
        """Sessions whose wait is over, to be handled in the order they got ready."""
        self._releasing = False

    @staticmethod
    def holds(session: Session) -> bool:
        """Whether a message from ``session`` must queue rather than be handled now:
        it waits, or what it sent before still waits to be handled."""
        return session.waiting is not None or session.held is not None

    def hold(self, session: Session, message: Any) -> None:
        """Queue ``message`` behind what the session sent before; refused (raises)
        past the bound."""
        held = session.held
        if held is None:
            held = session.held = deque()
        if len(held) >= self.bound:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "slow down: too many messages while waiting for the server",
                ref=getattr(message, "ref", None),
            )
        held.append(message)

    @staticmethod
    def begin(session: Session, wait: Wait) -> None:
        """The session waits for ``wait``; what it sends from now on is held."""
        session.waiting = wait

    def end(self, session: Session) -> None:
        """The session's wait is over: its queue is handled at the next release."""
        session.waiting = None
        if session.held is not None:
            self.ready.append(session)

    @staticmethod
    def forget(session: Session) -> None:
        """The session ended: nothing of it waits any more."""
        session.waiting = None
        session.held = None

    def release(self) -> None:
        """Handle the queues of the sessions that are ready, each from the front,
        until it is empty or the session waits again. Not re-entered: a session
        that gets ready meanwhile is handled by the release in progress."""
        if self._releasing:
            return
        self._releasing = True
        try:
            ready = self.ready
            dispatch = self._dispatch
            while ready:
                session = ready.popleft()
                held = session.held
                while held and session.waiting is None and not session.closing:
                    dispatch(session, held.popleft())
                if session.closing or (
                    session.waiting is None and session.held is held and not held
                ):
                    session.held = None
        finally:
            self._releasing = False

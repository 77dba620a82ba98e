"""One client session as the core sees it: its link, its message numbers and
replay buffer, its message budget, and the state machine of its connection.

The states of a session's connection, and every move between them::

    CONNECTED --lost--> DETACHED --resumed--> CONNECTED
        |                   |
        +------ended--------+----ended------> ENDED

``lost``: the connection went without a close frame while in a room; the session
keeps its place for the grace period, and what is sent to it is only recorded.
``resumed``: a new connection took the session back. ``ended``: a clean close, a
leave at close, the grace period over, or the server closing it. ``CONNECTED``
also moves to ``CONNECTED`` (a resume from another connection while the old one
still looks alive); any other move is an :class:`IllegalTransition`.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Any

from hubbub import randomness

if TYPE_CHECKING:
    from hubbub.auth.grants import Identity
    from hubbub.core.rooms import Room
    from hubbub.core.waiting import Wait


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    @property
    def rate(self) -> float:
        """Tokens a second."""
        return self._rate

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        tokens = self._tokens + (now - self._stamp) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False


class LinkState(Enum):
    CONNECTED = "connected"
    DETACHED = "detached"
    ENDED = "ended"


_MOVES: dict[tuple[LinkState, LinkState], str] = {
    (LinkState.CONNECTED, LinkState.DETACHED): "lost",
    (LinkState.CONNECTED, LinkState.CONNECTED): "resumed",
    (LinkState.DETACHED, LinkState.CONNECTED): "resumed",
    (LinkState.CONNECTED, LinkState.ENDED): "ended",
    (LinkState.DETACHED, LinkState.ENDED): "ended",
}
"""Every legal move of a session's connection state, and its name."""


class IllegalTransition(Exception):
    """A move the connection state machine does not have (a bug in the caller)."""


class Session:
    """A client session: who it is, where it is, how fast it may talk, and every
    message sent to it lately, numbered.

    ``link`` belongs to the server adapter (its connection object); the core only
    hands it back through the outbox. It is ``None`` while the session is
    detached (its connection lost, waiting for a resume).

    Every message sent in the session gets the next number ``n`` (1, 2, 3...) from
    :meth:`number`, which also keeps it in the replay buffer: the last
    ``replay_max_messages`` messages, fewer when they hold more than
    ``replay_max_bytes``. The buffer holds the very bytes objects that were sent
    (shared with the other recipients of a broadcast), never copies.
    """

    __slots__ = (
        "addressed_as",
        "budget",
        "chatted",
        "closed",
        "closing",
        "dropped_in_a_row",
        "held",
        "hidden",
        "host",
        "ice_refresh_at",
        "identity",
        "last_n",
        "link",
        "lost_at",
        "lost_n",
        "presence_budget",
        "replay",
        "replay_bytes",
        "replay_max_bytes",
        "replay_max_messages",
        "resume_token",
        "room",
        "session_id",
        "sfu_capable",
        "state",
        "status",
        "typing",
        "typing_budget",
        "typing_until",
        "user_id",
        "waiting",
    )

    def __init__(
        self,
        session_id: str,
        link: Any,
        budget: TokenBucket,
        identity: Identity | None = None,
        *,
        host: str | None = None,
        replay_max_messages: int = 256,
        replay_max_bytes: int = 256 * 1024,
    ) -> None:
        self.session_id = session_id
        self.resume_token = randomness.token_urlsafe(18)
        """The secret that takes the session back (``resume``); only its client has it."""
        self.state = LinkState.CONNECTED
        self.last_n = 0
        """The number of the last message sent in the session."""
        self.replay: list[bytes] = []
        """The last messages sent, oldest first: numbers ``last_n - len + 1`` to ``last_n``.

        A list, not a ``deque(maxlen=...)``: a deque takes 760 bytes however little
        it holds, a list a few pointers, and most sessions hold a few messages
        (10,000 idle connections: 0.7 KB each less). Dropping the oldest moves at
        most ``replay_max_messages`` pointers."""
        self.replay_bytes = 0
        self.replay_max_messages = replay_max_messages
        self.replay_max_bytes = replay_max_bytes
        self.lost_at = 0.0
        self.lost_n = 0
        """While detached: when the connection was lost, and the last number sent then."""
        self.user_id: str | None = None
        self.room: Room | None = None
        self.identity = identity
        """Who the session is: what it proved at connect, then what it joined with."""
        self.host = host
        """The host the client reached the server by (its ``Host`` header), for the
        address of the built-in STUN server."""
        self.addressed_as: str | None = None
        """The user whose personal stream this connection belongs to (see
        :mod:`hubbub.core.users`)."""
        self.hidden = False
        """In its room without being announced (the ``hidden`` grant)."""
        self.sfu_capable = False
        """Its client takes part in calls through the media server (``features``)."""
        self.ice_refresh_at: float | None = None
        self.link = link
        self.budget = budget
        self.dropped_in_a_row = 0
        self.closing = False
        """No more input is read: the hub asked for a close, or the link is gone."""
        self.closed = False
        """The hub has processed the disconnect."""
        self.waiting: Wait | None = None
        """What the session waits for, if anything (see :mod:`hubbub.core.waiting`)."""
        self.held: deque[Any] | None = None
        """What it sent while it waited, to be handled in order once the wait is over."""
        self.status = "online"
        """Its presence status, as the client set it (``online``, ``away``, ``busy``)."""
        self.typing = False
        """The room was told this member is typing, and not yet that it stopped."""
        self.typing_until = 0.0
        """When its typing counts as stopped unless renewed (the core's clock)."""
        self.chatted = False
        """It sent chat in its current room: it leaves as one of the room's offline members."""
        self.typing_budget: TokenBucket | None = None
        self.presence_budget: TokenBucket | None = None
        """Made on first use: most connections never type or change status."""

    def number(self, payload: bytes) -> int:
        """Give ``payload`` the session's next message number and keep it for replay."""
        replay = self.replay
        replay.append(payload)
        size = self.replay_bytes + len(payload)
        if len(replay) > self.replay_max_messages:
            size -= len(replay[0])
            del replay[0]
        if size > self.replay_max_bytes:
            dropped = 0
            while size > self.replay_max_bytes and len(replay) - dropped > 1:
                size -= len(replay[dropped])
                dropped += 1
            del replay[:dropped]
        self.replay_bytes = size
        n = self.last_n + 1
        self.last_n = n
        return n

    @property
    def first_held(self) -> int:
        """The number of the oldest message still in the replay buffer."""
        return self.last_n - len(self.replay) + 1

    def held_after(self, last_n: int) -> list[bytes] | None:
        """Every message numbered after ``last_n``, oldest first; ``None`` if some
        of them are no longer held."""
        if last_n + 1 < self.first_held:
            return None
        return self.replay[last_n + 1 - self.first_held :]

    @property
    def overrun(self) -> bool:
        """Detached, and a message sent since the connection was lost is gone
        from the buffer: a resume can no longer give back everything."""
        return self.state is LinkState.DETACHED and self.first_held > self.lost_n + 1

    def move(self, to: LinkState) -> str:
        """Move the connection state machine; returns the move's name."""
        name = _MOVES.get((self.state, to))
        if name is None:
            raise IllegalTransition(f"{self.state.value} -> {to.value}")
        self.state = to
        return name

    def __repr__(self) -> str:
        room = self.room.name if self.room else None
        return (
            f"<Session {self.session_id} user={self.user_id!r} room={room!r} "
            f"{self.state.value} n={self.last_n}>"
        )

"""One client connection as the core sees it, and its message budget."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubbub.auth.grants import Identity
    from hubbub.core.rooms import Room


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

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


class Session:
    """A connected client: who it is, where it is, how fast it may talk.

    ``link`` belongs to the server adapter (its connection object); the core only
    hands it back through the outbox.
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
        "ice_refresh_at",
        "identity",
        "joining",
        "link",
        "presence_budget",
        "room",
        "session_id",
        "status",
        "typing",
        "typing_budget",
        "user_id",
    )

    def __init__(
        self, session_id: str, link: Any, budget: TokenBucket, identity: Identity | None = None
    ) -> None:
        self.session_id = session_id
        self.user_id: str | None = None
        self.room: Room | None = None
        self.identity = identity
        """Who the session is: what it proved at connect, then what it joined with."""
        self.addressed_as: str | None = None
        """The user whose personal stream this connection belongs to (see
        :mod:`hubbub.core.users`)."""
        self.hidden = False
        """In its room without being announced (the ``hidden`` grant)."""
        self.ice_refresh_at: float | None = None
        self.link = link
        self.budget = budget
        self.dropped_in_a_row = 0
        self.closing = False
        """No more input is read: the hub asked for a close, or the link is gone."""
        self.closed = False
        """The hub has processed the disconnect."""
        self.joining: str | None = None
        """The room this session's join waits for (its state is being loaded)."""
        self.held: deque[Any] | None = None
        """Messages that arrived while a join waited, handled in order after it."""
        self.status = "online"
        """Its presence status, as the client set it (``online``, ``away``, ``busy``)."""
        self.typing = False
        """The room was told this member is typing, and not yet that it stopped."""
        self.chatted = False
        """It sent chat in its current room: it leaves as one of the room's offline members."""
        self.typing_budget: TokenBucket | None = None
        self.presence_budget: TokenBucket | None = None
        """Made on first use: most connections never type or change status."""

    def __repr__(self) -> str:
        room = self.room.name if self.room else None
        return f"<Session {self.session_id} user={self.user_id!r} room={room!r}>"

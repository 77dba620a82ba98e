"""Rooms and the registry that holds them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from hubbub.core.session import Session
from hubbub.store import Retention, StoredChat


class RoomObserver(Protocol):
    """Told what happens in rooms, as it happens (the webhooks listen here).

    Called synchronously from the hub; an observer with slow work to do queues it
    and returns at once.
    """

    def room_started(self, room: str) -> None:
        """The room's first member joined."""

    def room_finished(self, room: str) -> None:
        """The room's last member left."""

    def participant_joined(self, room: str, session: Session) -> None:
        """``session`` joined ``room`` (under ``session.user_id``)."""

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        """``session`` left ``room``, where it was ``user_id``."""

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        """``user_id`` sent a chat message to ``room``: the fields it was relayed with."""


class NoRoomObserver:
    """Nobody listening."""

    def room_started(self, room: str) -> None:
        pass

    def room_finished(self, room: str) -> None:
        pass

    def participant_joined(self, room: str, session: Session) -> None:
        pass

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        pass

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        pass


class RoomMessage(NamedTuple):
    """A message for the room's members, waiting its turn (see :attr:`Room.pending`)."""

    payload: bytes
    exclude: str | None
    """The session that does not get it (its sender)."""


class ParkedJoin(NamedTuple):
    """A join waiting its turn (see :attr:`Room.pending`)."""

    session: Session
    message: Any
    """The ``join-room`` message."""
    identity: Any
    """Who the session joins as (:class:`~hubbub.auth.grants.Identity`)."""


class Departure(NamedTuple):
    """A member's leave, waiting its turn (see :attr:`Room.pending`): the session is
    out of the room at once, the room hears of it in its place."""

    user_id: str
    session_id: str
    quiet: bool
    """Announce nothing (a hidden member, a replaced one, a close from elsewhere)."""
    typing: bool
    """The room saw it typing: it hears it stopped."""
    chatted: bool
    """It chatted here: it becomes one of the room's offline members."""


class ParkedTake(NamedTuple):
    """A session taken from another node, waiting for the room's turn (its state, or
    the chat ahead of it) to mark where it takes its place (see
    :mod:`hubbub.core.handover`)."""

    taken_by: str
    """The local session that takes it."""


Pending = RoomMessage | ParkedJoin | Departure | ParkedTake


class Room:
    """Members of one room, in the order they joined, and its recent chat.

    The join order gives the negotiation roles: of any two members, the one who
    joined first is the impolite peer.

    What a room's members see happens in one order, the order the server took it
    in. Chat is relayed once stored, a few milliseconds after it was taken, so what
    is taken for the room after a chat (a join, a leave's ``user-left``, presence)
    waits in :attr:`pending` until that chat is stored, then goes, in order. A
    room's state comes from the store when its first member joins: until it is
    there (``loading``), joins wait in :attr:`pending` too.
    """

    __slots__ = (
        "chats_done",
        "chats_queued",
        "claims",
        "gap_loading",
        "gap_read_to",
        "gap_rows",
        "held",
        "held_seqs",
        "held_since",
        "last_seq",
        "loading",
        "members",
        "name",
        "pending",
        "recent",
        "recorders",
        "releasing",
        "seen",
        "sfu",
        "wanted_seq",
    )

    def __init__(self, name: str, recent: int) -> None:
        self.name = name
        self.sfu = False
        """Its calls go through the media server (see :mod:`hubbub.core.media`)."""
        self.members: dict[str, Session] = {}
        """user id -> session; a dict keeps insertion (join) order."""
        self.loading = True
        self.claims = 0
        """Joins into this room waiting for the cluster's answer: the room stays."""
        self.last_seq = 0
        """The ``seq`` of the last chat delivered to the members (or in the state
        loaded from the store)."""
        self.recent: deque[StoredChat] = deque(maxlen=recent)
        """The last messages, oldest first, for room-joined."""
        self.held: deque[Any] = deque()
        """Chat that came before the chat ahead of it, and what came after it, waiting
        (see :mod:`hubbub.core.ordering`)."""
        self.held_seqs: dict[int, Any] = {}
        """The chat among :attr:`held`, by ``seq``."""
        self.held_since = 0.0
        """When the wait at the front of :attr:`held` began (the core's clock)."""
        self.gap_loading = False
        """The gaps in :attr:`held` are being read from the store."""
        self.gap_rows: dict[int, StoredChat] = {}
        """What the last read of the store gave for the gaps, by ``seq``, until
        delivered in its turn."""
        self.gap_read_to = 0
        """The ``seq`` the last read of the store covered up to (not included): a gap
        before it that it did not give is no longer in the store."""
        self.wanted_seq = 0
        """The chat a session taken from another node was given up to there: this
        room delivers up to it before that session goes on here."""
        self.chats_queued = 0
        self.chats_done = 0
        """Chat messages sent to the store from this room, and those answered."""
        self.seen: dict[str, int] = {}
        """Who chatted here -> when last seen here (ms since the epoch): the room's
        offline members are those of them not among ``members``. Loaded with the
        room (the most recently seen), then kept up to date by the hub."""
        self.pending: deque[tuple[int, Pending]] = deque()
        """What was taken for the room while chat taken before it was on its way to
        the store (or the room loaded), oldest first: (the number of chat messages
        queued then, what waits). Each goes once ``chats_done`` reaches its number
        and everything before it has gone."""
        self.releasing = False
        """The front of :attr:`pending` is being carried out: what it sends goes at
        once, in its place."""
        self.recorders: list[Any] = []
        """Sessions being taken from other nodes into this room, for which what the
        room gets is kept meanwhile (see :mod:`hubbub.core.handover`)."""

    @property
    def busy(self) -> bool:
        """Something taken for the room earlier has not reached its members yet:
        its state, chat on its way to the store, or what waits behind them."""
        return self.loading or self.chats_done < self.chats_queued or bool(self.pending)

    def next_due(self) -> Pending | None:
        """Take the front of :attr:`pending` if its turn has come."""
        pending = self.pending
        if pending and not self.loading and pending[0][0] <= self.chats_done:
            return pending.popleft()[1]
        return None

    def history(self, retention: Retention | None, now_ms: int) -> list[StoredChat]:
        """The recent messages for ``room-joined``, without those retention removes
        from the store (past its count or its age)."""
        recent = self.recent
        if retention is None or (retention.max_messages is None and retention.max_age_ms is None):
            return list(recent)
        oldest_seq = 0 if retention.max_messages is None else self.last_seq - retention.max_messages
        oldest_ts = None if retention.max_age_ms is None else now_ms - retention.max_age_ms
        while recent and (
            recent[0].seq <= oldest_seq or (oldest_ts is not None and recent[0].ts < oldest_ts)
        ):
            recent.popleft()
        return list(recent)

    def remember(self, message: StoredChat) -> None:
        """A chat was delivered: the last one; kept for the next joiners."""
        self.last_seq = message.seq
        if self.recent.maxlen:
            self.recent.append(message)

    def saw(self, user_id: str, ts_ms: int, keep: int) -> None:
        """``user_id`` chatted here, or left, at ``ts_ms``; ``seen`` keeps about
        ``keep`` entries (the most recent, and the members)."""
        seen = self.seen
        if seen.get(user_id, -1) < ts_ms:
            seen[user_id] = ts_ms
        if len(seen) > 2 * keep + 16:
            latest = sorted(seen.items(), key=lambda item: item[1], reverse=True)
            self.seen = {
                uid: ts for i, (uid, ts) in enumerate(latest) if i < keep or uid in self.members
            }

    def offline(self, limit: int) -> list[tuple[str, int]]:
        """Up to ``limit`` offline members, most recently seen first."""
        if limit <= 0:
            return []
        members = self.members
        found = [(uid, ts) for uid, ts in self.seen.items() if uid not in members]
        found.sort(key=lambda item: (-item[1], item[0]))
        return found[:limit]

    def loaded(
        self, last_seq: int, recent: list[StoredChat], seen: Iterable[tuple[str, int]] = ()
    ) -> None:
        """The store's state arrived; messages stored meanwhile are kept."""
        for user_id, ts_ms in seen:
            if self.seen.get(user_id, -1) < ts_ms:
                self.seen[user_id] = ts_ms
        merged = {message.seq: message for message in recent}
        for message in self.recent:
            merged.setdefault(message.seq, message)
        self.recent.clear()
        self.recent.extend(merged[seq] for seq in sorted(merged))
        self.last_seq = max(self.last_seq, last_seq)
        self.loading = False

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} members={len(self.members)}>"


class RoomRegistry:
    """The rooms that have members or joins on the way; a room ends when empty."""

    __slots__ = ("_recent", "_rooms", "observer")

    def __init__(self, recent: int = 0) -> None:
        self._rooms: dict[str, Room] = {}
        self.observer: RoomObserver = NoRoomObserver()
        self._recent = recent

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def create(self, name: str) -> Room:
        room = self._rooms[name] = Room(name, self._recent)
        return room

    def add(self, room: Room, session: Session) -> None:
        if session.user_id is None:  # pragma: no cover - the hub sets it first
            raise ValueError("a session joins a room with a user id")
        started = not room.members
        room.members[session.user_id] = session
        session.room = room
        if started:
            self.observer.room_started(room.name)
        self.observer.participant_joined(room.name, session)

    def remove(self, session: Session) -> Room | None:
        """Take the session out of its room; drop the room once empty."""
        room = session.room
        if room is None or session.user_id is None:
            return None
        user_id = session.user_id
        left = room.members.get(user_id) is session
        if left:
            del room.members[user_id]
        session.room = None
        if left:
            self.observer.participant_left(room.name, session, user_id)
            if not room.members:
                self.observer.room_finished(room.name)
        self.drop_if_empty(room)
        return room

    def drop_if_empty(self, room: Room) -> None:
        """Forget the room once nobody is in it and nothing is on its way into it."""
        if (
            not room.members
            and not room.claims
            and not room.recorders
            and not room.busy
            and not room.releasing
            and self._rooms.get(room.name) is room
        ):
            del self._rooms[room.name]

    def __len__(self) -> int:
        return len(self._rooms)

    def __iter__(self) -> Iterator[Room]:
        return iter(self._rooms.values())

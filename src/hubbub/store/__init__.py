"""Where chat history, notifications and last-seen times last: the store interface.

Two backends sit beside this file: :mod:`hubbub.store.sqlite` (the default, one
file under ``--data-dir``) and :mod:`hubbub.store.postgres` (``--database-url``).
One contract test suite (``tests/store/test_contract.py``) runs against both.

The core never awaits a store: it asks the server adapter, which calls the store
and feeds the result back to the hub. Chat appends arrive in batches (see
:class:`hubbub.store.writer.ChatWriter`): one transaction and one fsync per batch.

Sequence numbers are per room, strictly increasing, with no gaps, and never
reused: a room's last number lives in its own row, which retention never deletes,
and a batch that fails commits nothing, numbers included.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from hubbub import randomness


class StoreError(Exception):
    """The store cannot do what was asked; the message is fit for an operator."""


class SchemaTooNew(StoreError):
    """The database was written by a newer hubbub: refused rather than misread."""


class ChatDraft(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A chat message on its way to the store.

    A struct rather than a frozen dataclass: one is made per chat message, and a
    frozen dataclass takes several times as long to build. Neither this nor
    :class:`StoredChat` holds anything but strings and numbers, so neither can be
    part of a reference cycle: the garbage collector need not track them (``gc=False``)."""

    room: str
    user_id: str
    text: str
    client_id: str | None = None


class StoredChat(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A chat message as stored, with what the server gave it.

    A struct rather than a dataclass: a batch makes thousands, and a frozen
    dataclass is slow to build."""

    room: str
    seq: int
    id: str
    ts: int
    """Milliseconds since the Unix epoch, UTC."""
    user_id: str
    text: str
    client_id: str | None = None
    duplicate: bool = False
    """This ``clientId`` from this sender in this room was stored before: these are
    the first copy's fields, and nothing new was stored."""


def stored_chat_from_row(row: Sequence[Any]) -> StoredChat:
    """A stored chat from a row of ``room, seq, id, ts, user_id, body, client_id``
    (the same columns in every backend)."""
    return StoredChat(
        room=row[0],
        seq=row[1],
        id=row[2],
        ts=row[3],
        user_id=row[4],
        text=row[5],
        client_id=row[6],
    )


@dataclass(frozen=True, slots=True)
class RoomState:
    """What a room's first joiner needs: its last sequence number and recent messages."""

    last_seq: int
    recent: list[StoredChat]
    """Oldest first."""
    seen: list[tuple[str, int]] = field(default_factory=list)
    """Who chatted in the room, with when each was last seen there (ms), most
    recently seen first: see :meth:`Store.room_users`."""


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: str
    ts: int
    """Milliseconds since the Unix epoch, UTC."""
    payload: dict[str, Any]
    """What the backend sent (``title``, ``body``, ``data``)."""
    read: bool = False
    key: str | None = None
    """The backend's own key for it, if it gave one."""
    duplicate: bool = False
    """A notification with this key was stored for this user before: this is that
    one, and nothing new was stored."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history to keep; ``None`` keeps everything on that count."""

    max_messages: int | None = None
    """Most messages kept per room; older ones go first."""
    max_age_ms: int | None = None
    """Messages older than this many milliseconds go."""
    notification_read_max_age_ms: int | None = None
    """Read notifications go this many milliseconds after they were read; unread
    ones are never deleted for their age."""
    max_notifications_per_user: int | None = None
    """Most notifications kept per user: past it, the oldest read ones go first,
    then, if still too many, the oldest unread ones."""

    @property
    def keeps_everything(self) -> bool:
        return (
            self.max_messages is None
            and self.max_age_ms is None
            and self.notification_read_max_age_ms is None
            and self.max_notifications_per_user is None
        )


OVER_CAP_NOTIFICATIONS = (
    "DELETE FROM notifications WHERE id IN ("
    " SELECT id FROM ("
    "  SELECT id,"
    "   ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY read_at IS NULL, id) AS oldest_first,"
    "   COUNT(*) OVER (PARTITION BY user_id) AS held"
    "  FROM notifications WHERE user_id IN ("
    "   SELECT user_id FROM notifications GROUP BY user_id HAVING COUNT(*) > $1)"
    " ) AS ranked WHERE oldest_first <= held - $1)"
)
"""Deletes, for every user holding more than ``$1`` notifications, as many as are
too many: read ones before unread ones, oldest (lowest id) first within each.
The same statement in both backends (SQLite with ``?1`` for ``$1``)."""


class OpenBatch(Protocol):
    """Chat appends still gathering for one transaction (see :meth:`Store.append_gathered`)."""

    def take(self) -> tuple[list[ChatDraft], int]:
        """Close the batch to further appends (from any thread); its drafts, and the
        time to store them at (milliseconds since the Unix epoch)."""
        ...

    def written(self, results: list[StoredChat]) -> None:
        """The batch is committed, with these results (one per draft). A store may
        call this, from any thread, as soon as it commits, before
        :meth:`Store.append_gathered` returns the same results: the writer can
        then report the batch without waiting for the append's task to resume."""
        ...


class Store(Protocol):
    """The operations every backend provides, all safe to call concurrently."""

    async def open(self) -> None:
        """Connect and bring the schema up to date; refuse a newer one (:class:`SchemaTooNew`)."""

    async def close(self) -> None:
        """Finish what is in progress and release the database."""

    async def append_chats(self, drafts: list[ChatDraft], now_ms: int) -> list[StoredChat]:
        """Store a batch in one transaction; one result per draft, in order.

        A draft whose ``(room, user_id, client_id)`` was stored before (in an earlier
        batch or earlier in this one) stores nothing and gets the first copy back
        with ``duplicate=True``. The others get the room's next sequence numbers in
        the order given. Nothing is stored if this raises.
        """

    def append_gathered(self, batch: OpenBatch) -> Awaitable[list[StoredChat]]:
        """:meth:`append_chats` for the drafts ``batch.take()`` gives, taken only
        when this store is ready to write them: after every batch handed to it
        before has been written, so that what arrives meanwhile joins this one.
        Batches handed over in turn are written in that order, one at a time.

        The batch is handed over by this call, not when what it returns is first
        awaited: a store may start on it at once (an ``async def`` starts when
        awaited)."""

    async def room_state(self, room: str, recent: int) -> RoomState:
        """The room's last sequence number (0 if it has none) and its last ``recent`` messages."""

    async def history(self, room: str, before_seq: int | None, limit: int) -> list[StoredChat]:
        """Up to ``limit`` messages with ``seq < before_seq`` (all, if ``None``), oldest first."""

    async def rooms(self, limit: int, after: str | None = None) -> list[tuple[str, int]]:
        """Rooms that ever had a message, with their last sequence number, by name;
        with ``after``, only those whose name sorts after it."""

    async def room_users(self, room: str, limit: int) -> list[tuple[str, int]]:
        """The users who chatted in the room, with when each was last seen there
        (milliseconds since the Unix epoch), most recently seen first.

        A stored chat message makes its sender one of them, last seen then.
        """

    async def record_seen(self, seen: list[tuple[str, str, int]]) -> None:
        """``(room, user_id, ts_ms)``: the user was in the room until then. Sets their
        last-seen time there (:meth:`room_users`) and overall (:meth:`last_seen`);
        neither is ever moved back. One transaction for the lot."""

    async def add_notification(
        self, user_id: str, payload: dict[str, Any], now_ms: int, key: str | None = None
    ) -> Notification:
        """Store a notification for a user, unread.

        With a ``key`` that this user's notifications already have, nothing is
        stored: the first one comes back, with ``duplicate=True``.
        """

    async def unread_notifications(self, user_id: str, limit: int) -> list[Notification]:
        """The user's oldest ``limit`` unread notifications, oldest first."""

    async def unread_for_users(
        self, user_ids: list[str], limit: int
    ) -> dict[str, list[Notification]]:
        """Each user's oldest ``limit`` unread notifications, oldest first, in one
        read; users with none are left out."""

    def may_have_unread(self, user_id: str) -> bool:
        """False only when the user certainly has no unread notification, so that
        reading them (on every connect of a user) can be skipped. A store that
        other processes write to cannot know, and says True."""

    async def mark_read(self, user_id: str, ids: list[int], now_ms: int) -> list[int]:
        """Mark the user's notifications read; return the ids that were unread."""

    async def set_last_seen(self, user_id: str, ts_ms: int) -> None:
        """Remember when the user was last connected."""

    async def last_seen(self, user_id: str) -> int | None:
        """When the user was last connected, or ``None`` if never recorded."""

    async def prune(self, retention: Retention, now_ms: int) -> int:
        """Apply retention to chat history; return how many messages went."""

    async def prune_notifications(self, retention: Retention, now_ms: int) -> int:
        """Apply retention to notifications (read ones by age, every user's by
        count); return how many notifications went."""


ID_BYTES = 12
"""Random bytes in a message id (96 bits, 16 URL-safe characters)."""


def new_ids(count: int) -> Callable[[], str]:
    """Gives ``count`` random message ids, one per call, their bytes taken together
    from the pooled CSPRNG (:mod:`hubbub.randomness`)."""
    text = base64.urlsafe_b64encode(randomness.random_bytes(ID_BYTES * count)).decode()
    width = ID_BYTES * 4 // 3
    return iter([text[i : i + width] for i in range(0, len(text), width)]).__next__


def assign_sequence(
    drafts: list[ChatDraft],
    last_seqs: dict[str, int],
    existing: dict[tuple[str, str, str], StoredChat],
    now_ms: int,
    new_id: Callable[[], str],
) -> tuple[list[StoredChat], list[StoredChat]]:
    """The part of an append every backend shares, run inside its transaction.

    ``last_seqs`` holds each room's last number (updated in place); ``existing``
    the stored copies of the drafts' client ids. Returns one result per draft and
    the rows to insert.
    """
    results: list[StoredChat] = []
    rows: list[StoredChat] = []
    seen = dict(existing)
    for draft in drafts:
        key = None
        if draft.client_id is not None:
            key = (draft.room, draft.user_id, draft.client_id)
            first = seen.get(key)
            if first is not None:
                results.append(_as_duplicate(first))
                continue
        seq = last_seqs[draft.room] + 1
        last_seqs[draft.room] = seq
        row = StoredChat(
            room=draft.room,
            seq=seq,
            id=new_id(),
            ts=now_ms,
            user_id=draft.user_id,
            text=draft.text,
            client_id=draft.client_id,
        )
        rows.append(row)
        results.append(row)
        if key is not None:
            seen[key] = row
    return results, rows


def _as_duplicate(first: StoredChat) -> StoredChat:
    return StoredChat(
        room=first.room,
        seq=first.seq,
        id=first.id,
        ts=first.ts,
        user_id=first.user_id,
        text=first.text,
        client_id=first.client_id,
        duplicate=True,
    )


__all__ = [
    "ChatDraft",
    "Notification",
    "Retention",
    "RoomState",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoredChat",
    "assign_sequence",
    "new_ids",
]

"""What the hub asks of the store, and how the answers come back.

The hub never awaits. When it needs the store it calls a :class:`Storage` method,
which returns at once; the server adapter does the work and feeds the result back
through the hub's :class:`StorageEvents`, as each docstring says. Unit tests
implement it by recording the requests and answering them by hand.
"""

from __future__ import annotations

from typing import Any, Protocol

from hubbub.core.rooms import Room
from hubbub.core.session import Session
from hubbub.protocol.messages import Ref
from hubbub.store import ChatDraft, Notification, RoomState, StoredChat


class PendingChat:
    """A chat message waiting for its batch to be committed."""

    __slots__ = ("draft", "ref", "room", "session")

    def __init__(self, session: Session, room: Room, ref: Ref | None, draft: ChatDraft) -> None:
        self.session = session
        self.room = room
        self.ref = ref
        self.draft = draft

    def __repr__(self) -> str:
        return f"<PendingChat {self.session.session_id} {self.draft!r}>"


class Storage(Protocol):
    def append_chat(self, pending: PendingChat) -> bool:
        """Queue a chat message for the store; ``False`` when the queue is full.

        Answered with ``StorageEvents.chat_stored`` or ``StorageEvents.chat_failed``,
        in the order queued.
        """

    def load_room(self, room: str, recent: int) -> None:
        """Read a room's last sequence number, ``recent`` last messages, and who
        chatted there (the most recently seen).

        Answered with ``StorageEvents.room_loaded`` or ``StorageEvents.room_load_failed``.
        """

    def load_chat_gap(self, room: str, after_seq: int, before_seq: int) -> None:
        """Read the room's chat numbered after ``after_seq`` and before ``before_seq``
        (a gap in what reached this node). Answered with
        ``StorageEvents.chat_gap_loaded`` (what the store has of it) or
        ``StorageEvents.chat_gap_failed``."""

    def record_seen(self, room: str, user_id: str, ts_ms: int) -> None:
        """Remember that ``user_id``, who chatted in ``room``, was last there at
        ``ts_ms``. Nothing answers it: a failure loses only a last-seen time."""

    def load_history(
        self, session_id: str, room: str, before_seq: int | None, limit: int, ref: Ref | None
    ) -> None:
        """Read a page of history. Answered with ``StorageEvents.history_loaded`` or
        ``StorageEvents.store_failed``."""

    def load_notifications(
        self, session_id: str, user_id: str, limit: int, ref: Ref | None, asked: bool
    ) -> None:
        """Read the user's oldest ``limit`` unread notifications (and whether more wait).

        ``asked``: the client asked (``notifications``), rather than the connection
        being addressed as the user. Answered with ``StorageEvents.notifications_loaded`` or
        ``StorageEvents.store_failed``.
        """

    def mark_notifications_read(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        """Mark the user's notifications read. Answered with
        ``StorageEvents.notifications_marked`` (with the ids that were unread) or
        ``StorageEvents.store_failed``."""

    def store_notification(self, user_id: str, payload: dict[str, Any], key: str | None) -> None:
        """Store a notification for the user, unread (nothing new with a ``key`` the
        user's notifications already have). Once stored, ``StorageEvents.notify`` delivers it
        to the user's connections; nothing else answers it: a failure is logged."""


class StorageEvents(Protocol):
    """How the answers of the store come back to the hub (which implements it)."""

    def chat_stored(self, pending: list[PendingChat], results: list[StoredChat]) -> None:
        """A batch of chat messages is durably stored: relay them, acknowledge them."""

    def chat_failed(self, pending: list[PendingChat]) -> None:
        """A batch could not be stored: nothing of it was, and nothing was relayed."""

    def room_loaded(self, room: str, state: RoomState) -> None:
        """A room's state came from the store: the joins waiting for it go ahead."""

    def room_load_failed(self, room: str) -> None:
        """A room's state could not be read: the joins waiting for it are refused."""

    def history_loaded(
        self, session_id: str, room: str, messages: list[StoredChat], ref: Ref | None
    ) -> None:
        """A page of history for a session."""

    def chat_gap_loaded(self, room: str, before_seq: int, messages: list[StoredChat]) -> None:
        """The chat of a gap (up to ``before_seq``, as asked), as far as the store has
        it."""

    def chat_gap_failed(self, room: str) -> None:
        """A gap could not be read."""

    def notifications_loaded(
        self,
        session_id: str,
        user_id: str,
        notifications: list[Notification],
        more: bool,
        ref: Ref | None,
        asked: bool,
    ) -> None:
        """The user's unread notifications, for one of its connections: sent when
        asked for, or when there are any."""

    def notifications_marked(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        """Notifications were marked read from one connection: it gets the ids that
        were unread, and so do the user's other connections."""

    def store_failed(self, session_id: str, ref: Ref | None) -> None:
        """A read or write asked for by a session failed."""

    def notify(self, notification: Notification) -> int:
        """A stored notification goes live to every connection of its user."""

"""What the hub asks of the store, and how the answers come back.

The hub never awaits. When it needs the store it calls a :class:`Storage` method,
which returns at once; the server adapter does the work and feeds the result back
by calling the hub method named in each docstring. Unit tests implement it by
recording the requests and answering them by hand.
"""

from __future__ import annotations

from typing import Any, Protocol

from hubbub.core.rooms import Room
from hubbub.core.session import Session
from hubbub.protocol.messages import Ref
from hubbub.store import ChatDraft


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

        Answered with ``Hub.chat_stored`` or ``Hub.chat_failed``, in the order queued.
        """

    def load_room(self, room: str, recent: int) -> None:
        """Read a room's last sequence number, ``recent`` last messages, and who
        chatted there (the most recently seen).

        Answered with ``Hub.room_loaded`` or ``Hub.room_load_failed``.
        """

    def record_seen(self, room: str, user_id: str, ts_ms: int) -> None:
        """Remember that ``user_id``, who chatted in ``room``, was last there at
        ``ts_ms``. Nothing answers it: a failure loses only a last-seen time."""

    def load_history(
        self, session_id: str, room: str, before_seq: int | None, limit: int, ref: Ref | None
    ) -> None:
        """Read a page of history. Answered with ``Hub.history_loaded`` or ``Hub.store_failed``."""

    def load_notifications(
        self, session_id: str, user_id: str, limit: int, ref: Ref | None, asked: bool
    ) -> None:
        """Read the user's oldest ``limit`` unread notifications (and whether more wait).

        ``asked``: the client asked (``notifications``), rather than the connection
        being addressed as the user. Answered with ``Hub.notifications_loaded`` or
        ``Hub.store_failed``.
        """

    def mark_notifications_read(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        """Mark the user's notifications read. Answered with
        ``Hub.notifications_marked`` (with the ids that were unread) or ``Hub.store_failed``."""

    def store_notification(self, user_id: str, payload: dict[str, Any], key: str | None) -> None:
        """Store a notification for the user, unread (nothing new with a ``key`` the
        user's notifications already have). Once stored, ``Hub.notify`` delivers it
        to the user's connections; nothing else answers it: a failure is logged."""

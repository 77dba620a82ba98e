"""What the backends tell the core: the store's results (:class:`StorageEvents`), the
broker's deliveries (:class:`~hubbub.broker.Delivery`), the membership's word about
other nodes (:class:`~hubbub.broker.MembershipEvents`) and the media bridge's
answers (:class:`~hubbub.core.media_bridge.MediaEvents`). Each is handed to the
feature that owns it; then, as at the end of every entry point, what the sessions
whose wait ended held is handled (``settle``, from the hub)."""

from __future__ import annotations

from collections.abc import Callable

from hubbub.broker import (
    CallPlacement,
    ChatRun,
    ClaimResult,
    Member,
    SessionFound,
    SessionState,
    SharedMedia,
)
from hubbub.core.context import HubContext
from hubbub.core.storage import PendingChat
from hubbub.core.waiting import Wait
from hubbub.media import Jsep, SubscriberOffer
from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.messages import Ref
from hubbub.store import Notification, RoomState, StoredChat


class BackendEvents:
    """The one object the store, the broker, the membership and the media bridge
    call back (the hub hands it to each)."""

    def __init__(self, ctx: HubContext, settle: Callable[[], None]) -> None:
        self._settle = settle
        # The hot path (deliveries) reads these once a message: bound once here.
        self._rooms = ctx.rooms
        self._sessions = ctx.sessions
        self._outbox = ctx.outbox
        self._users = ctx.users
        self._chat = ctx.chat
        self._joining = ctx.joining
        self._ordering = ctx.ordering
        self._held_message = ctx.ordering.room_message
        self._notifications = ctx.notifications
        self._handover = ctx.handover
        self._frontends = ctx.frontends
        self._cluster = ctx.cluster
        self._calling = ctx.calling
        self._media = ctx.media

    # -- what the storage adapter calls (see hubbub.core.storage) --------------------------

    def chat_stored(self, pending: list[PendingChat], results: list[StoredChat]) -> None:
        self._chat.chat_stored(pending, results)
        self._settle()

    def chat_failed(self, pending: list[PendingChat]) -> None:
        self._chat.chat_failed(pending)
        self._settle()

    def room_loaded(self, room_name: str, state: RoomState) -> None:
        self._joining.room_loaded(room_name, state)
        self._settle()

    def room_load_failed(self, room_name: str) -> None:
        self._joining.room_load_failed(room_name)
        self._settle()

    def history_loaded(
        self, session_id: str, room: str, messages: list[StoredChat], ref: Ref | None
    ) -> None:
        self._chat.history_loaded(session_id, room, messages, ref)

    def chat_gap_loaded(self, room: str, before_seq: int, messages: list[StoredChat]) -> None:
        self._ordering.gap_loaded(room, before_seq, messages)
        self._settle()

    def chat_gap_failed(self, room: str) -> None:
        self._ordering.gap_failed(room)
        self._settle()

    def notifications_loaded(
        self,
        session_id: str,
        user_id: str,
        notifications: list[Notification],
        more: bool,
        ref: Ref | None,
        asked: bool,
    ) -> None:
        self._notifications.notifications_loaded(
            session_id, user_id, notifications, more, ref, asked
        )

    def notifications_marked(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        self._notifications.notifications_marked(session_id, user_id, ids, ref)

    def store_failed(self, session_id: str, ref: Ref | None) -> None:
        """A read or write asked for by a session failed."""
        self._chat.store_failed(session_id, ref)

    def notify(self, notification: Notification) -> int:
        """A stored notification goes live to every connection of its user."""
        return self._notifications.notify(notification)

    # -- what the broker calls (Delivery) -------------------------------------------------

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        target = self._rooms.get(room)
        if target is not None:
            if target.held:  # behind chat that waits for the chat before it
                self._held_message(target, payload, exclude)
            else:
                self._outbox.broadcast(target.members.values(), payload, exclude)
                if target.recorders:  # sessions on their way here from other nodes
                    self._handover.keep(target, None, payload, exclude)

    def deliver_chat(self, room: str, run: ChatRun) -> None:
        self._ordering.chat(room, run)

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            self._handover.forward(session_id, payload)  # if it moved to another node
        elif session.waiting is Wait.HANDOVER and self._handover.keep_direct(session, payload):
            pass  # kept for it until the session it takes is here
        else:
            self._outbox.send(session, payload)

    def deliver_to_user(self, user_id: str, payload: bytes, exclude: str | None) -> None:
        sessions = self._users.sessions(user_id)
        if sessions:
            self._outbox.broadcast(sessions, payload, exclude)

    # -- what the membership calls (MembershipEvents) -----------------------------------------

    def claim_answered(self, session_id: str, result: ClaimResult) -> None:
        if not self._frontends.claim_answered(session_id, result):
            self._joining.claim_answered(session_id, result)
        self._settle()

    def members_changed(self, room: str, joined: list[Member], left: list[Member]) -> None:
        self._cluster.members_changed(room, joined, left)

    def close_session(self, session_id: str, code: int, reason: str, announce: bool) -> None:
        self._cluster.close_session(session_id, code, reason, announce)
        self._settle()

    def session_asked(self, session_id: str, resume_token: str, asked_by: str) -> None:
        self._handover.asked(session_id, resume_token, asked_by)

    def session_found(self, asked_by: str, found: SessionFound) -> None:
        self._handover.found(asked_by, found)
        self._settle()

    def taking(
        self, room: str, session_id: str, taken_by: str, media: SharedMedia | None = None
    ) -> None:
        self._handover.taking(room, session_id, taken_by, media)

    def session_cut(self, room: str, session_id: str, taken_by: str) -> SessionState | None:
        state = self._handover.cut(room, session_id, taken_by)
        self._settle()
        return state

    def session_handed(self, taken_by: str, state: SessionState | None) -> None:
        self._handover.handed(taken_by, state)
        self._settle()

    def adopt(self, session_id: str, resume_token: str, room: str, user_id: str) -> None:
        self._handover.adopt(session_id, resume_token, room, user_id)
        self._settle()

    def local_members(self) -> dict[str, list[Member]]:
        return self._cluster.local_members()

    def seen(self, room: str, user_id: str, ts_ms: int) -> None:
        self._cluster.seen(room, user_id, ts_ms)

    def room_ended(self, room: str) -> None:
        self._cluster.room_ended(room)
        self._settle()

    def media_changed(self, room: str, media: SharedMedia) -> None:
        self._media.media_changed(room, media)
        self._settle()

    def call_placed(self, call_id: str, outcome: CallPlacement) -> None:
        self._calling.call_placed(call_id, outcome)
        self._settle()

    def call_moved(
        self,
        call_id: str,
        move: str,
        user_id: str,
        session_id: str,
        ref: Ref | None,
        room: str | None,
    ) -> None:
        self._calling.call_moved(call_id, move, user_id, session_id, ref, room)

    # -- what the media bridge calls (MediaEvents) --------------------------------------

    def media_answered(
        self, session_id: str, connection: str, answer: Jsep, ref: Ref | None
    ) -> None:
        self._media.media_answered(session_id, connection, answer, ref)
        self._settle()

    def media_offered(
        self, session_id: str, connection: str, offer: SubscriberOffer, ref: Ref | None
    ) -> None:
        self._media.media_offered(session_id, connection, offer, ref)
        self._settle()

    def media_failed(
        self, session_id: str, connection: str, code: ErrorCode, ref: Ref | None
    ) -> None:
        self._media.media_failed(session_id, connection, code, ref)
        self._settle()

    def feed_up(self, room: str, session_id: str) -> None:
        self._media.feed_up(room, session_id)
        self._settle()

    def media_closed(self, room: str, session_id: str, connection: str) -> None:
        self._media.media_closed(room, session_id, connection)
        self._settle()

    def media_lost(self, rooms: list[str]) -> None:
        self._media.media_lost(rooms)
        self._settle()

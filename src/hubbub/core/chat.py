"""Chat and its history: a message is stored first, then relayed to the room and
acknowledged to its sender, in the order the room's members sent it.

``chat`` goes to the store (:meth:`Storage.append_chat`), which answers a batch at a
time, in order (:meth:`ChatFeature.chat_stored`). Each stored message of a room is
handed to the broker with the run of messages of that room stored with it
(:meth:`Broker.publish_chat`), and comes back to the hub to be delivered, with the
chat other nodes stored, in ``seq`` order (:mod:`hubbub.core.ordering`): one pass over
the room's members per run, each member getting the same messages in the same order,
its sender the ack in place of the relay. What the room took after a chat (joins,
leaves...) waits until that chat is stored (:meth:`Joining.release`).
"""

from __future__ import annotations

import logging
from typing import Any

from hubbub.auth.grants import Grant
from hubbub.broker import ChatItem, ChatRun
from hubbub.core.context import HubContext
from hubbub.core.joining import chat_entry
from hubbub.core.rooms import NoRoomObserver, Room
from hubbub.core.session import Session
from hubbub.core.storage import PendingChat
from hubbub.protocol import codec
from hubbub.protocol.errors import (
    ErrorCode,
    ProtocolError,
    check_name,
    not_in_room,
    store_unavailable,
)
from hubbub.protocol.messages import (
    Chat,
    ChatAck,
    ChatRelay,
    Error,
    History,
    HistoryPage,
    Ref,
)
from hubbub.store import ChatDraft, StoredChat

log = logging.getLogger("hubbub.core")


class ChatFeature:
    """Chat messages, their storage, relay and acks, and history pages."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def on_chat(self, session: Session, message: Chat) -> None:
        ctx = self.ctx
        room = session.room
        if room is None:
            raise not_in_room(message.ref)
        ctx.admission.require(session.identity, Grant.CHAT, message.ref)
        limits = ctx.limits
        if len(message.message) > limits.max_chat_length:
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"a chat message holds at most {limits.max_chat_length} characters",
                ref=message.ref,
            )
        client_id = message.client_id
        if client_id is not None:
            check_name(client_id, "clientId", limits.max_client_id_length, message.ref)
        user_id = session.user_id
        if user_id is None:  # pragma: no cover - a session in a room has a user id
            raise not_in_room(message.ref)
        draft = ChatDraft(
            room=room.name, user_id=user_id, text=message.message, client_id=client_id
        )
        if not ctx.storage.append_chat(PendingChat(session, room, message.ref, draft)):
            raise ProtocolError(
                ErrorCode.STORE_UNAVAILABLE,
                "too many messages are waiting to be stored; send it again later",
                ref=message.ref,
            )
        if session.typing:
            # Ahead of the chat: the indicator goes as the message is on its way.
            ctx.presence.stop_typing(session, room)
        room.chats_queued += 1
        session.chatted = True

    def chat_stored(self, pending: list[PendingChat], results: list[StoredChat]) -> None:
        """A batch of chat messages is durably stored: relay them, acknowledge them,
        and let go what waited behind each in its room."""
        ctx = self.ctx
        # Thousands per batch: what does not change within it is looked up once.
        publish_chat = ctx.broker.publish_chat
        encode = codec.encode
        keep_seen = ctx.offline_on_join
        observer = ctx.rooms.observer
        observed = type(observer) is not NoRoomObserver
        release = ctx.joining.release
        run: ChatRun = []
        run_room: Room | None = None
        touched: list[Room] = []
        batch = list(zip(pending, results, strict=True))
        order = _grouped_by_room(pending)
        if order is not None:
            batch = [batch[position] for position in order]
        for request, stored in batch:
            room = request.room
            client_id = stored.client_id
            relay: bytes | None = None
            if not stored.duplicate:
                room.saw(stored.user_id, stored.ts, keep_seen)
                relay = encode(
                    ChatRelay(
                        message=stored.text,
                        user_id=stored.user_id,
                        id=stored.id,
                        seq=stored.seq,
                        ts=stored.ts,
                        client_id=client_id,
                    )
                )
                if observed:
                    fields: dict[str, Any] = {
                        "message": stored.text,
                        "id": stored.id,
                        "seq": stored.seq,
                        "ts": stored.ts,
                    }
                    if client_id is not None:
                        fields["clientId"] = client_id
                    observer.chat_message(room.name, stored.user_id, fields)
            ack = encode(
                ChatAck(
                    id=stored.id,
                    seq=stored.seq,
                    ts=stored.ts,
                    client_id=client_id,
                    duplicate=stored.duplicate,
                    ref=request.ref,
                )
            )
            if room is not run_room:
                if run_room is not None:
                    touched.append(run_room)
                    if run:
                        publish_chat(run_room.name, run)
                        run = []
                run_room = room
            run.append(ChatItem(stored.seq, relay, request.session.session_id, ack, stored))
            room.chats_done += 1
            if room.pending and room.pending[0][0] <= room.chats_done:
                # What waited behind this chat goes right after it.
                publish_chat(room.name, run)
                run = []
                release(room)
        if run_room is not None:
            touched.append(run_room)
            if run:
                publish_chat(run_room.name, run)
        # An emptied room goes once its batch is through (not between two of its
        # messages: nothing can join it in between).
        drop_if_empty = ctx.rooms.drop_if_empty
        for room in touched:
            drop_if_empty(room)

    def chat_failed(self, pending: list[PendingChat]) -> None:
        """A batch could not be stored: nothing of it was, and nothing was relayed."""
        ctx = self.ctx
        for request in pending:
            self.store_failed(request.session.session_id, request.ref)
            room = request.room
            room.chats_done += 1
            ctx.joining.release(room)

    # -- history -------------------------------------------------------------------

    def on_history(self, session: Session, message: History) -> None:
        ctx = self.ctx
        room = session.room
        ref = message.ref
        if room is None:
            raise not_in_room(ref)
        # The codec holds limit and beforeSeq to 1 and up.
        most = ctx.limits.max_history_page
        limit = most if message.limit is None else min(message.limit, most)
        ctx.storage.load_history(session.session_id, room.name, message.before_seq, limit, ref)

    def history_loaded(
        self, session_id: str, room: str, messages: list[StoredChat], ref: Ref | None
    ) -> None:
        page = HistoryPage(room=room, messages=[chat_entry(m) for m in messages], ref=ref)
        self.ctx.broker.publish_to_session(session_id, codec.encode(page))

    def store_failed(self, session_id: str, ref: Ref | None) -> None:
        """A read or write asked for by a session failed: it is told."""
        error = store_unavailable(ref)
        reply = Error(code=error.code, message=error.message, ref=ref)
        self.ctx.broker.publish_to_session(session_id, codec.encode(reply))


def _grouped_by_room(pending: list[PendingChat]) -> list[int] | None:
    """The batch's positions, each room's messages together (rooms in the order
    they first appear, each room's messages in their order), so that the relay
    makes one pass over a room's members per batch rather than per message; or
    ``None`` to keep the order as it is.

    A member hears only its room's messages and its own acks, so the order each
    member sees is the same either way, unless a sender has left the room it
    sent a message of this batch to, or may leave it within the batch (its join
    into another room waits behind chat of this batch): then the order stays as
    it is, so that its acks and what it hears in its new room come in the order
    they happened."""
    groups: dict[Room, list[int]] = {}
    for position, request in enumerate(pending):
        room = request.room
        sender = request.session
        if sender.room is not room or sender.waiting is not None:
            return None
        group = groups.get(room)
        if group is None:
            groups[room] = [position]
        else:
            group.append(position)
    if len(groups) in (1, len(pending)):  # nothing to gain
        return None
    return [position for group in groups.values() for position in group]

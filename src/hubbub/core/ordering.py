"""A room's chat in ``seq`` order, whichever node stored it.

The store numbers a room's chat (one shared database for every node of a cluster), and
each node relays what it stored itself. A chat another node stored a moment earlier
reaches this one through Redis a moment later: this node may be handed ``seq`` 12
before 11. A member must see a room's chat in ``seq`` order (a client keeps the
highest ``seq`` it saw, and catches up from there after a drop), so a room delivers
its chat in order:

- a chat whose ``seq`` is the next is delivered at once (the rule, by far);
- one further on is held, and so is whatever the room is handed after it (its room
  messages: a ``user-left`` never overtakes the chat before it), until the gap before
  it is filled; a chat that fills the gap goes at once, then what waited, in order;
- a gap not filled within ``chat_gap_timeout`` seconds, or once ``chat_gap_max_held``
  messages wait, is read from the store (the missing chat was stored: only its relay
  is late or lost, say in a Redis outage), with every other gap among what waits, in
  one read; each is delivered in its turn, between what waited; what the store no
  longer has (retention) is skipped, as is the gap when the store cannot be read.

A chat older than the room's last delivered one was delivered already (from the
store, or before): it is dropped, its ack (if it is this node's) still sent. An ack
alone (a duplicate) goes at once: its message was delivered long ago.

With ``in_seq_order`` off (a cluster whose nodes keep their own history, each
numbering its own chat), chat is delivered as it comes, in the order the cluster
carried it.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from hubbub.broker import ChatItem, ChatRun
from hubbub.core.context import HubContext
from hubbub.core.outbox import RelayItem
from hubbub.core.rooms import Room
from hubbub.protocol import codec
from hubbub.protocol.messages import ChatRelay
from hubbub.store import StoredChat

log = logging.getLogger("hubbub.core")

DEFAULT_GAP_TIMEOUT = 1.0
"""Seconds a gap in a room's chat is waited for before it is read from the store."""

DEFAULT_MAX_HELD = 1000
"""Messages a room holds behind a gap, past which the gap is read from the store."""

GAP_READ_MAX = 5000
"""The most ``seq`` numbers one read of the store for a room's gaps spans."""


class HeldMessage(NamedTuple):
    """A room message waiting behind held chat."""

    payload: bytes
    exclude: str | None


class ChatOrdering:
    """Delivers a room's chat in ``seq`` order, with what the room gets between."""

    def __init__(
        self,
        ctx: HubContext,
        *,
        in_seq_order: bool = True,
        gap_timeout: float = DEFAULT_GAP_TIMEOUT,
        max_held: int = DEFAULT_MAX_HELD,
    ) -> None:
        self.ctx = ctx
        self.in_seq_order = in_seq_order
        self.gap_timeout = gap_timeout
        self.max_held = max_held
        self.filled = 0
        """Chat messages read from the store to fill a gap."""
        self.skipped = 0
        """Chat messages skipped: a gap the store could not fill."""

    # -- what the broker hands the hub ------------------------------------------------

    def chat(self, room_name: str, run: ChatRun) -> None:
        """Stored chat for ``room_name`` (this node's or another's)."""
        room = self.ctx.rooms.get(room_name)
        if room is None or room.loading:
            # Nobody here to hear it (or the room's state is still on its way, which
            # holds it or is followed by it): only this node's acks go.
            self._acks_only(run)
            return
        if not room.held:
            if not self.in_seq_order:
                self._deliver(room, run)
                return
            expected = room.last_seq + 1
            for item in run:
                if item.relay is not None:
                    if item.seq != expected:
                        break
                    expected += 1
            else:  # every message is the next one: the rule
                self._deliver(room, run)
                return
        for item in run:
            self._take(room, item)
        self._drain(room)

    def room_message(self, room: Room, payload: bytes, exclude: str | None) -> None:
        """A room message for ``room``, which holds chat: it waits behind it."""
        room.held.append(HeldMessage(payload, exclude))

    # -- holding and releasing -------------------------------------------------------

    def _take(self, room: Room, item: ChatItem) -> None:
        if item.relay is None or item.seq <= room.last_seq:
            # An ack alone, or a message delivered already: only the ack, if ours.
            self._acks_only([item._replace(relay=None)])
            return
        if item.seq == room.last_seq + 1:
            self._deliver(room, [item])  # the next one: whatever waits or not
            return
        if not room.held:
            room.held_since = self.ctx.now()
            self._schedule(room)
        room.held.append(item)
        room.held_seqs[item.seq] = item
        if len(room.held) > self.max_held:
            self._fill(room)

    def _drain(self, room: Room) -> None:
        """Deliver what waited and may go now, in order: held messages, and the chat
        the store gave for the gaps between them."""
        held = room.held
        if not held and not room.gap_rows:
            return
        progressed = False
        while True:
            following_seq = room.last_seq + 1
            if held:
                head = held[0]
                if type(head) is HeldMessage:
                    held.popleft()
                    self.ctx.room_broadcast(room, head.payload, head.exclude)
                    progressed = True
                    continue
                if head.seq <= room.last_seq:
                    held.popleft()
                    room.held_seqs.pop(head.seq, None)
                    self._acks_only([head._replace(relay=None)])
                    continue
                if head.seq == following_seq:
                    held.popleft()
                    del room.held_seqs[head.seq]
                    self._deliver(room, [head])
                    progressed = True
                    continue
                # The head waits for a gap: the chat that fills it may be further back.
                following = room.held_seqs.pop(following_seq, None)
                if following is not None:
                    held.remove(following)
                    self._deliver(room, [following])
                    progressed = True
                    continue
            row = room.gap_rows.pop(following_seq, None)
            if row is not None:
                self._deliver(room, self._stored_run([row]))
                progressed = True
                continue
            if held and following_seq < room.gap_read_to:
                # read, and not in the store (retention): skipped to what comes next
                after = (room.gap_read_to, *room.held_seqs, *room.gap_rows)
                self._skip(room, "not in the store", min(s for s in after if s > following_seq))
                if room.last_seq >= following_seq:
                    progressed = True
                    continue
            break
        if room.gap_rows:
            room.gap_rows = {seq: row for seq, row in room.gap_rows.items() if seq > room.last_seq}
        if held and progressed:
            room.held_since = self.ctx.now()
            self._schedule(room)

    def _schedule(self, room: Room) -> None:
        self.ctx.timers.schedule(room.held_since + self.gap_timeout, self._due, room)

    def _due(self, room: Room) -> None:
        if (
            room.held
            and self.ctx.rooms.get(room.name) is room
            and room.held_since + self.gap_timeout <= self.ctx.now()
        ):
            self._fill(room)

    def _fill(self, room: Room) -> None:
        """Read the gap from the store (once at a time)."""
        if not room.held_seqs:  # pragma: no cover - held chat is what blocks
            return
        if room.gap_loading:
            if len(room.held) > 2 * self.max_held:
                self._skip(room, "too many messages behind a gap being read")
                self._drain(room)
            return
        # every gap among what waits, in one read
        before = min(max(room.held_seqs), room.last_seq + GAP_READ_MAX + 1)
        room.gap_loading = True
        log.info(
            "event=chat-gap room=%r after=%d before=%d held=%d",
            room.name,
            room.last_seq,
            before,
            len(room.held),
        )
        self.ctx.storage.load_chat_gap(room.name, room.last_seq, before)

    def reach(self, room: Room, seq: int) -> None:
        """Deliver the room's chat up to ``seq`` (another node gave it to a session
        that goes on here): read from the store what has not come yet."""
        room.wanted_seq = max(room.wanted_seq, seq)
        self.ctx.timers.schedule(self.ctx.now() + 2 * self.gap_timeout, self._reach_due, room)
        if room.last_seq >= seq or room.gap_loading or room.loading:
            return
        room.gap_loading = True
        log.info("event=chat-catch-up room=%r after=%d up-to=%d", room.name, room.last_seq, seq)
        self.ctx.storage.load_chat_gap(room.name, room.last_seq, seq + 1)

    def _reach_due(self, room: Room) -> None:
        if room.wanted_seq > room.last_seq and self.ctx.rooms.get(room.name) is room:
            self._skip(room, "not had in time", room.wanted_seq + 1)
            self._drain(room)

    def gap_loaded(self, room_name: str, read_to: int, messages: list[StoredChat]) -> None:
        """The store's answer for the gaps before ``read_to``: each is delivered in
        its turn, what the store has not is skipped."""
        room = self.ctx.rooms.get(room_name)
        if room is None:
            return
        room.gap_loading = False
        room.gap_read_to = read_to
        held = room.held_seqs
        # the held chat goes as it was handed over (with its ack, if this node's)
        rows = {m.seq: m for m in messages if m.seq > room.last_seq and m.seq not in held}
        self.filled += len(rows)
        room.gap_rows.update(rows)
        self._drain(room)  # a catch-up (reach) too: what the store gave, up to a gap
        if room.held_seqs and min(room.held_seqs) > room.last_seq + 1:
            self._skip(room, "not in the store")
            self._drain(room)
        if room.wanted_seq > room.last_seq:
            self._skip(room, "not in the store", room.wanted_seq + 1)
            self._drain(room)

    @staticmethod
    def _stored_run(messages: list[StoredChat]) -> list[ChatItem]:
        """Chat read from the store, as a run to deliver (to every member: no ack)."""
        encode = codec.encode
        return [
            ChatItem(
                m.seq,
                encode(
                    ChatRelay(
                        message=m.text,
                        user_id=m.user_id,
                        id=m.id,
                        seq=m.seq,
                        ts=m.ts,
                        client_id=m.client_id,
                    )
                ),
                "",
                None,
                m,
            )
            for m in messages
        ]

    def gap_failed(self, room_name: str) -> None:
        room = self.ctx.rooms.get(room_name)
        if room is None:
            return
        room.gap_loading = False
        if room.held_seqs:
            self._skip(room, "the store failed")
        if room.wanted_seq > room.last_seq:
            self._skip(room, "the store failed", room.wanted_seq + 1)
        self._drain(room)

    def _skip(self, room: Room, why: str, to: int | None = None) -> None:
        """Give up on the chat before ``to`` (the first held by default)."""
        if to is None:
            to = min(room.held_seqs) if room.held_seqs else room.last_seq + 1
        if to <= room.last_seq + 1:
            return
        self.skipped += to - room.last_seq - 1
        log.warning(
            "event=chat-gap-skipped room=%r after=%d before=%d why=%r",
            room.name,
            room.last_seq,
            to,
            why,
        )
        room.last_seq = to - 1
        if room.recorders:
            self.ctx.handover.caught_up(room)

    # -- delivering ----------------------------------------------------------------

    def _deliver(self, room: Room, run: ChatRun) -> None:
        """Chat that may go now, in order: each relay to the room's members but its
        sender (who gets its ack in place), kept for the next joiners."""
        ctx = self.ctx
        outbox = ctx.outbox
        sessions = ctx.sessions
        items: list[RelayItem] = []
        last_seq = room.last_seq
        for item in run:
            relay = item.relay
            sender = sessions.get(item.sender) if item.ack is not None else None
            if sender is None and item.ack is not None:
                ctx.handover.forward(item.sender, item.ack)  # it moved to another node
            elif sender is not None and sender.room is not room:
                # The sender left the room meanwhile: its ack reaches it all the same.
                outbox.send(sender, item.ack)  # type: ignore[arg-type]
                sender = None
            items.append((relay, sender, item.ack or b""))
            if relay is not None and item.seq > last_seq:
                last_seq = item.seq
                stored = item.stored
                if stored is None:  # another node's: kept, and its sender seen
                    stored = self._read(room, relay)
                    if stored is not None:
                        room.saw(stored.user_id, stored.ts, ctx.offline_on_join)
                if stored is not None:
                    room.remember(stored)
        room.last_seq = last_seq
        outbox.relay_run(room.members.values(), items)
        if room.recorders:
            keep = ctx.handover.keep
            for item in run:
                if item.relay is not None:
                    keep(room, item.seq, item.relay, item.sender)
            ctx.handover.caught_up(room)

    @staticmethod
    def _read(room: Room, relay: bytes) -> StoredChat | None:
        try:
            chat = codec.decode_chat_relay(relay)
        except ValueError:  # pragma: no cover - nodes speak the same protocol
            return None
        return StoredChat(
            room=room.name,
            seq=chat.seq,
            id=chat.id,
            ts=chat.ts,
            user_id=chat.user_id,
            text=chat.message,
            client_id=chat.client_id,
        )

    def _acks_only(self, run: ChatRun) -> None:
        ctx = self.ctx
        sessions = ctx.sessions
        for item in run:
            if item.ack is not None:
                sender = sessions.get(item.sender)
                if sender is not None:
                    ctx.outbox.send(sender, item.ack)
                else:
                    ctx.handover.forward(item.sender, item.ack)

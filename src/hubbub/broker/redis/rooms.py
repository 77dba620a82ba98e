"""A room's messages reach this node's members in the order Redis carries the room's
channel, this node's own publications included.

Every node hears a room's channel in one order, Redis's. A node delivers what it
publishes to a room to its own members when it hears it back, a round trip later, not
as it publishes it: so the members of a room get its messages in that one order
whichever node they are on, and a session handed from one node to another misses
nothing and gets nothing twice (what came before the hand-over on the room's channel
was the old node's to deliver, what came after it the new node's).

A publication is numbered on its node (see :mod:`~hubbub.broker.redis.wire`), which
keeps what it must deliver of it (a chat's ack, for its sender) until it hears the
number back. A node hears only the rooms it is subscribed to, which are those where
it has members. What it cannot send (Redis unreachable, too much queued) is
delivered at once, and so is what it sent and had not heard back when the connection
went, or when its last member of the room left (the acks still reach their senders).
"""

from __future__ import annotations

from collections.abc import Callable

from hubbub.broker import ChatItem, ChatRun
from hubbub.broker.redis.keys import room_channel
from hubbub.broker.redis.node import Node
from hubbub.broker.redis.pipeline import Op
from hubbub.broker.redis.wire import ChatMessage, Echo, RoomMessage

Waiting = ChatItem | RoomMessage
"""What a node delivers of its own publication when it hears it back."""


class Rooms:
    """This node's publications to rooms, and what it hears on their channels."""

    __slots__ = ("_hears", "_node", "_number", "_waiting")

    def __init__(self, node: Node, hears: Callable[[str], bool]) -> None:
        self._node = node
        self._hears = hears
        """Whether this node is subscribed to a room's channel (and so hears back
        what it publishes there)."""
        self._number = 0
        self._waiting: dict[str, dict[int, Waiting]] = {}
        """room -> number -> what to deliver of this node's publications on their way."""

    @property
    def waiting(self) -> int:
        """This node's publications not heard back yet."""
        return sum(map(len, self._waiting.values()))

    def _next(self) -> int:
        number = self._number = (self._number + 1) & 0xFFFFFFFF
        if number == 0:  # the number of what scripts publish: never one of ours
            number = self._number = 1
        return number

    # -- publishing -----------------------------------------------------------------

    def publish(self, room: str, payload: bytes, exclude: str | None) -> None:
        node = self._node
        pipeline = node.pipeline
        if not pipeline.is_open or not self._hears(room):
            # Nobody here to hear it back from Redis (or no Redis): at once.
            if node.delivery is not None:
                node.delivery.deliver_to_room(room, payload, exclude)
            # (Counted as dropped without Redis.)
            pipeline.send(Op("PUBLISH", room_channel(room), node.wire.room(0, exclude, payload)))
            return
        number = self._next()
        self._waiting.setdefault(room, {})[number] = RoomMessage(exclude, payload)
        data = node.wire.room(number, exclude, payload)
        pipeline.send(Op("PUBLISH", room_channel(room), data, on_error=self._undelivered(room)))

    def publish_chat(self, room: str, run: ChatRun) -> None:
        node = self._node
        pipeline = node.pipeline
        delivery = node.delivery
        if not pipeline.is_open or not self._hears(room):
            if delivery is not None:
                delivery.deliver_chat(room, run)
            for item in run:
                if item.relay is not None:
                    data = node.wire.chat(0, item.seq, item.sender, item.relay)
                    pipeline.send(Op("PUBLISH", room_channel(room), data))
            return
        waiting = self._waiting.setdefault(room, {})
        now: ChatRun = []
        channel = room_channel(room)
        for item in run:
            if item.relay is None:
                now.append(item)  # a duplicate: its ack alone, at once
                continue
            number = self._next()
            waiting[number] = item
            data = node.wire.chat(number, item.seq, item.sender, item.relay)
            pipeline.send(Op("PUBLISH", channel, data, on_error=self._undelivered(room)))
        if now and delivery is not None:
            delivery.deliver_chat(room, now)

    def _undelivered(self, room: str) -> Callable[[], None]:
        """What delivers the room's waiting publications if the one being sent is
        dropped: nothing will come back of it (nor of what was queued after it)."""
        return lambda: self.deliver_waiting(room)

    # -- hearing ----------------------------------------------------------------------

    def heard(self, room: str, publication: RoomMessage | ChatMessage | Echo) -> None:
        """A ROOM or CHAT publication on ``room``'s channel, another node's or an echo
        of this one's."""
        delivery = self._node.delivery
        if delivery is None:
            return
        match publication:
            case RoomMessage(exclude, payload):
                delivery.deliver_to_room(room, payload, exclude)
            case ChatMessage(seq, exclude, payload):
                delivery.deliver_chat(room, [ChatItem(seq, payload, exclude or "", None)])
            case Echo(number):
                waiting = self._waiting.get(room)
                mine = None if waiting is None else waiting.pop(number, None)
                if mine is None:
                    return  # delivered already (it was dropped meanwhile), or a script's
                if type(mine) is RoomMessage:
                    delivery.deliver_to_room(room, mine.payload, mine.exclude)
                else:
                    delivery.deliver_chat(room, [mine])  # type: ignore[list-item]

    def deliver_waiting(self, room: str | None = None) -> None:
        """Deliver now what waits to be heard back (of ``room``, or of every room),
        in the order published: it will not be heard back (the connection went, the
        node no longer hears the room, or it was dropped)."""
        rooms = list(self._waiting) if room is None else [room]
        delivery = self._node.delivery
        for name in rooms:
            waiting = self._waiting.pop(name, None)
            if not waiting or delivery is None:
                continue
            for mine in waiting.values():  # in the order published
                if type(mine) is RoomMessage:
                    delivery.deliver_to_room(name, mine.payload, mine.exclude)
                else:
                    delivery.deliver_chat(name, [mine])  # type: ignore[list-item]

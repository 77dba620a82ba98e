"""The subscriber connection: this node's channel, the users' channel, and the
channel of each room where the node has members or claims on their way.

A node subscribes to a room's channel before it claims a place there (the claim
waits here until Redis confirms the subscription), and the answer to the claim
comes back on the node's channel through this same connection: every event
published before the claim is in the answer's member list, every one after it
arrives after the answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from hubbub.broker.redis import keys
from hubbub.broker.redis.node import Node
from hubbub.broker.redis.pipeline import Op
from hubbub.broker.redis.resp import Reply, RespConnection, open_connection, pack_command

_USERS_CHANNEL = keys.USERS_CHANNEL.encode()
_PING = pack_command(("PING",))
_ROOM_CHANNEL = keys.ROOM_CHANNEL_PREFIX.encode()


class Listener(Protocol):
    """Where the publications received go, by channel."""

    def on_room(self, room: str, data: bytes) -> None: ...

    def on_node(self, data: bytes) -> None: ...

    def on_user(self, data: bytes) -> None: ...

    def on_unsubscribed(self, room: str) -> None:
        """This node no longer hears ``room`` (its last member there left)."""


class Subscriptions:
    __slots__ = (
        "_confirmed",
        "_confirming",
        "_connection",
        "_heard_at",
        "_listener",
        "_node",
        "_node_channel",
        "_pinged_at",
        "_subscribed",
        "_subscribing",
        "_waiting",
        "_wanted",
    )

    def __init__(self, node: Node, listener: Listener) -> None:
        self._node = node
        self._node_channel = node.channel.encode()
        self._listener = listener
        self._connection: RespConnection | None = None
        self._confirming = 0
        """Subscriptions of a (re)connection not yet confirmed."""
        self._confirmed: asyncio.Future[None] | None = None
        self._wanted: dict[str, int] = {}
        """room -> local members and claims on their way: while above 0, this node
        is subscribed to the room's channel."""
        self._subscribing: dict[str, int] = {}
        """room -> SUBSCRIBE commands sent and not yet confirmed."""
        self._subscribed: set[str] = set()
        self._waiting: dict[str, list[Op]] = {}
        """Operations (claims) waiting for their room's subscription to be confirmed."""
        self._pinged_at: float | None = None
        """When the PING not answered yet was sent."""
        self._heard_at = 0.0
        """When the connection last brought anything."""

    # -- rooms ------------------------------------------------------------------

    def want(self, room: str) -> bool:
        """One more reason to hear ``room``; True if it is the first."""
        count = self._wanted.get(room, 0)
        self._wanted[room] = count + 1
        if count:
            return False
        connection = self._connection
        if self._node.pipeline.is_open and connection is not None:
            self._subscribing[room] = self._subscribing.get(room, 0) + 1
            connection.write(pack_command(("SUBSCRIBE", keys.room_channel(room))))
        return True

    def unwant(self, room: str) -> bool:
        """One reason less; True if it was the last (the room is left)."""
        count = self._wanted.get(room, 0) - 1
        if count > 0:
            self._wanted[room] = count
            return False
        self._wanted.pop(room, None)
        self._subscribed.discard(room)
        self._listener.on_unsubscribed(room)
        connection = self._connection
        if self._node.pipeline.is_open and connection is not None:
            self._node.pipeline.send(Op("SREM", keys.node_rooms(self._node.id), room))
            connection.write(pack_command(("UNSUBSCRIBE", keys.room_channel(room))))
        return True

    def hears(self, room: str) -> bool:
        """This node is subscribed to ``room``'s channel (Redis confirmed it)."""
        return room in self._subscribed

    def send_when_subscribed(self, room: str, op: Op) -> None:
        """Send ``op`` once this node hears ``room``."""
        if room in self._subscribed:
            self._node.pipeline.send(op)
        else:
            self._waiting.setdefault(room, []).append(op)

    # -- the connection ---------------------------------------------------------

    async def open(self, url: str, on_lost: Callable[[str], None], timeout: float) -> int:
        """Connect and subscribe to every channel wanted; return once Redis has
        confirmed them all, with the number of rooms."""
        self.close()
        loop = asyncio.get_running_loop()
        confirmed = self._confirmed = loop.create_future()

        def lost(why: str) -> None:
            if not confirmed.done():
                confirmed.set_exception(ConnectionError(why))
            on_lost(why)

        connection = self._connection = await open_connection(url, self._on_push, lost, timeout)
        rooms = list(self._wanted)
        channels = [self._node.channel, keys.USERS_CHANNEL, *map(keys.room_channel, rooms)]
        self._confirming = len(channels)
        connection.write(pack_command(("SUBSCRIBE", *channels)))
        async with asyncio.timeout(timeout):
            await confirmed
        self._subscribed = set(rooms)
        return len(rooms)

    @property
    def closed(self) -> bool:
        return self._connection is None or self._connection.closed

    def ping(self, now: float, within: float) -> bool:
        """Ask the connection for a sign of life; False if the one asked for at least
        ``within`` seconds ago has not come, and the connection brought nothing since
        (it no longer answers: a connection that is only slow still brings what it
        was sent before)."""
        connection = self._connection
        if connection is None:
            return True
        pinged = self._pinged_at
        if pinged is not None:
            if now - pinged >= within and self._heard_at < pinged:
                return False
            if now - pinged < within:
                return True
        self._pinged_at = now
        connection.write(_PING)
        return True

    def close(self) -> None:
        """Closed, or lost: nothing is heard until :meth:`open`; claims waiting for a
        subscription are forgotten (the caller fails them)."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self._pinged_at = None
        self._confirming = 0
        self._subscribed.clear()
        self._subscribing.clear()
        self._waiting.clear()

    def _on_push(self, reply: Reply) -> None:
        """A message, the confirmation of a SUBSCRIBE or UNSUBSCRIBE, or a pong."""
        self._heard_at = time.monotonic()
        kind: bytes = reply[0]
        channel: bytes = reply[1]
        if kind == b"message":
            data: bytes = reply[2]
            if channel == self._node_channel:
                self._listener.on_node(data)
            elif channel == _USERS_CHANNEL:
                self._listener.on_user(data)
            elif channel.startswith(_ROOM_CHANNEL):
                self._listener.on_room(channel[len(_ROOM_CHANNEL) :].decode(), data)
        elif kind == b"subscribe":
            if self._confirming:
                # Those of a (re)connection: once all are in, nothing published
                # from then on is missed.
                self._confirming -= 1
                confirmed = self._confirmed
                if not self._confirming and confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                return
            if channel.startswith(_ROOM_CHANNEL):
                self._confirm(channel[len(_ROOM_CHANNEL) :].decode())
        elif kind == b"pong":
            self._pinged_at = None

    def _confirm(self, room: str) -> None:
        left = self._subscribing.get(room, 0) - 1
        if left > 0:
            self._subscribing[room] = left
            return
        self._subscribing.pop(room, None)
        if room in self._wanted:
            self._subscribed.add(room)
            for op in self._waiting.pop(room, []):
                self._node.pipeline.send(op)

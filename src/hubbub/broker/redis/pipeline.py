"""The publisher: every command a node sends in its hot path, written once per turn
of the event loop.

Nothing here awaits. An operation goes to a bounded queue, and what one turn of the
event loop queued is written at its end, in one pipeline, on the publisher
connection (:mod:`hubbub.broker.redis.resp`); the replies come back in order. What
does not fit (``max_pending`` operations queued or waiting for their reply), or
comes while there is no connection, is dropped and counted.

An operation that nothing waits for (no callback: a publication of signals, say)
asks Redis for no reply (``CLIENT REPLY SKIP`` before it), where the connection may
(:func:`may_skip_replies`): Redis writes none and the node reads none, which for a
turn of such operations alone is a write and a read fewer.

Publications to one channel can also go as one (:meth:`Pipeline.send_batched`): what
a turn sends there is gathered in a :class:`Batch`, one PUBLISH however many it
holds, up to the next operation of another kind (which must reach every subscriber
after them) or :data:`MAX_BATCH` items.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

from hubbub.broker.redis.resp import Reply, RespConnection, pack_command

log = logging.getLogger("hubbub.broker")


SKIP_REPLY = pack_command(("CLIENT", "REPLY", "SKIP"))
"""Written before a command whose reply nothing waits for: Redis sends none."""


class Op:
    """One command to send (a PUBLISH, a script's EVALSHA...)."""

    __slots__ = ("answered", "at", "data", "on_error", "on_reply", "on_sent")

    def __init__(
        self,
        *command: Any,
        on_error: Callable[[], None] | None = None,
        on_sent: Callable[[], None] | None = None,
        on_reply: Callable[[Reply], None] | None = None,
    ) -> None:
        self.answered = on_error is not None or on_sent is not None or on_reply is not None
        """Redis replies to it (something waits for the reply)."""
        self.data: bytes = pack_command(command)
        self.on_error = on_error
        """Called if the command is dropped or fails."""
        self.on_sent = on_sent
        self.on_reply = on_reply
        """Called with Redis's reply, when it is not an error."""
        self.at = time.monotonic()


def publish(channel: str, data: bytes) -> Op:
    return Op("PUBLISH", channel, data)


MAX_BATCH = 256
"""Items in one batched publication at most (a full one is sent, the next starts)."""


class Batch(Op):
    """Items for one channel, published as one message: ``encode`` makes its bytes
    from them once the batch is closed."""

    __slots__ = ("channel", "encode", "items")

    def __init__(self, channel: str, encode: Callable[[list[Any]], bytes]) -> None:
        self.channel = channel
        self.encode = encode
        self.items: list[Any] = []
        self.data = b""
        self.on_error = self.on_sent = self.on_reply = None
        self.answered = False
        self.at = time.monotonic()

    def close(self) -> None:
        self.data = pack_publish(self.channel, self.encode(self.items))


_PUBLISH_HEADS: dict[str, bytes] = {}
"""A channel -> ``PUBLISH <channel>`` packed, without the message (batches go to a
few channels: the other nodes')."""


def pack_publish(channel: str, message: bytes) -> bytes:
    """``PUBLISH channel message`` packed, as :func:`pack_command` packs it, with the
    channel's part packed once."""
    head = _PUBLISH_HEADS.get(channel)
    if head is None:
        if len(_PUBLISH_HEADS) >= 1024:  # nodes come and go over a long life
            _PUBLISH_HEADS.clear()
        name = channel.encode()
        head = _PUBLISH_HEADS[channel] = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(name), name)
    return b"%s$%d\r\n%s\r\n" % (head, len(message), message)


async def may_skip_replies(connection: RespConnection) -> bool:
    """Whether ``connection`` may ask for no reply (``CLIENT REPLY``: an ACL can
    deny it, and then every reply must be read as before)."""
    reply = await connection.ask_unchecked("CLIENT", "REPLY", "ON")
    return not isinstance(reply, hiredis.ReplyError)


class Pipeline:
    """The queue, and the publisher connection it is written to while the node is
    connected."""

    __slots__ = (
        "_batches",
        "_connection",
        "_flush_soon",
        "_heard_at",
        "_held",
        "_inflight",
        "_pinged_at",
        "_queue",
        "_skip_replies",
        "dropped",
        "max_pending",
        "sent",
    )

    def __init__(self, max_pending: int) -> None:
        self.max_pending = max_pending
        self.sent = 0
        """Operations sent to Redis (publications and membership changes)."""
        self.dropped = 0
        """Operations dropped: the queue was full or Redis unreachable."""
        self._connection: RespConnection | None = None
        self._queue: deque[Op] = deque()
        """Waiting for the end of this turn of the event loop, to be written."""
        self._inflight: deque[Op] = deque()
        """Written, waiting for Redis's reply, in order."""
        self._batches: dict[str, Batch] = {}
        """The batches in the queue that may take more, by channel."""
        self._flush_soon = False
        self._held: list[Op] | None = None
        """While held (:meth:`hold`): what is sent meanwhile, to go after what the
        holder sends first."""
        self._pinged_at: float | None = None
        """When the PING not answered yet was sent."""
        self._heard_at = 0.0
        """When the connection last brought a reply."""
        self._skip_replies = False

    @property
    def is_open(self) -> bool:
        """It has a connection to send on (the node is connected)."""
        return self._connection is not None

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._inflight)

    def lag_seconds(self) -> float:
        """How long the oldest operation waiting for Redis has waited."""
        oldest = self._inflight or self._queue
        return time.monotonic() - oldest[0].at if oldest else 0.0

    def open(self, connection: RespConnection, *, skip_replies: bool = False) -> None:
        """Send on ``connection`` from now on (asking for no reply to what nothing
        waits for, if ``skip_replies``)."""
        self._connection = connection
        self._pinged_at = None
        self._skip_replies = skip_replies

    def ping(self, now: float, within: float) -> bool:
        """Ask the connection for a sign of life; False if the one asked for at least
        ``within`` seconds ago has not come, and no reply came since (it no longer
        answers: one that is only slow still answers what was sent before)."""
        if self._connection is None:
            return True
        pinged = self._pinged_at
        if pinged is not None:
            if now - pinged >= within and self._heard_at < pinged:
                return False
            if now - pinged < within:
                return True

        def answered() -> None:
            self._pinged_at = None

        self._pinged_at = now
        self.send(Op("PING", on_sent=answered, on_error=answered))
        return True

    def close(self) -> None:
        """No connection any more: what waits is dropped (each ``on_error`` called)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        lost = [*self._inflight, *self._queue]
        self._inflight.clear()
        self._queue.clear()
        self._batches.clear()
        self.dropped += len(lost)
        for op in lost:
            if op.on_error is not None:
                op.on_error()

    def hold(self) -> None:
        """Keep what is sent from now on aside, until :meth:`unhold`."""
        self._close_batches()  # nothing sent from now on may join them
        self._held = []

    def unhold(self) -> list[Op]:
        """What was sent while held, for the holder to send (after its own)."""
        held, self._held = self._held or [], None
        return held

    def send(self, op: Op) -> None:
        if self._held is not None:
            self._held.append(op)
            return
        if self._connection is None or self.pending >= self.max_pending:
            self.dropped += 1
            if op.on_error is not None:
                op.on_error()
            return
        if self._batches:
            self._close_batches()  # what they hold goes first, for every subscriber
        self._queue.append(op)
        self._flush_at_end_of_turn()

    def send_batched(self, channel: str, item: Any, encode: Callable[[list[Any]], bytes]) -> None:
        """Publish ``item`` on ``channel``, with what else this turn sends there by
        this method (until an operation of another kind comes): ``encode`` makes one
        publication of the items, in order."""
        batch = self._batches.get(channel)
        if batch is None:
            if self._held is not None or self._connection is None:
                self.send(publish(channel, encode([item])))  # held, or dropped
                return
            if self.pending >= self.max_pending:
                self.dropped += 1
                return
            batch = self._batches[channel] = Batch(channel, encode)
            self._queue.append(batch)
            self._flush_at_end_of_turn()
        batch.items.append(item)
        if len(batch.items) >= MAX_BATCH:
            batch.close()
            del self._batches[channel]

    def _close_batches(self) -> None:
        for batch in self._batches.values():
            batch.close()
        self._batches.clear()

    def _flush_at_end_of_turn(self) -> None:
        if not self._flush_soon:
            # Everything this turn of the event loop sends goes in one write.
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until what is queued now is sent."""
        done = asyncio.get_running_loop().create_future()

        def sent() -> None:
            if not done.done():
                done.set_result(None)

        self.send(Op("PING", on_sent=sent, on_error=sent))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await done

    def _flush(self) -> None:
        self._flush_soon = False
        queue = self._queue
        connection = self._connection
        if self._batches:
            self._close_batches()
        if not queue or connection is None or connection.closed:
            return
        # One pass, no list built for its own sake: most turns hold one operation.
        skip = self._skip_replies
        inflight = self._inflight
        pieces: list[bytes] = []
        answered = 0
        for op in queue:
            if op.answered or not skip:
                inflight.append(op)
                answered += 1
            else:
                pieces.append(SKIP_REPLY)
            pieces.append(op.data)
        self.sent += len(queue)
        queue.clear()
        connection.call_many(b"".join(pieces), answered, self._on_reply)

    def _on_reply(self, reply: Reply) -> None:
        self._heard_at = time.monotonic()
        op = self._inflight.popleft()
        if isinstance(reply, hiredis.ReplyError):
            log.error("event=redis-op-failed error=%s", reply)
            if op.on_error is not None:
                op.on_error()
        else:
            if op.on_sent is not None:
                op.on_sent()
            if op.on_reply is not None:
                op.on_reply(reply)

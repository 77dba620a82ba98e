"""Connections as the server adapter holds them, and the outbox that writes to them.

A message is encoded once and the same bytes go to every recipient, with no task
and no ``await`` per recipient. Each recipient's frame is three pieces: a header
and ``{"n":N,`` made for it (a few bytes), and the shared payload after its ``{``,
written as a view of the same bytes (``writelines``: no copy of the payload per
recipient). Frames are corked: what one turn of the event loop
sends to a connection is written to its transport once, at the end of that turn,
so a client that gets several messages at once costs one ``send`` system call
rather than one per message (the syscall is most of what a relayed message costs).
The transport's write buffer is each client's outgoing queue; its bound is
``max_send_queue_bytes``, and a client that lets it fill has stopped reading: it
gets a 4008 close and is cut off, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import WebSocketError, WSMsgType, web, web_ws
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.http_parser import HttpRequestParser

from hubbub.core.outbox import RelayItem
from hubbub.core.session import Session
from hubbub.protocol.errors import CloseCode
from hubbub.server.frames import close_frame, numbered_frame_head, pong_frame, text_frame

if TYPE_CHECKING:
    from aiohttp import WSMessage

    from hubbub.core import Hub

log = logging.getLogger("hubbub.server")

SLOW_CONSUMER_GRACE = 5.0
"""Seconds a slow client's connection may take to flush its close frame before
it is aborted."""

_SLOW_CONSUMER_CLOSE = close_frame(CloseCode.SLOW_CONSUMER, "too slow to read")


class Connection:
    """One accepted WebSocket: its transport, its aiohttp response, its session."""

    __slots__ = (
        "__weakref__",
        "close_received",
        "close_task",
        "hub",
        "last_heard",
        "opened_at",
        "pinged_at",
        "remote",
        "session",
        "transport",
        "ws",
    )

    def __init__(
        self, transport: asyncio.Transport, ws: web.WebSocketResponse, remote: str, hub: Hub
    ):
        self.transport = transport
        self.ws = ws
        self.remote = remote
        self.hub = hub
        self.session: Session | None = None
        self.last_heard = 0.0
        self.opened_at = 0.0
        self.pinged_at: float | None = None
        self.close_task: asyncio.Task[bool] | None = None
        self.close_received = False
        """The client sent a close frame, or was closed for breaking the protocol:
        the connection ended, it was not lost."""

    def on_message(self, message: WSMessage) -> bool:
        """Hand one received message to the hub; False: the connection is over
        (a close, an error), which aiohttp's ``receive()`` must see to."""
        kind = message[0]
        self.last_heard = time.monotonic()
        session = self.session
        if session is None:  # pragma: no cover - set before any message is read
            return True
        if kind is WSMsgType.TEXT:
            self.hub.receive(session, message[1])
        elif kind is WSMsgType.PONG:
            self.pinged_at = None
        elif kind is WSMsgType.PING:
            if not self.transport.is_closing():
                self.transport.write(pong_frame(message[1]))
        elif kind is WSMsgType.BINARY:
            self.hub.receive_binary(session)
        else:  # CLOSE, CLOSING, CLOSED, ERROR
            if kind is WSMsgType.CLOSE or (
                kind is WSMsgType.ERROR and isinstance(message[1], WebSocketError)
            ):
                # A close frame, or a frame that broke the protocol (closed by
                # aiohttp with 1007, 1009...): a leave, not a lost connection.
                self.close_received = True
            return False
        return True


class DirectQueue(WebSocketDataQueue):
    """aiohttp's queue of received WebSocket messages, with a way around it.

    Once a handler is attached, each message the frame parser produces is handed
    to it at once, inside the read callback: no future, no task wake-up and no
    ``receive()`` call per message, and no coroutine frames held per idle
    connection. What the handler declines (a close, an error, the end of the
    stream) is queued as before, for ``receive()``, and wakes :meth:`wait`.
    Messages queued before the handler was attached are read first, in order.
    """

    __slots__ = ("_wake", "handler")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler: Callable[[WSMessage], bool] | None = None
        """Takes a message; returns False to have it queued for ``receive()``."""
        self._wake: asyncio.Future[None] | None = None

    def feed_data(self, data: Any, size: int) -> None:
        handler = self.handler
        if handler is not None and not self._buffer and handler(data):
            return
        super().feed_data(data, size)
        self._wake_up()

    def feed_eof(self) -> None:
        super().feed_eof()
        self._wake_up()

    def set_exception(self, *args: Any) -> None:
        super().set_exception(*args)
        self._wake_up()

    async def wait(self) -> None:
        """Until something is queued for ``receive()``, or the stream ended."""
        if self._buffer or self.is_eof():
            return
        self._wake = wake = asyncio.get_running_loop().create_future()
        try:
            await wake
        finally:
            self._wake = None

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)


_NO_MORE_REQUESTS: deque[Any] = deque(maxlen=0)
"""The request queue of every upgraded connection: empty, and staying so."""


_NO_BACKGROUND_SENDS: frozenset[Any] = frozenset()


def _no_mask() -> int:  # pragma: no cover - never called
    raise RuntimeError("a server does not mask its frames")


class HubWebSocketResponse(web.WebSocketResponse):
    """A WebSocket response whose received messages go through a :class:`DirectQueue`."""

    def _post_start(self, *args: Any, **kwargs: Any) -> None:
        # aiohttp builds its queue from this module-level name; for the length of
        # this synchronous call (nothing else runs meanwhile), it builds ours.
        original = getattr(web_ws, "WebSocketDataQueue")  # noqa: B009 - not exported
        setattr(web_ws, "WebSocketDataQueue", DirectQueue)  # noqa: B010
        try:
            super()._post_start(*args, **kwargs)
        finally:
            setattr(web_ws, "WebSocketDataQueue", original)  # noqa: B010
        # What serves HTTP requests is done with once the connection is upgraded
        # (aiohttp reads through the WebSocket parser from then on), but would be
        # held for the life of the connection: about 1.5 KB of each one's memory.
        protocol: Any = args[0].protocol if args else None
        if not getattr(protocol, "_upgraded", False):
            return
        if isinstance(getattr(protocol, "_parser", None), HttpRequestParser):
            protocol._parser = None  # aiohttp checks for None
        messages = getattr(protocol, "_messages", None)
        if type(messages) is deque and not messages:
            protocol._messages = _NO_MORE_REQUESTS
        writer: Any = self._writer
        if getattr(writer, "use_mask", True) is False:
            writer.get_random_bits = _no_mask  # a server's frames are never masked
        if getattr(writer, "compress", 1) == 0 and hasattr(writer, "_background_tasks"):
            # Only compression starts background sends; hubbub does not compress.
            writer._background_tasks = _NO_BACKGROUND_SENDS

    @property
    def direct_queue(self) -> DirectQueue | None:
        """The queue, if aiohttp built ours (it does in the versions we know)."""
        reader = self._reader
        return reader if isinstance(reader, DirectQueue) else None


class TransportOutbox:
    """The :class:`~hubbub.core.outbox.Outbox` of a running server."""

    __slots__ = (
        "_corked",
        "_disconnect",
        "_flush_scheduled",
        "_loop",
        "_max_queue",
        "closes",
        "sent",
        "slow_consumers",
    )

    def __init__(
        self,
        max_send_queue_bytes: int,
        loop: asyncio.AbstractEventLoop,
        disconnect: Callable[[Session], None],
    ) -> None:
        self._max_queue = max_send_queue_bytes
        self._loop = loop
        self._disconnect = disconnect
        self._corked: dict[Connection, list[bytes | memoryview]] = {}
        """Pieces of the frames written this turn of the loop, per connection, in order."""
        self._flush_scheduled = False
        self.sent: dict[bytes, int] = {}
        """Messages queued to clients, each recipient counted, by ``type`` (as bytes)."""
        self.closes: dict[int, int] = {}
        """Connections the server closed, by close code."""
        self.slow_consumers = 0
        """Clients cut off for not reading (4008)."""

    def send(self, session: Session, payload: bytes) -> None:
        n = session.number(payload)
        connection: Connection | None = session.link
        if connection is None:  # detached: kept for a resume, nothing to write to
            return
        transport = connection.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._max_queue:
            self._shed(session, transport)
            return
        self._cork(connection, numbered_frame_head(n, len(payload)), memoryview(payload)[1:])
        kind = _type_of(payload)
        self.sent[kind] = self.sent.get(kind, 0) + 1

    def send_unnumbered(self, session: Session, payload: bytes) -> None:
        connection: Connection | None = session.link
        if connection is None or connection.transport.is_closing():
            return
        self._cork(connection, text_frame(payload), None)

    def replay(self, session: Session, first_n: int, payloads: list[bytes]) -> None:
        connection: Connection | None = session.link
        if connection is None or connection.transport.is_closing():
            return
        for n, payload in enumerate(payloads, first_n):
            self._cork(connection, numbered_frame_head(n, len(payload)), memoryview(payload)[1:])

    def moved(self, link: object, session: Session) -> None:
        connection = link
        if isinstance(connection, Connection):
            connection.session = session

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        tail = memoryview(payload)[1:]
        size = len(payload)
        max_queue = self._max_queue
        corked = self._corked
        queued = 0
        for session in sessions:
            if session.session_id == exclude:
                continue
            n = session.number(payload)
            connection: Connection | None = session.link
            if connection is None:
                continue
            transport = connection.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > max_queue:
                self._shed(session, transport)
                continue
            head = numbered_frame_head(n, size)
            pending = corked.get(connection)
            if pending is None:
                corked[connection] = [head, tail]
            else:
                pending.append(head)
                pending.append(tail)
            queued += 1
        if queued:
            kind = _type_of(payload)
            self.sent[kind] = self.sent.get(kind, 0) + queued
        if corked and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def relay_run(self, sessions: Iterable[Session], run: list[RelayItem]) -> None:
        corked = self._corked
        # A frame goes on after the payload's opening brace (see
        # numbered_frame_head): a copy of the rest, made once per message and
        # written to every member, costs less than a memoryview's slice for a
        # chat-sized message.
        items = [
            (relay, None if relay is None else relay[1:], sender, ack, ack[1:])
            for relay, sender, ack in run
        ]
        relays = acks = 0
        for session in sessions:
            number = session.number
            pending: list[bytes | memoryview] | None = None
            connection: Connection | None = session.link
            if connection is not None:
                transport = connection.transport
                if transport.is_closing():
                    connection = None
                elif transport.get_write_buffer_size() > self._max_queue:
                    self._shed(session, transport)
                    connection = None
                else:
                    pending = corked.get(connection)
            for relay, relay_tail, sender, ack, ack_tail in items:
                if sender is session:
                    payload, tail, is_ack = ack, ack_tail, True
                elif relay is not None and relay_tail is not None:
                    payload, tail, is_ack = relay, relay_tail, False
                else:
                    continue
                n = number(payload)  # a detached session is numbered all the same
                if connection is None:
                    continue
                if is_ack:
                    acks += 1
                else:
                    relays += 1
                if pending is None:
                    pending = corked[connection] = []
                pending.append(numbered_frame_head(n, len(payload)))
                pending.append(tail)
        sent = self.sent
        if relays:
            kind = _type_of(next(relay for relay, _, _ in run if relay is not None))
            sent[kind] = sent.get(kind, 0) + relays
        if acks:
            kind = _type_of(run[0][2])
            sent[kind] = sent.get(kind, 0) + acks
        if corked and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def _cork(self, connection: Connection, head: bytes, tail: memoryview | None) -> None:
        pending = self._corked.get(connection)
        if pending is None:
            self._corked[connection] = pending = [head]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)
        else:
            pending.append(head)
        if tail is not None:
            pending.append(tail)

    def flush(self) -> None:
        """Write every corked frame: one write per connection."""
        self._flush_scheduled = False
        corked, self._corked = self._corked, {}
        for connection, frames in corked.items():
            _write(connection, frames)

    def flush_connection(self, connection: Connection) -> None:
        """Write what is corked for one connection now (before its close frame)."""
        frames = self._corked.pop(connection, None)
        if frames is not None:
            _write(connection, frames)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        connection: Connection | None = session.link
        if connection is None:  # pragma: no cover - the hub ends detached sessions itself
            return
        self.flush_connection(connection)  # what was sent before the close goes first
        if connection.close_task is None and not connection.ws.closed:
            self.closes[code] = self.closes.get(code, 0) + 1
            connection.close_task = self._loop.create_task(
                connection.ws.close(code=code, message=reason.encode())
            )

    def shed_if_backlogged(self, connection: Connection) -> bool:
        """Cut the client off if its queue is over the bound; True if it was.

        A send checks the queue before it adds to it, so a client whose queue went
        over with the last burst it was sent (a batch of stored chat, say) would
        never be checked again while nothing more is sent to it: the liveness
        sweep calls this for every connection.
        """
        session = connection.session
        transport = connection.transport
        if (
            session is None
            or session.closing
            or transport.is_closing()
            or transport.get_write_buffer_size() <= self._max_queue
        ):
            return False
        self._shed(session, transport)
        return True

    def _shed(self, session: Session, transport: asyncio.Transport) -> None:
        """Cut off a client that stopped reading."""
        connection: Connection = session.link
        self._corked.pop(connection, None)
        log.warning(
            "event=slow-consumer session=%s remote=%s queued=%d",
            session.session_id,
            connection.remote,
            transport.get_write_buffer_size(),
        )
        self.slow_consumers += 1
        self.closes[CloseCode.SLOW_CONSUMER] = self.closes.get(CloseCode.SLOW_CONSUMER, 0) + 1
        transport.write(_SLOW_CONSUMER_CLOSE)
        transport.close()  # flushes what it can, then closes
        self._loop.call_later(SLOW_CONSUMER_GRACE, transport.abort)
        # Not now: we may be inside a loop over the room this session leaves.
        session.closing = True
        self._loop.call_soon(self._disconnect, session)


def _type_of(payload: bytes) -> bytes:
    """The ``type`` of an encoded outgoing message: msgspec writes a struct's tag
    first, so every payload starts ``{"type":"``."""
    return payload[9 : payload.find(b'"', 9)]


def _write(connection: Connection, pieces: list[bytes | memoryview]) -> None:
    transport = connection.transport
    # Nothing may follow a close frame: once one is sent (ws.closed), or the
    # transport is going, what is left is dropped.
    if transport.is_closing() or connection.ws.closed:
        return
    transport.writelines(pieces)

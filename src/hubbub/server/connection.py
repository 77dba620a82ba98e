"""Connections as the server adapter holds them, and the outbox that writes to them.

A message is framed once and the same bytes go to every recipient, with no task
and no ``await`` per recipient. Frames are corked: what one turn of the event loop
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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from hubbub.core.session import Session
from hubbub.protocol.errors import CloseCode
from hubbub.server.frames import close_frame, text_frame

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("hubbub.server")

SLOW_CONSUMER_GRACE = 5.0
"""Seconds a slow client's connection may take to flush its close frame before
it is aborted."""

_SLOW_CONSUMER_CLOSE = close_frame(CloseCode.SLOW_CONSUMER, "too slow to read")


class Connection:
    """One accepted WebSocket: its transport, its aiohttp response, its session."""

    __slots__ = (
        "__weakref__",
        "close_task",
        "last_heard",
        "opened_at",
        "pinged_at",
        "remote",
        "session",
        "transport",
        "ws",
    )

    def __init__(self, transport: asyncio.Transport, ws: web.WebSocketResponse, remote: str):
        self.transport = transport
        self.ws = ws
        self.remote = remote
        self.session: Session | None = None
        self.last_heard = 0.0
        self.opened_at = 0.0
        self.pinged_at: float | None = None
        self.close_task: asyncio.Task[bool] | None = None


class TransportOutbox:
    """The :class:`~hubbub.core.outbox.Outbox` of a running server."""

    __slots__ = ("_corked", "_disconnect", "_flush_scheduled", "_loop", "_max_queue")

    def __init__(
        self,
        max_send_queue_bytes: int,
        loop: asyncio.AbstractEventLoop,
        disconnect: Callable[[Session], None],
    ) -> None:
        self._max_queue = max_send_queue_bytes
        self._loop = loop
        self._disconnect = disconnect
        self._corked: dict[Connection, list[bytes]] = {}
        """Frames written this turn of the loop, per connection, in order."""
        self._flush_scheduled = False

    def send(self, session: Session, payload: bytes) -> None:
        connection: Connection = session.link
        transport = connection.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._max_queue:
            self._shed(session, transport)
            return
        self._cork(connection, text_frame(payload))

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        frame = text_frame(payload)
        max_queue = self._max_queue
        corked = self._corked
        for session in sessions:
            if session.session_id == exclude:
                continue
            connection: Connection = session.link
            transport = connection.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > max_queue:
                self._shed(session, transport)
                continue
            pending = corked.get(connection)
            if pending is None:
                corked[connection] = [frame]
            else:
                pending.append(frame)
        if corked and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def _cork(self, connection: Connection, frame: bytes) -> None:
        pending = self._corked.get(connection)
        if pending is None:
            self._corked[connection] = [frame]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)
        else:
            pending.append(frame)

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
        connection: Connection = session.link
        self.flush_connection(connection)  # what was sent before the close goes first
        if connection.close_task is None and not connection.ws.closed:
            connection.close_task = self._loop.create_task(
                connection.ws.close(code=code, message=reason.encode())
            )

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
        transport.write(_SLOW_CONSUMER_CLOSE)
        transport.close()  # flushes what it can, then closes
        self._loop.call_later(SLOW_CONSUMER_GRACE, transport.abort)
        # Not now: we may be inside a loop over the room this session leaves.
        session.closing = True
        self._loop.call_soon(self._disconnect, session)


def _write(connection: Connection, frames: list[bytes]) -> None:
    transport = connection.transport
    # Nothing may follow a close frame: once one is sent (ws.closed), or the
    # transport is going, what is left is dropped.
    if transport.is_closing() or connection.ws.closed:
        return
    transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

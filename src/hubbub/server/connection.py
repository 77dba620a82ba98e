"""Connections as the server adapter holds them, and the outbox that writes to them.

Writes go straight to the transport: a message is framed once and the same bytes
are written to every recipient, with no task and no ``await`` per recipient.
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

    __slots__ = ("_disconnect", "_loop", "_max_queue")

    def __init__(
        self,
        max_send_queue_bytes: int,
        loop: asyncio.AbstractEventLoop,
        disconnect: Callable[[Session], None],
    ) -> None:
        self._max_queue = max_send_queue_bytes
        self._loop = loop
        self._disconnect = disconnect

    def send(self, session: Session, payload: bytes) -> None:
        transport: asyncio.Transport = session.link.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self._max_queue:
            self._shed(session, transport)
            return
        transport.write(text_frame(payload))

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        frame = text_frame(payload)
        max_queue = self._max_queue
        for session in sessions:
            if session.session_id == exclude:
                continue
            transport: asyncio.Transport = session.link.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > max_queue:
                self._shed(session, transport)
                continue
            transport.write(frame)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        connection: Connection = session.link
        if connection.close_task is None and not connection.ws.closed:
            connection.close_task = self._loop.create_task(
                connection.ws.close(code=code, message=reason.encode())
            )

    def _shed(self, session: Session, transport: asyncio.Transport) -> None:
        """Cut off a client that stopped reading."""
        connection: Connection = session.link
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

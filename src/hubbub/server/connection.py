"""WebSocket connections, each its transport's protocol, and the outbox that
writes to them.

A :class:`Connection` reads its client's frames in the transport's read callback
(RFC 6455 section 5: unmasking, fragments, control frames, the close handshake)
and hands each text message to the hub at once.

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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from hubbub.core.outbox import RelayItem
from hubbub.core.session import Session
from hubbub.protocol.errors import CloseCode
from hubbub.server.frames import (
    BINARY,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    FrameError,
    close_frame,
    numbered_frame_head,
    pong_frame,
    read_close,
    read_head,
    text_frame,
    unmask,
)

if TYPE_CHECKING:
    from hubbub.server.websocket import WebSocketEndpoint

log = logging.getLogger("hubbub.server")

SLOW_CONSUMER_GRACE = 5.0
"""Seconds a slow client's connection may take to flush its close frame before
it is aborted."""

CLOSE_TIMEOUT = 2.0
"""Seconds the server waits for a client's answer to its close frame."""

_SLOW_CONSUMER_CLOSE = close_frame(CloseCode.SLOW_CONSUMER, "too slow to read")

_monotonic = time.monotonic


class Connection(asyncio.Protocol):
    """One accepted WebSocket, for its whole life: the protocol of its transport
    from the handshake on. Frames are read and handed to the hub in the read
    callback (no task, no queue, no future per connection or per message); what
    is written goes through the :class:`TransportOutbox`.

    One small object per connection: a partial frame is buffered only while one
    is arriving, a fragmented message only while its fragments are.
    """

    __slots__ = (
        "_buffer",
        "_closer",
        "_fragment_opcode",
        "_fragments",
        "close_received",
        "close_sent",
        "endpoint",
        "last_heard",
        "liveness_bucket",
        "opened_at",
        "pinged_at",
        "remote",
        "session",
        "transport",
    )

    def __init__(
        self, transport: asyncio.Transport, remote: str, endpoint: WebSocketEndpoint
    ) -> None:
        self.transport = transport
        self.remote = remote
        self.endpoint = endpoint
        self.session: Session | None = None
        self.last_heard = 0.0
        self.opened_at = 0.0
        self.pinged_at: float | None = None
        self.liveness_bucket: int | None = None
        self.close_received = False
        """The client sent a close frame, or was closed for breaking the protocol:
        the connection ended, it was not lost."""
        self.close_sent = False
        """A close frame went out: nothing more is written, and only the client's
        close is waited for."""
        self._buffer: bytearray | None = None
        """The start of a frame whose rest has not arrived (None: nothing partial)."""
        self._fragments: bytearray | None = None
        """A fragmented message so far (section 5.4)."""
        self._fragment_opcode = 0
        self._closer: asyncio.TimerHandle | None = None

    # -- reading ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_heard = _monotonic()
        if self.close_received:
            return  # closed already, or out of step after a broken frame: ignored
        buffer = self._buffer
        if buffer is not None:
            buffer += data
            data = buffer  # type: ignore[assignment]
        size = len(data)
        offset = 0
        max_size = self.endpoint.max_frame_bytes
        try:
            while True:
                fragments = self._fragments
                head = read_head(
                    data, offset, max_size if fragments is None else max_size - len(fragments)
                )
                if head is None:
                    break
                first, start, end = head
                if end > size:
                    break
                payload = unmask(data[start + 4 : end], data[start : start + 4])
                offset = end
                if not self._frame(first, payload):
                    return
        except FrameError as error:
            self._broken(error)
            return
        if offset == size:
            self._buffer = None
        elif buffer is not None:
            del buffer[:offset]
        else:
            self._buffer = bytearray(memoryview(data)[offset:])

    def _frame(self, first: int, payload: bytes) -> bool:
        """Take one frame; False: the connection is closing, read nothing more."""
        opcode = first & 0x0F
        if opcode <= BINARY and opcode != CONTINUATION:
            if self._fragments is not None:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "a fragmented message is unfinished")
            if not first & 0x80:
                self._fragments = bytearray(payload)
                self._fragment_opcode = opcode
                return True
        elif opcode == CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "no fragmented message to continue")
            fragments += payload
            if not first & 0x80:
                return True
            payload = bytes(fragments)
            opcode = self._fragment_opcode
            self._fragments = None
        elif opcode == PING:
            if not self.close_sent and not self.transport.is_closing():
                self.transport.write(pong_frame(payload))
            return True
        elif opcode == PONG:
            self.pinged_at = None
            return True
        else:
            self._close_frame(read_close(payload))
            return False
        if opcode == TEXT:
            return self._text(payload)
        if not self.close_sent and self.session is not None:
            self.endpoint.hub.receive_binary(self.session)
        return True

    def _text(self, payload: bytes) -> bool:
        """A whole text message: checked to be UTF-8 (1007), then the hub's."""
        if not payload.isascii():
            try:
                payload.decode()
            except UnicodeDecodeError:
                raise FrameError(CloseCode.INVALID_DATA, "text is not UTF-8") from None
        session = self.session
        # Once the server is closing, what the client sends meanwhile is dropped.
        if not self.close_sent and session is not None:
            self.endpoint.hub.receive(session, payload)
        return True

    def _close_frame(self, code: int | None) -> None:
        """The client's close frame: answered (unless it answers ours), then the
        TCP connection is closed, the server's side first (section 7.1.1)."""
        self.close_received = True
        transport = self.transport
        if not self.close_sent and not transport.is_closing():
            self.close_sent = True
            transport.write(close_frame(code) if code is not None else close_frame_empty())
        transport.close()

    def _broken(self, error: FrameError) -> None:
        """A frame broke the protocol or a limit: close with its code. The stream
        may be out of step (an oversized frame is refused from its head alone), so
        nothing more is read: the close is sent, then our half of the connection
        ends, and the client's answer is waited for as its end of the stream."""
        self.close_received = True  # a leave, not a lost connection
        self._buffer = self._fragments = None
        session = self.session
        log.info(
            "event=protocol-error session=%s remote=%s code=%d reason=%r",
            session.session_id if session else "-",
            self.remote,
            error.code,
            error.reason,
        )
        self.close(error.code, error.reason)
        transport = self.transport
        if not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    def eof_received(self) -> bool:
        return False  # the client is done sending: close

    def pause_writing(self) -> None:
        """The transport's buffer passed its high-water mark, set to
        ``max_send_queue_bytes``: the client has stopped reading. It is cut off
        (4008) once the write under way is done."""
        endpoint = self.endpoint
        endpoint.loop.call_soon(endpoint.outbox.shed_if_backlogged, self)

    def resume_writing(self) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        closer = self._closer
        if closer is not None:
            closer.cancel()
            self._closer = None
        self._buffer = self._fragments = None
        self.endpoint.connection_lost(self)

    # -- closing ---------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> bool:
        """Send a close frame (what is corked for this connection goes first), then
        wait ``CLOSE_TIMEOUT`` for the client's answer before dropping the
        connection. False if a close was sent already or the transport is going."""
        transport = self.transport
        if self.close_sent or transport.is_closing():
            return False
        self.endpoint.outbox.flush_connection(self)
        self.close_sent = True
        transport.write(close_frame(code, reason))
        self._closer = self.endpoint.loop.call_later(CLOSE_TIMEOUT, transport.abort)
        return True


def close_frame_empty() -> bytes:
    """A close frame with no code: the answer to a client's close that gave none."""
    return bytes((0x88, 0))


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

    def forget(self, connection: Connection) -> None:
        """The connection is gone: what is corked for it is dropped."""
        self._corked.pop(connection, None)

    def flush_connection(self, connection: Connection) -> None:
        """Write what is corked for one connection now (before its close frame)."""
        frames = self._corked.pop(connection, None)
        if frames is not None:
            _write(connection, frames)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        connection: Connection | None = session.link
        if connection is None:  # pragma: no cover - the hub ends detached sessions itself
            return
        if connection.close(code, reason):  # what was sent before the close goes first
            self.closes[code] = self.closes.get(code, 0) + 1

    @property
    def max_queue(self) -> int:
        return self._max_queue

    def shed_if_backlogged(self, connection: Connection) -> bool:
        """Cut the client off if its queue is over the bound; True if it was.

        A send checks the queue before it adds to it, so a client whose queue went
        over with the last burst it was sent (a batch of stored chat, say) would
        never be checked again while nothing more is sent to it: its transport
        says when its buffer passes the bound (``Connection.pause_writing``), and
        this is called then.
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
        connection.close_sent = True
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
    # Nothing may follow a close frame: once one is sent, or the transport is
    # going, what is left is dropped.
    if connection.close_sent or transport.is_closing():
        return
    transport.writelines(pieces)

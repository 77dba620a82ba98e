"""The WebSocket endpoint: hubbub's own protocol on the listening socket.

Every accepted TCP connection (TLS already unwrapped, when configured) starts
with a :class:`HandshakeReader`. It reads the request head and, if it is a
WebSocket upgrade on ``/`` or ``/ws``, checks it (:class:`HandshakeGate`),
answers it (101, or a refusal with its JSON body) and hands the transport to a
:class:`Connection` that reads and writes frames itself. Anything else (the web
app, the HTTP API, the admin page, a request that is not valid HTTP) is handed,
with the bytes read so far, to aiohttp's HTTP protocol, as if aiohttp had
accepted the connection: aiohttp serves all of that as before.

So a WebSocket costs a parsed head, a 101 and one small object: no request
object, no router, no response object, no task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from hubbub.protocol.errors import CloseCode
from hubbub.server import upgrade
from hubbub.server.connection import CLOSE_TIMEOUT, Connection, TransportOutbox
from hubbub.server.handshake import SUBPROTOCOL, HandshakeGate, Refusal
from hubbub.server.http_api import ApiError
from hubbub.server.http_protocol import HttpProtocol, now_a_websocket
from hubbub.server.upgrade import UpgradeRequest

if TYPE_CHECKING:
    from hubbub.core import Hub
    from hubbub.server.liveness import Liveness
    from hubbub.server.metrics import ServerMetrics

log = logging.getLogger("hubbub.server")

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a new connection has to send its request head; a connection that
sends nothing (or drips a head byte by byte) is dropped then."""


class WebSocketEndpoint:
    """Handshakes and the open WebSocket connections of one server."""

    def __init__(
        self,
        hub: Hub,
        gate: HandshakeGate,
        outbox: TransportOutbox,
        metrics: ServerMetrics,
        max_frame_bytes: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.hub = hub
        self.gate = gate
        self.outbox = outbox
        self.metrics = metrics
        self.max_frame_bytes = max_frame_bytes
        self.loop = loop
        self.connections: set[Connection] = set()
        self.liveness: Liveness[Connection] | None = None
        """Pings the quiet connections (set by the server)."""
        self.accepting = True
        """False once the server is shutting down: handshakes are refused with 503."""
        self.http_protocol: Callable[[], HttpProtocol] | None = None
        """Makes the protocol that serves plain HTTP (aiohttp's), for the connections
        that are not WebSocket upgrades."""
        self._adopted: dict[Connection, asyncio.Future[None]] = {}
        self._all_gone: asyncio.Future[None] | None = None

    def protocol(self) -> HandshakeReader:
        """The listening socket's protocol factory."""
        return HandshakeReader(self)

    # -- the handshake -------------------------------------------------------------

    def open(self, request: UpgradeRequest, transport: asyncio.Transport) -> Connection:
        """Check and answer an upgrade; on success the 101 is written and the
        connection is open (its session made). Raises :class:`Refusal`."""
        if not self.accepting:
            raise Refusal(503, "shutting-down", "the server is shutting down")
        problem = request.handshake_problem()
        if problem is not None:
            raise Refusal(400, "bad-handshake", problem)
        gate = self.gate
        remote = gate.client_address(request)
        try:
            identity = gate.check(request, remote)
        except Refusal as refusal:
            log.info("event=refused remote=%s status=%d", remote, refusal.status)
            self.metrics.refused(refusal.status)
            raise
        offered = request.header_items("sec-websocket-protocol")
        protocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
        transport.write(upgrade.switching_protocols(request.headers["sec-websocket-key"], protocol))
        # Past this, the transport calls Connection.pause_writing: the client is
        # not reading, and is cut off (4008).
        transport.set_write_buffer_limits(high=self.outbox.max_queue)
        gate.opened(remote)
        connection = Connection(transport, remote, self)
        session = self.hub.connect(connection, identity, host=request.headers.get("host"))
        connection.session = session
        connection.opened_at = now = time.monotonic()
        self.connections.add(connection)
        if self.liveness is not None:
            self.liveness.watch(connection, now)
        else:
            connection.last_heard = now
        self.metrics.connections_opened += 1
        log.info(
            "event=connect session=%s remote=%s path=%s",
            session.session_id,
            remote,
            request.path.decode("latin-1"),
        )
        return connection

    def connection_lost(self, connection: Connection) -> None:
        """A connection's transport is gone: its session is told, its slot freed."""
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        if self.liveness is not None:
            self.liveness.forget(connection)
        self.gate.closed(connection.remote)
        self.outbox.forget(connection)
        # A resume may have given this connection another session.
        session = connection.session
        if session is not None:
            self.hub.disconnect(session, lost=not connection.close_received)
            log.info(
                "event=disconnect session=%s remote=%s seconds=%.1f lost=%s",
                session.session_id,
                connection.remote,
                time.monotonic() - connection.opened_at,
                not connection.close_received,
            )
        adopted = self._adopted.pop(connection, None)
        if adopted is not None and not adopted.done():
            adopted.set_result(None)
        all_gone = self._all_gone
        if all_gone is not None and not self.connections and not all_gone.done():
            all_gone.set_result(None)

    async def adopt(self, request: web.Request) -> web.StreamResponse:
        """An upgrade that reached aiohttp (sent on a connection that carried HTTP
        requests before it): the same checks and answer, then the transport is
        taken from aiohttp. aiohttp's handler waits until the connection ends, so
        that aiohttp neither reads from nor closes it meanwhile."""
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=400)
        head = UpgradeRequest()
        head.method = request.method.encode()
        head.path = request.raw_path.encode()
        head.version = f"{request.version.major}.{request.version.minor}"
        for name, value in request.raw_headers:
            head.on_header(name, value)
        head.remote = request.remote or "-"
        try:
            connection = self.open(head, transport)
        except Refusal as refusal:
            raise ApiError(refusal.status, refusal.code, refusal.message) from None
        now_a_websocket(request)
        transport.set_protocol(connection)
        gone = self._adopted[connection] = self.loop.create_future()
        await gone
        return web.Response()  # not written: the transport is closed by now

    # -- shutdown ----------------------------------------------------------------------

    async def close_all(self, code: CloseCode, reason: str) -> None:
        """Close every connection with ``code``; wait ``CLOSE_TIMEOUT`` (and a
        little) for them to go, then drop those that have not."""
        self.accepting = False
        connections = list(self.connections)
        for connection in connections:
            connection.close(code, reason)
        if self.connections:
            self._all_gone = self.loop.create_future()
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT + 0.5):
                    await self._all_gone
            except TimeoutError:
                pass
            finally:
                self._all_gone = None
        for connection in list(self.connections):
            connection.transport.abort()


class HandshakeReader(asyncio.Protocol):
    """A new connection until its request head is read: then a WebSocket
    (:class:`Connection`), or aiohttp's HTTP protocol. Until it is a WebSocket, it
    counts against its address's ``max_http_connections_per_ip``; past that bound it
    is closed as soon as it is accepted."""

    __slots__ = ("_buffer", "_counted", "_peer", "_timer", "endpoint", "transport")

    def __init__(self, endpoint: WebSocketEndpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._peer = "-"
        self._counted = ""
        """The key of the address this connection counts against (empty: none)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP (or TLS) transport; uvloop's are not subclasses of asyncio.Transport.
        stream: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = stream
        peer = stream.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) else "-"
        endpoint = self.endpoint
        counted = endpoint.gate.http_opened(self._peer)
        if counted is None:
            log.info("event=refused remote=%s reason=address-http-connection-limit", self._peer)
            endpoint.metrics.connections_dropped += 1
            stream.abort()
            return
        self._counted = counted
        self._timer = endpoint.loop.call_later(HANDSHAKE_TIMEOUT, stream.abort)

    def data_received(self, data: bytes) -> None:
        searched = max(0, len(self._buffer) - 3)
        buffer = self._buffer = self._buffer + data
        end = buffer.find(b"\r\n\r\n", searched)
        if end < 0:
            if len(buffer) > upgrade.MAX_HEAD_BYTES:
                self._to_http()
            return
        end += 4
        request = upgrade.read_request(buffer[:end])
        if request is None or not request.is_websocket:
            self._to_http()
            return
        self._stop_timer()
        self._uncount()  # counted as a WebSocket by the gate, if it is let in
        transport = self.transport
        assert transport is not None
        request.remote = self._peer
        try:
            connection = self.endpoint.open(request, transport)
        except Refusal as refusal:
            transport.write(upgrade.refusal(refusal.status, refusal.code, refusal.message))
            transport.close()
            return
        transport.set_protocol(connection)
        rest = buffer[end:]
        self._buffer = b""
        if rest:  # frames sent before the 101 arrived
            connection.data_received(rest)

    def _to_http(self) -> None:
        """Not a WebSocket: aiohttp takes the connection, and what was read of it. It
        still counts against its address, until aiohttp's protocol loses it."""
        self._stop_timer()
        transport = self.transport
        factory = self.endpoint.http_protocol
        if transport is None or factory is None:  # pragma: no cover - set at start
            return
        http = factory()
        if self._counted:
            http.on_gone = partial(self.endpoint.gate.http_closed, self._counted)
            self._counted = ""
        transport.set_protocol(http)
        http.connection_made(transport)
        data, self._buffer = self._buffer, b""
        http.data_received(data)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _uncount(self) -> None:
        if self._counted:
            self.endpoint.gate.http_closed(self._counted)
            self._counted = ""

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self._uncount()

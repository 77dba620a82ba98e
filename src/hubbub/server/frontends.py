"""The front-ends on the wire: PeerJS at ``/peerjs``, y-webrtc at ``/y-webrtc``, a
WebTorrent tracker at ``/announce``, on hubbub's one port.

This adapter moves bytes only. A connection is accepted (the connection limits and
origins of :class:`~hubbub.server.handshake.HandshakeGate`, and a ``?token=``), its
frames go to :meth:`Hub.receive_frontend` with the front-end's codec, and what the
core sends its sessions goes out through :class:`FrontendOutbox`, written as the
front-end's own bytes: one frame made per message, the same bytes for every
recipient, corked until the end of the loop's turn like hubbub's own.

``FrontendOutbox`` sits in front of the server's :class:`TransportOutbox`: a
session whose link is a :class:`FrontendLink` is served here, every other one
there. It also turns what the core sends every session into the front-end's form
(an ``error`` becomes PeerJS's ``ERROR`` or a tracker's ``failure reason``; a
``reconnect`` at shutdown is dropped: these clients reconnect on the close).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, hdrs, web

from hubbub import __version__
from hubbub.auth import TokenError
from hubbub.auth.admission import AuthMode
from hubbub.auth.grants import Identity
from hubbub.core.outbox import Outbox, RelayItem
from hubbub.core.session import Session
from hubbub.protocol import peerjs, tracker, y_webrtc
from hubbub.protocol.errors import CloseCode
from hubbub.server.frames import close_frame, text_frame
from hubbub.server.http_api import ApiError
from hubbub.server.http_protocol import now_a_websocket

if TYPE_CHECKING:
    from hubbub.server.app import HubServer
    from hubbub.server.metrics import Exposition

log = logging.getLogger("hubbub.server")

SLOW_CONSUMER_GRACE = 5.0
"""Seconds a client cut off for not reading has to take its close frame."""

CLOSE_TIMEOUT = 2.0
"""Seconds a close waits for the client's answer."""

BINARY_FRAME = b"\x00"
"""What a binary frame is handed to the core as: none of these protocols has binary
frames, and every codec refuses this one as not JSON, in its own form (after the
message budget has counted it, as any frame)."""

PEERJS_PATH = "/peerjs"
Y_WEBRTC_PATH = "/y-webrtc"
TRACKER_PATH = "/announce"

_DECODERS: dict[str, Callable[[str | bytes, int], Any]] = {
    "peerjs": peerjs.decode,
    "y-webrtc": y_webrtc.decode,
    "tracker": tracker.decode,
}


class _HubbubError(msgspec.Struct):
    message: str


_hubbub_error = msgspec.json.Decoder(_HubbubError)


class FrontendLink:
    """One front-end connection: its transport, its aiohttp response, its session."""

    __slots__ = ("__weakref__", "close_task", "protocol", "remote", "session", "transport", "ws")

    def __init__(
        self, protocol: str, ws: web.WebSocketResponse, transport: asyncio.Transport, remote: str
    ) -> None:
        self.protocol = protocol
        self.ws = ws
        self.transport = transport
        self.remote = remote
        self.session: Session | None = None
        self.close_task: asyncio.Task[bool] | None = None

    def translate(self, payload: bytes) -> bytes | None:
        """What the client gets for a message of hubbub's own the core sends every
        session (``None``: nothing); a front-end's own bytes go as they are."""
        if payload.startswith(b'{"type":"reconnect"'):
            return None
        if not payload.startswith(b'{"type":"error"') or self.protocol == "y-webrtc":
            return payload
        try:
            message = _hubbub_error.decode(payload).message
        except msgspec.DecodeError:  # pragma: no cover - the core encodes its errors
            message = "error"
        if self.protocol == "peerjs":
            return peerjs.error(message)
        return tracker.failure(message)


class FrontendOutbox:
    """The hub's outbox: front-end sessions here, the others to ``inner``."""

    __slots__ = (
        "_corked",
        "_disconnect",
        "_flush_scheduled",
        "_inner",
        "_loop",
        "_max_queue",
        "sent",
        "slow_consumers",
    )

    def __init__(
        self,
        inner: Outbox,
        max_send_queue_bytes: int,
        loop: asyncio.AbstractEventLoop,
        disconnect: Callable[[Session], None],
    ) -> None:
        self._inner = inner
        self._max_queue = max_send_queue_bytes
        self._loop = loop
        self._disconnect = disconnect
        self._corked: dict[FrontendLink, list[bytes]] = {}
        self._flush_scheduled = False
        self.sent: dict[str, int] = {"peerjs": 0, "y-webrtc": 0, "tracker": 0}
        """Messages queued to front-end clients, by front-end."""
        self.slow_consumers = 0

    # -- the Outbox interface ---------------------------------------------------------

    def send(self, session: Session, payload: bytes) -> None:
        link = session.link
        if type(link) is not FrontendLink:
            self._inner.send(session, payload)
            return
        translated = link.translate(payload)
        if translated is not None:
            self._write(session, link, text_frame(translated))

    def send_unnumbered(self, session: Session, payload: bytes) -> None:
        if type(session.link) is FrontendLink:
            self.send(session, payload)
        else:
            self._inner.send_unnumbered(session, payload)

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        members = iter(sessions)
        first = next(members, None)
        if first is None:
            return
        everyone = itertools.chain((first,), members)
        if type(first.link) is not FrontendLink:
            self._inner.broadcast(everyone, payload, exclude)
            return
        frame: bytes | None = None
        for session in everyone:
            link = session.link
            if session.session_id == exclude or type(link) is not FrontendLink:
                continue
            if frame is None:
                translated = link.translate(payload)
                if translated is None:
                    return
                frame = text_frame(translated)
            self._write(session, link, frame)

    def relay_run(self, sessions: Iterable[Session], run: list[RelayItem]) -> None:
        self._inner.relay_run(sessions, run)  # stored chat: hubbub's own rooms only

    def replay(self, session: Session, first_n: int, payloads: list[bytes]) -> None:
        self._inner.replay(session, first_n, payloads)

    def moved(self, link: object, session: Session) -> None:
        self._inner.moved(link, session)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        link = session.link
        if type(link) is not FrontendLink:
            self._inner.close(session, code, reason)
            return
        self.flush_link(link)
        if link.close_task is None and not link.ws.closed:
            link.close_task = self._loop.create_task(
                link.ws.close(code=code, message=reason.encode()[:120])
            )

    # -- writing ------------------------------------------------------------------------

    def _write(self, session: Session, link: FrontendLink, frame: bytes) -> None:
        transport = link.transport
        if transport.is_closing() or link.close_task is not None:
            return
        if transport.get_write_buffer_size() > self._max_queue:
            self._shed(session, link)
            return
        self.sent[link.protocol] += 1
        pending = self._corked.get(link)
        if pending is None:
            self._corked[link] = [frame]
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self.flush)
        else:
            pending.append(frame)

    def flush(self) -> None:
        """Write every corked frame: one write per connection."""
        self._flush_scheduled = False
        corked, self._corked = self._corked, {}
        for link, frames in corked.items():
            transport = link.transport
            if not transport.is_closing() and link.close_task is None:
                transport.writelines(frames)

    def forget(self, link: FrontendLink) -> None:
        """The connection is gone: what is corked for it is dropped."""
        self._corked.pop(link, None)

    def flush_link(self, link: FrontendLink) -> None:
        frames = self._corked.pop(link, None)
        if frames is not None and not link.transport.is_closing():
            link.transport.writelines(frames)

    def _shed(self, session: Session, link: FrontendLink) -> None:
        """Cut off a client that stopped reading (4008)."""
        self._corked.pop(link, None)
        transport = link.transport
        log.warning(
            "event=slow-consumer protocol=%s remote=%s queued=%d",
            link.protocol,
            link.remote,
            transport.get_write_buffer_size(),
        )
        self.slow_consumers += 1
        transport.write(close_frame(CloseCode.SLOW_CONSUMER, "too slow to read"))
        transport.close()
        self._loop.call_later(SLOW_CONSUMER_GRACE, transport.abort)
        owner = link.session
        if owner is not None and not owner.closing:
            owner.closing = True
            self._loop.call_soon(self._disconnect, owner)

    def __getattr__(self, name: str) -> Any:
        # What the server asks its outbox (flush, metrics...) is the inner one's.
        return getattr(self._inner, name)


class _Head:
    """What the handshake gate reads of a request (its address and headers), whether
    it asks as aiohttp's request does (``headers``) or as a parsed head (``header``)."""

    __slots__ = ("headers", "remote")

    def __init__(self, request: web.Request) -> None:
        self.headers = request.headers
        self.remote = request.remote or "-"

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_items(self, name: str) -> list[str]:
        return [
            item.strip()
            for value in self.headers.getall(name, [])
            for item in value.split(",")
            if item.strip()
        ]


class Frontends:
    """The front-ends' routes, connections and metrics for one server."""

    def __init__(self, server: HubServer) -> None:
        self.server = server
        self.hub = server.hub
        settings = server.settings
        self.enabled = frozenset(settings.frontend)
        self.discovery = settings.peerjs_discovery
        self.links: set[FrontendLink] = set()
        self.opened: dict[str, int] = dict.fromkeys(("peerjs", "y-webrtc", "tracker"), 0)
        self.handshakes_refused: dict[str, int] = dict.fromkeys(self.opened, 0)
        self.outbox: FrontendOutbox = server.hub_outbox  # type: ignore[assignment]

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        if "peerjs" in self.enabled:
            router.add_get(PEERJS_PATH + "/peerjs", self.peerjs_socket)
            for path in (PEERJS_PATH, PEERJS_PATH + "/"):
                router.add_get(path, self.peerjs_info)
                router.add_route("OPTIONS", path, self.preflight)
            router.add_get(PEERJS_PATH + "/{key}/id", self.peerjs_id)
            router.add_get(PEERJS_PATH + "/{key}/peers", self.peerjs_peers)
            router.add_route("OPTIONS", PEERJS_PATH + "/{key}/{what}", self.preflight)
        if "y-webrtc" in self.enabled:
            router.add_get(Y_WEBRTC_PATH, self.y_webrtc_socket)
        if "tracker" in self.enabled:
            router.add_get(TRACKER_PATH, self.tracker_socket)
        app.on_shutdown.append(self.shutdown)
        self.server.metric_sources.append(self.add_metrics)

    # -- PeerJS over HTTP -------------------------------------------------------------

    def _cors(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """The reference server reflects the page's origin; hubbub does, unless an
        allow-list of origins is set and this one is not on it."""
        origin = request.headers.get(hdrs.ORIGIN)
        allowed = self.server.settings.allowed_origin
        if origin is not None and (not allowed or origin.lower() in allowed):
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.VARY] = "Origin"
        return response

    async def preflight(self, request: web.Request) -> web.StreamResponse:
        response = web.Response(status=204)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, OPTIONS"
        asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
        if asked:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
        return self._cors(request, response)

    async def peerjs_info(self, request: web.Request) -> web.StreamResponse:
        body = {
            "name": "hubbub",
            "description": "A PeerJS server (hubbub's PeerJS front-end).",
            "version": __version__,
        }
        return self._cors(request, web.json_response(body))

    def _key(self, request: web.Request) -> str:
        key = request.match_info["key"]
        if key not in self.hub.frontends.settings.peerjs_keys:
            raise self._cors_error(request, 401, peerjs.INVALID_KEY)
        return key

    def _cors_error(self, request: web.Request, status: int, text: str) -> web.HTTPException:
        error = web.HTTPException(text=text)
        error.set_status(status)
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None:
            error.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            error.headers[hdrs.VARY] = "Origin"
        return error

    async def peerjs_id(self, request: web.Request) -> web.StreamResponse:
        """A fresh id nobody holds (the reference server's: a UUID, as text/html)."""
        self._key(request)
        response = web.Response(text=str(uuid.uuid4()), content_type="text/html")
        return self._cors(request, response)

    async def peerjs_peers(self, request: web.Request) -> web.StreamResponse:
        """The key's peers, on every node, when discovery is on (401 otherwise)."""
        key = self._key(request)
        if not self.discovery:
            raise self._cors_error(request, 401, "Unauthorized")
        room_name = peerjs.room_name(key)
        members = await self.server.broker.room_members(room_name)
        if members is not None:
            ids = [member.user_id for member in members]
        else:
            room = self.hub.rooms.get(room_name)
            ids = list(room.members) if room is not None else []
        return self._cors(request, web.json_response(ids))

    # -- the WebSockets -------------------------------------------------------------------

    async def peerjs_socket(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        key, peer_id, token = query.get("key", ""), query.get("id", ""), query.get("token", "")
        return await self._serve(
            request,
            "peerjs",
            None,
            lambda link: self.hub.open_peerjs(link, key, peer_id, token),
        )

    async def y_webrtc_socket(self, request: web.Request) -> web.StreamResponse:
        identity = self._query_token(request, "y-webrtc")
        return await self._serve(
            request, "y-webrtc", identity, lambda link: self.hub.open_y_webrtc(link, identity)
        )

    async def tracker_socket(self, request: web.Request) -> web.StreamResponse:
        identity = self._query_token(request, "tracker")
        return await self._serve(
            request, "tracker", identity, lambda link: self.hub.open_tracker(link, identity)
        )

    def _query_token(self, request: web.Request, protocol: str) -> Identity | None:
        """The identity of ``?token=``; in token mode, one is required."""
        token = request.query.get("token")
        admission = self.hub.admission
        if token is None:
            if admission.mode is AuthMode.TOKEN:
                self.handshakes_refused[protocol] += 1
                raise ApiError(401, "token-required", "this server admits only with ?token=")
            return None
        try:
            return admission.identify(token)
        except TokenError as error:
            self.handshakes_refused[protocol] += 1
            raise ApiError(401, error.code.value, error.message) from None

    def _admit(self, request: web.Request, protocol: str) -> str:
        """The connection limits and origins hubbub's own WebSockets are held to;
        returns the client's address."""
        gate = self.server.gate
        head: Any = _Head(request)
        remote = gate.client_address(head)
        try:
            gate.check(head, remote)
        except Exception as refusal:
            status = getattr(refusal, "status", None)
            if not isinstance(status, int):
                raise
            log.info("event=refused protocol=%s remote=%s status=%d", protocol, remote, status)
            self.handshakes_refused[protocol] += 1
            self.server.metrics.refused(status)
            if isinstance(refusal, ApiError):
                raise
            # The gate's own refusal, when it is not an HTTP answer already.
            code = str(getattr(refusal, "code", "refused"))
            raise ApiError(status, code, str(getattr(refusal, "message", refusal))) from None
        return remote

    async def _serve(
        self,
        request: web.Request,
        protocol: str,
        identity: Identity | None,
        open_session: Callable[[FrontendLink], Session],
    ) -> web.StreamResponse:
        server = self.server
        if server.shutting_down:
            raise ApiError(503, "shutting-down", "the server is shutting down")
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            raise ApiError(400, "bad-handshake", "a WebSocket endpoint: send an upgrade")
        remote = self._admit(request, protocol)
        gate = server.gate
        gate.opened(remote)
        hub = self.hub
        try:
            limits = server.limits
            ws = web.WebSocketResponse(
                autoping=True,
                heartbeat=limits.ping_interval,
                compress=False,
                max_msg_size=limits.max_frame_bytes,
                timeout=CLOSE_TIMEOUT,
            )
            await ws.prepare(request)
            now_a_websocket(request)
            transport = request.transport
            if transport is None:  # the client went away during the handshake
                return ws
            link = FrontendLink(protocol, ws, transport, remote)
            self.links.add(link)
            self.opened[protocol] += 1
            opened_at = time.monotonic()
            session = link.session = open_session(link)
            log.info(
                "event=connect protocol=%s session=%s remote=%s",
                protocol,
                session.session_id,
                remote,
            )
            decode = _DECODERS[protocol]
            receive = hub.receive_frontend
            try:
                async for message in ws:
                    if message.type is WSMsgType.TEXT:
                        receive(session, message.data, decode, protocol)
                    elif message.type is WSMsgType.BINARY:
                        receive(session, BINARY_FRAME, decode, protocol)
            finally:
                self.links.discard(link)
                self.outbox.forget(link)
                hub.disconnect(session)
                log.info(
                    "event=disconnect protocol=%s session=%s remote=%s code=%s seconds=%.1f",
                    protocol,
                    session.session_id,
                    remote,
                    ws.close_code,
                    time.monotonic() - opened_at,
                )
            return ws
        finally:
            gate.closed(remote)

    async def shutdown(self, app: web.Application) -> None:
        """Every front-end connection is closed with 1001 (going away)."""
        closing = [
            link.ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")
            for link in list(self.links)
        ]
        if closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT + 0.5):
                    await asyncio.gather(*closing, return_exceptions=True)
        for link in list(self.links):
            if not link.transport.is_closing():
                link.transport.abort()

    # -- metrics ---------------------------------------------------------------------------

    def add_metrics(self, out: Exposition) -> None:
        frontends = self.hub.frontends
        protocols = sorted(self.enabled)
        out.family("hubbub_frontend_connections", "gauge", "Open connections of each front-end.")
        for protocol in protocols:
            out.sample(
                "hubbub_frontend_connections",
                sum(1 for link in self.links if link.protocol == protocol),
                {"protocol": protocol},
            )
        counters = (
            ("connections_opened", "Connections of each front-end accepted.", self.opened),
            (
                "handshakes_refused",
                "Connections to each front-end refused at the handshake (limits, origin, token).",
                self.handshakes_refused,
            ),
            (
                "messages_received",
                "Messages received and decoded, by front-end.",
                frontends.received,
            ),
            (
                "messages_sent",
                "Messages sent, each recipient counted, by front-end.",
                self.outbox.sent,
            ),
            (
                "refused",
                "Frames and requests refused, by front-end (bad frames, taken ids, limits).",
                frontends.refused,
            ),
        )
        for name, help, values in counters:
            metric = f"hubbub_frontend_{name}_total"
            out.family(metric, "counter", help)
            for protocol in protocols:
                out.sample(metric, values.get(protocol, 0), {"protocol": protocol})
        out.single(
            "hubbub_peerjs_queued_messages",
            "gauge",
            "Messages kept for PeerJS peers that are not connected (yet).",
            frontends.peerjs.queued,
        )
        out.single(
            "hubbub_peerjs_expired_total",
            "counter",
            "EXPIRE messages sent: what a PeerJS peer sent to an absent one, unread in time.",
            frontends.peerjs.expired,
        )
        out.single(
            "hubbub_tracker_offers_total",
            "counter",
            "WebRTC offers a tracker handed to peers of a swarm.",
            frontends.tracker.offers,
        )
        out.single(
            "hubbub_tracker_answers_total",
            "counter",
            "WebRTC answers a tracker handed back to the peers that made the offers.",
            frontends.tracker.answers,
        )

"""The aiohttp application: the WebSocket endpoint and plain HTTP on one port.

This adapter moves bytes between sockets and the sans-I/O :class:`~hubbub.core.Hub`;
it decides nothing about rooms or messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

from hubbub import __version__
from hubbub.auth import (
    Admission,
    AuthMode,
    KeyConfigError,
    TokenVerifier,
    VerificationKeys,
)
from hubbub.auth.turn import IceServerConfig
from hubbub.broker import Broker, Membership
from hubbub.broker.memory import LocalMembership, MemoryBroker
from hubbub.broker.redis import RedisBroker
from hubbub.core import Hub, Outbox, Session
from hubbub.core.frontends import FrontendSettings
from hubbub.media.modes import MediaSetting
from hubbub.media.placements import LocalPlacements, Placements
from hubbub.protocol.errors import CloseCode
from hubbub.server import admin_api, frontends, ice_api, metrics, rooms_api, users_api, web_app
from hubbub.server.connection import Connection, TransportOutbox
from hubbub.server.frames import PING_FRAME
from hubbub.server.handshake import HandshakeGate
from hubbub.server.http_api import Api, ApiError, bearer_matches, json_errors
from hubbub.server.http_protocol import name_the_server
from hubbub.server.liveness import Liveness
from hubbub.server.media import MediaBridge, create_media_servers
from hubbub.server.metrics import Exposition, ServerMetrics
from hubbub.server.storage import StoreBridge, create_store
from hubbub.server.stun import StunServer
from hubbub.server.webhooks import Webhooks
from hubbub.server.websocket import WebSocketEndpoint
from hubbub.settings import ServerSettings, SettingsError

log = logging.getLogger("hubbub.server")

STATIC_DIR = Path(str(resources.files("hubbub") / "web" / "static"))

CORE_TICK_MAX = 0.5
"""Seconds the server lets pass at most between two calls of the core's timers."""

SHUTDOWN_HANDOVER_WAIT = 3.0
"""Seconds a shutting-down cluster node waits for the other nodes to take its
sessions; the clients of those not taken by then join afresh."""

SHUTDOWN_STORE_WAIT = 1.0
"""Seconds a shutdown waits for the chat already accepted to be stored before it
tells the clients to go (what is left is still written before the store closes)."""


ReadinessCheck = Callable[[], Awaitable[bool]]

MetricSource = Callable[[Exposition], None]
"""Adds metric families of one part (the store, webhooks...) to a scrape."""


class HubServer:
    """A hub with the connections it serves; one per server process."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self._loop = asyncio.get_running_loop()
        self.outbox = TransportOutbox(
            self.limits.max_send_queue_bytes, self._loop, self._disconnect
        )
        try:
            self.keys = VerificationKeys.load(settings.token_secret, settings.token_public_key)
        except KeyConfigError as exc:
            raise SettingsError(str(exc)) from None
        verifier = (
            TokenVerifier(self.keys, max_user_id_length=self.limits.max_user_id_length)
            if self.keys
            else None
        )
        self.admission = Admission(AuthMode(settings.auth), verifier)
        self.gate = HandshakeGate(
            self.limits, self.admission, settings.allowed_origin, settings.trusted_proxy
        )
        self.ice_servers = ice_servers = IceServerConfig(
            stun_uris=settings.stun_uri,
            public_host=settings.public_host,
            turn_uris=settings.turn_uri,
            turn_secret=settings.turn_secret,
            turn_ttl=settings.turn_ttl,
        )
        self.metrics = ServerMetrics()
        self.metric_sources: list[MetricSource] = []
        self.storage = StoreBridge(create_store(settings), settings)
        self.storage.writer.on_commit = self.metrics.store_writes.observe
        self.broker, self.membership, placements = create_broker(settings)
        self.media = MediaBridge(
            create_media_servers(settings),
            placements,
            orphan_sweep=settings.cluster_node_timeout,
        )
        self.hub_outbox: Outbox = self.outbox
        """What the hub writes through: the outbox, with the front-ends' in front of it
        when any is served (see hubbub.server.frontends)."""
        if settings.frontend:
            self.hub_outbox = frontends.FrontendOutbox(
                self.outbox, self.limits.max_send_queue_bytes, self._loop, self._disconnect
            )
        self.hub = Hub(
            self.hub_outbox,
            storage=self.storage,
            broker=self.broker,
            membership=self.membership,
            new_session_id=self.membership.new_session_id,
            # In a cluster a call id, like a session id, names the node that holds it.
            new_call_id=self.membership.new_session_id,
            limits=self.limits,
            admission=self.admission,
            ice_servers=ice_servers,
            history_on_join=settings.history_on_join,
            offline_on_join=settings.offline_on_join,
            retention=self.storage.retention,
            # A room's chat comes in seq order on every node when one store numbers
            # it for all of them; nodes that keep their own history number their own.
            chat_in_seq_order=settings.broker == "memory" or settings.database_url is not None,
            chat_gap_timeout=settings.chat_gap_timeout,
            chat_gap_max_held=settings.chat_gap_max_held,
            frontends=FrontendSettings(
                peerjs_keys=tuple(settings.peerjs_key),
                peerjs_alive_timeout=settings.peerjs_alive_timeout,
                peerjs_expire_timeout=settings.peerjs_expire_timeout,
                tracker_interval=settings.tracker_interval,
            ),
            media=self.media if self.media.available else None,
            media_mode=MediaSetting(settings.media_mode),
            mesh_max_participants=settings.mesh_max_participants,
        )
        self.media.attach(self.hub.backend_events)
        if self.media.available:
            self.metric_sources.append(self.media.add_metrics)
        self.webhooks = Webhooks(settings) if settings.webhook_url else None
        if self.webhooks is not None:
            self.hub.rooms.observer = self.webhooks.queue
            self.hub.observer = self.webhooks.queue
            self.metric_sources.append(self.webhooks.add_metrics)
        self.storage.attach(self.hub.backend_events)
        self.stun: StunServer | None = None
        self.endpoint = WebSocketEndpoint(
            self.hub, self.gate, self.outbox, self.metrics, self.limits.max_frame_bytes, self._loop
        )
        self.connections = self.endpoint.connections
        """The open WebSocket connections."""
        self.liveness: Liveness[Connection] = Liveness(
            self.limits.ping_interval,
            self.limits.ping_timeout,
            ping=self._ping,
            timed_out=self._timed_out,
        )
        self.endpoint.liveness = self.liveness
        self._liveness: asyncio.Task[None] | None = None
        self._timers: asyncio.Task[None] | None = None
        self._shutting_down = False
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        """What ``/readyz`` asks: name -> a check that returns True when that part
        (the store, the broker...) is reachable."""
        self.readiness_checks["store"] = self._store_reachable
        self.readiness_checks["broker"] = self.broker.health
        if self.media.available:
            self.readiness_checks["media"] = self.media.health

    async def _store_reachable(self) -> bool:
        """The store answers a small read."""
        await self.storage.store.rooms(1)
        return True

    # -- the WebSocket endpoint -----------------------------------------------

    async def handle_websocket(
        self, request: web.Request, *, web_app: bool = False
    ) -> web.StreamResponse:
        """What reaches aiohttp at a WebSocket path: with ``web_app``, a plain GET
        gets the web app's page. An upgrade comes here only when it was sent on a
        connection that carried HTTP requests before it (a new connection's
        upgrade never reaches aiohttp: see :mod:`hubbub.server.websocket`)."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            if web_app:
                return _static_file("index.html")
            raise ApiError(400, "bad-handshake", "a WebSocket endpoint: send an upgrade")
        return await self.endpoint.adopt(request)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def _disconnect(self, session: Session) -> None:
        self.hub.disconnect(session)

    # -- liveness -------------------------------------------------------------

    async def _liveness_sweep(self) -> None:
        """Ping quiet clients; drop those that answer nothing in time
        (:mod:`hubbub.server.liveness`). (A client whose outgoing queue passes its
        bound is cut off by its transport's signal, ``Connection.pause_writing``, not
        here.)"""
        liveness = self.liveness
        period = liveness.period
        loop = self._loop
        while True:
            due = loop.time() + period
            await asyncio.sleep(period)
            self.metrics.event_loop_lag = max(0.0, loop.time() - due)
            liveness.sweep(time.monotonic())

    @staticmethod
    def _ping(connection: Connection) -> bool:
        transport = connection.transport
        if transport.is_closing():
            return False
        transport.write(PING_FRAME)
        return True

    @staticmethod
    def _timed_out(connection: Connection) -> None:
        session = connection.session
        log.info(
            "event=timeout session=%s remote=%s",
            session.session_id if session else "-",
            connection.remote,
        )
        connection.transport.abort()

    async def _core_timers(self) -> None:
        """Call the core when its next deadline comes (see ``Hub.tick``), and at
        least every ``CORE_TICK_MAX`` seconds, for deadlines set meanwhile."""
        hub = self.hub
        while True:
            hub.tick()
            deadline = hub.next_deadline()
            wait = CORE_TICK_MAX
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(wait)

    # -- lifecycle --------------------------------------------------------------

    async def start(self, app: web.Application) -> None:
        if self.webhooks is not None:
            await self.webhooks.start()
        await self.storage.start()
        await self.broker.start()
        await self.media.start()
        await self._start_stun()
        self._liveness = asyncio.create_task(self._liveness_sweep())
        self._timers = asyncio.create_task(self._core_timers())

    async def _start_stun(self) -> None:
        """The built-in STUN server, when it is on; a port that cannot be had leaves
        it off (and unannounced) with a warning, not the whole server down."""
        settings = self.settings
        if not settings.stun_port:
            return
        stun = StunServer(settings.host, settings.stun_port)
        try:
            port = await stun.start()
        except OSError as exc:
            log.warning(
                "event=stun-unavailable port=%d detail=%r",
                settings.stun_port,
                f"{exc.strerror or exc}: no built-in STUN server (see --stun-port)",
            )
            return
        self.stun = stun
        self.ice_servers.builtin_stun_port = port
        log.info("event=stun-listening host=%s port=%d", settings.host, port)

    async def cleanup(self, app: web.Application) -> None:
        """After the connections are gone: write what is queued, close the store,
        then deliver the last events (their leaving, the last chat stored)."""
        if self.stun is not None:
            self.stun.stop()
        # Every session leaves its room before the store closes, so that what
        # leaving writes (last-seen times) is written too.
        for session in list(self.hub.sessions.values()):
            self.hub.disconnect(session)
        try:
            await self.storage.stop()
        except Exception:
            log.exception("event=store-close-failed")
        if self.webhooks is not None:
            await self.webhooks.stop()
        # After the store: chat written at the end is still relayed.
        await self.broker.stop()
        await self.media.stop()

    async def shutdown(self, app: web.Application) -> None:
        """Stop reading, store what was accepted, tell every client when to come
        back (``reconnect``), then close every connection with 1001 (going away)."""
        self._shutting_down = True
        self.endpoint.accepting = False
        for task in (self._liveness, self._timers):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        hub = self.hub
        hub.stop_input()
        # Chat already accepted is stored, relayed and acknowledged before the close.
        try:
            async with asyncio.timeout(SHUTDOWN_STORE_WAIT):
                await self.storage.writer.drain()
        except TimeoutError:
            log.warning("event=shutdown-store-slow pending=%d", len(self.storage.writer))
        spread_ms = int(self.settings.reconnect_spread * 1000)
        # In a cluster, the other nodes take this node's sessions first: each client
        # is told to come back and resume as its session is taken.
        given = hub.hand_over_all(spread_ms)
        if given:
            loop = self._loop
            deadline = loop.time() + SHUTDOWN_HANDOVER_WAIT
            while hub.handing_over and loop.time() < deadline:  # noqa: ASYNC110 - the core has no event
                await asyncio.sleep(0.02)
            log.info("event=shutdown-handover given=%d left=%d", given, hub.handing_over)
        told = hub.announce_restart(spread_ms)
        self.outbox.flush()  # what was sent before the shutdown goes before the close
        if self.connections:
            log.info("event=shutdown connections=%d told=%d", len(self.connections), told)
        # Each connection gets CLOSE_TIMEOUT to answer the close; whoever has not
        # by then is dropped, whatever the clients do.
        await self.endpoint.close_all(CloseCode.GOING_AWAY, "server shutting down")


def create_broker(settings: ServerSettings) -> tuple[Broker, Membership, Placements]:
    """The broker, the membership and the rooms' placements on the media servers the
    settings name: the in-memory twins of a lone node, or Redis, which is all three
    for a cluster node."""
    if settings.broker == "memory":
        return MemoryBroker(), LocalMembership(), LocalPlacements()
    broker = RedisBroker(
        settings.broker,
        heartbeat=settings.cluster_heartbeat,
        node_timeout=settings.cluster_node_timeout,
        max_pending=settings.broker_max_pending,
    )
    return broker, broker, broker.placements()


def _cluster_status(broker: Broker) -> dict[str, object]:
    status = broker.status()
    if status is None:
        return {}
    return {
        "cluster": {
            "node": status.node,
            "connected": status.connected,
            "sent": status.sent,
            "dropped": status.dropped,
            "pending": status.pending,
            "lagSeconds": round(status.lag_seconds, 6),
        }
    }


def _media_status(media: MediaBridge) -> dict[str, object]:
    if not media.available:
        return {}
    return {
        "mediaServers": [
            {"url": stat.name, "up": stat.up, "rooms": stat.rooms, "connections": stat.handles}
            for stat in media.stats()
        ]
    }


async def _healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok", "version": __version__})


READINESS_TIMEOUT = 2.0
"""Seconds one readiness check may take before it counts as failed."""


async def _run_check(check: ReadinessCheck) -> bool:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT):
            return await check()
    except Exception:  # a failing dependency is "not ready", never a 500
        log.warning("event=readiness-check-failed", exc_info=True)
        return False


HUB_SERVER = web.AppKey("hub_server", HubServer)


def _static_file(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / name)


ADMIN_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The admin page loads and talks to nothing but this server, and no other site may
frame it (a click on a framed page could remove participants)."""


async def _admin_page(request: web.Request) -> web.FileResponse:
    """The admin page; the key is entered in it, so serving it gives nothing away."""
    response = _static_file("admin.html")
    response.headers["Content-Security-Policy"] = ADMIN_PAGE_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers for the web app and the client library.

    Pages and scripts are revalidated on every load (an ETag makes that a 304), so
    an upgraded server is picked up at once. Scripts may be loaded by any site: an
    app elsewhere imports ``/hubbub.js`` from its hubbub server, and a module script
    from another origin needs CORS.
    """
    if request.method not in ("GET", "HEAD") or not isinstance(response, web.FileResponse):
        return
    response.headers.setdefault("Cache-Control", "no-cache")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.endswith(".js"):
        response.headers.setdefault("Access-Control-Allow-Origin", "*")


def create_app(settings: ServerSettings | None = None) -> web.Application:
    """The whole server as an aiohttp application (call inside a running loop)."""
    settings = settings or ServerSettings()
    app = web.Application(middlewares=[json_errors])
    server = HubServer(settings)
    app[HUB_SERVER] = server
    api = Api(app, settings.api_key)

    async def server_status(request: web.Request) -> web.Response:
        hub = server.hub
        return web.json_response(
            {
                "version": __version__,
                "connections": len(server.connections),
                "sessions": len(hub.sessions),
                "rooms": len(hub.rooms),
                **_cluster_status(server.broker),
                **_media_status(server.media),
            }
        )

    api.route(
        "GET",
        "/api/server",
        server_status,
        summary="Version and live counts of this server",
        responses={"200": {"description": "Counts of connections, sessions and rooms"}},
    )

    async def client_library(request: web.Request) -> web.StreamResponse:
        return _static_file("hubbub.js")

    async def protocol_module(request: web.Request) -> web.StreamResponse:
        return _static_file("protocol.js")

    clustered = server.broker if server.broker.status() is not None else None
    admin_api.add_routes(api, server.hub, server.keys, clustered, server.storage.store)
    rooms_api.add_routes(
        api, server.hub, server.storage.store, settings, clustered, server.media.pinned
    )
    users_api.add_routes(api, server.hub, server.storage.store)
    web_app.add_routes(api, settings)
    ice_api.add_routes(api, server.admission, server.ice_servers)

    # The seed's clients connect to the bare URL, so "/" is both the WebSocket
    # endpoint and the web app.
    app.router.add_get("/", functools.partial(server.handle_websocket, web_app=True))
    app.router.add_get("/ws", server.handle_websocket)
    app.router.add_get("/healthz", _healthz)
    if settings.frontend:
        frontends.Frontends(server).add_routes(app)

    async def readyz(request: web.Request) -> web.Response:
        """Ready: every dependency (store, broker) is reachable, and not shutting down."""
        names = list(server.readiness_checks)
        results = await asyncio.gather(*(_run_check(server.readiness_checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        ready = all(results) and not server.shutting_down
        return web.json_response(
            {"status": "ready" if ready else "not-ready", "checks": checks},
            status=200 if ready else 503,
        )

    app.router.add_get("/readyz", readyz)

    async def metrics_endpoint(request: web.Request) -> web.Response:
        """Prometheus metrics; the scraper sends the metrics key or the API key."""
        keys = [key for key in (settings.metrics_key, settings.api_key) if key]
        if not keys:
            raise ApiError(
                403,
                "metrics-disabled",
                "this server has no metrics key or API key set (--metrics-key, --api-key)",
            )
        if not any(bearer_matches(request, key) for key in keys):
            raise ApiError(
                401,
                "unauthorized",
                "send the metrics key or the API key as 'Authorization: Bearer KEY'",
            )
        return web.Response(
            text=metrics.render(server), headers={"Content-Type": metrics.CONTENT_TYPE}
        )

    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/admin", _admin_page)
    app.router.add_get("/hubbub.js", client_library)
    # hubbub.js imports "./protocol.js" and its modules "./hubbub/*.js": next to it, at
    # the root (and under /static/, for /static/hubbub.js).
    app.router.add_get("/protocol.js", protocol_module)
    app.router.add_static("/hubbub/", STATIC_DIR / "hubbub", name="client_modules")
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.on_response_prepare.append(_static_headers)
    app.on_response_prepare.append(name_the_server)
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.shutdown)
    app.on_cleanup.append(server.cleanup)
    return app

"""Running the server: the event loop, the listening socket, signals, shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import signal
import socket
import ssl
import sys
from functools import partial

from aiohttp import web

from hubbub.server import http_protocol, websocket
from hubbub.server.app import HUB_SERVER, create_app
from hubbub.settings import ServerSettings, SettingsError
from hubbub.store import StoreError

log = logging.getLogger("hubbub.server")

LISTEN_BACKLOG = 4096
"""Pending connections the kernel may hold: a reconnect storm arrives all at once,
and a short backlog turns it into SYN retries a second apart."""

SHUTDOWN_TIMEOUT = 2.0
"""Seconds handlers get to finish after the connections were told to go."""

GIL_SWITCH_INTERVAL = 0.0005
"""Seconds a thread that wants the GIL waits before the holder is asked to let go
(the interpreter's default is 5 ms). The SQLite writer thread gives the GIL up
around every statement and must take it back from a busy event loop each time;
at 5 ms a wait, those waits set the pace of a chat storm (stored msg/s in
``python -m bench --scenarios chat_store``). Only threads that want the GIL are
affected: a loop running alone is never interrupted."""

GC_YOUNG_THRESHOLD = 50_000
"""Allocations of tracked objects between two collections of the youngest
generation (the interpreter's default is 700). A join, a connect, a message decoded
each allocate a few dozen; at 700 a join storm collected every few joins, and each
collection of an older generation walks every session, room and connection held.
With this, and what was made at start frozen out of every collection, the core's
join costs 25 µs instead of 34 (``python -m bench.core_cost``) and a server's join
storm about 5 % less CPU per join (bench/analysis.md). Objects in reference cycles
wait a little longer to be freed: at most this many allocations."""


def tune_garbage_collection() -> None:
    """Freeze what the server made at start (modules, settings, the app) out of the
    collector's walks, and collect the youngest generation less often (see
    :data:`GC_YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class ServerRunner:
    """A started server: its listening socket and aiohttp's runner behind it."""

    def __init__(self, runner: web.AppRunner, listener: asyncio.AbstractServer) -> None:
        self.runner = runner
        self.listener = listener

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def cleanup(self) -> None:
        """Stop listening, then shut down: every connection is closed with 1001
        (see ``HubServer.shutdown``) and the store is closed."""
        self.listener.close()
        await self.runner.cleanup()


async def start_server(settings: ServerSettings) -> tuple[ServerRunner, str]:
    """Start listening; return the runner and the base URL (the real port if 0).

    The listening socket's protocol is hubbub's WebSocket endpoint, which hands
    every connection that is not a WebSocket upgrade to aiohttp (see
    :mod:`hubbub.server.websocket`).

    Refuses (:class:`SettingsError`) to serve open mode beyond loopback unless
    ``allow_open_on_network`` says so.
    """
    problem = settings.exposure_problem()
    if problem is not None:
        raise SettingsError(problem)
    ssl_context = tls_context(settings)
    app = create_app(settings)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()
        raise
    endpoint = app[HUB_SERVER].endpoint
    http = runner.server
    assert http is not None
    loop = asyncio.get_running_loop()
    # What runner.server() would make, as hubbub's subclass, with the runner's
    # arguments: no access log (None, which aiohttp takes though its hint says Logger).
    endpoint.http_protocol = partial(
        http_protocol.HttpProtocol,
        http,
        loop=loop,
        access_log=None,
        keepalive_timeout=http_protocol.KEEPALIVE_TIMEOUT,
    )
    try:
        listener = await loop.create_server(
            endpoint.protocol,
            settings.host,
            settings.port,
            backlog=LISTEN_BACKLOG,
            reuse_address=True,
            ssl=ssl_context,
            # as long for the TLS handshake as for the request head after it (not 60 s)
            ssl_handshake_timeout=websocket.HANDSHAKE_TIMEOUT if ssl_context else None,
        )
    except BaseException:
        await runner.cleanup()
        raise
    port = settings.port
    for sock in listener.sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            port = sock.getsockname()[1]
            break
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    scheme = "https" if ssl_context is not None else "http"
    if not settings.is_loopback and not settings.allowed_origin:
        log.warning(
            "event=no-origin-check detail=%r",
            "any web page may open WebSockets here; name the app's origins with --allowed-origin",
        )
    return ServerRunner(runner, listener), f"{scheme}://{host}:{port}"


FILES_KEPT_BACK = 64
"""Open files the process keeps for itself (the listening socket, the store, logs,
the broker's connections...) when it says how many connections its limit allows."""


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit: every connection is
    one. Returns (soft, hard) as they are after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # pragma: no cover - refused by the system
            pass
    return soft, hard


def tls_context(settings: ServerSettings) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert`` and ``tls_key``, if given."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"tls_cert/tls_key: cannot load {settings.tls_cert} with {settings.tls_key}: "
            f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}"
        ) from None
    return context


async def _serve(settings: ServerSettings) -> None:
    soft, hard = raise_open_files_limit()
    runner, url = await start_server(settings)
    tune_garbage_collection()
    log.info("event=listening url=%s", url)
    connections = max(0, soft - FILES_KEPT_BACK)
    log.info("event=open-files limit=%d hard=%d connections=%d", soft, hard, connections)
    if connections < settings.limits.max_connections:
        log.warning(
            "event=open-files-low connections=%d max_connections=%d detail=%r",
            connections,
            settings.limits.max_connections,
            "the open-files limit allows fewer connections than max_connections; "
            "raise the hard limit (docs/deploy.md)",
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("event=stopping")
        await runner.cleanup()
        log.info("event=stopped")


def serve(settings: ServerSettings) -> None:
    """Run until SIGTERM or SIGINT, then close every connection with 1001."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    if sys.platform != "win32":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:  # pragma: no cover
        runner = asyncio.Runner()
    with runner:
        try:
            runner.run(_serve(settings))
        except StoreError as exc:
            print(f"hubbub serve: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

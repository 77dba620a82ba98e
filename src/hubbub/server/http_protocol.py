"""aiohttp's protocol for the connections that are not WebSockets (the HTTP API,
the web app, the admin page), with what hubbub adds to it.

- A request aiohttp's parser cannot read (a malformed request line, header or
  chunked body, a header line over its bounds) is bad input from the network, not a
  fault of the server's: it is answered with the documented ``400 bad-request`` and
  its JSON body (:mod:`hubbub.server.http_api`), and logged in one line at ``info``,
  as a refused handshake is, instead of aiohttp's plain-text 400 and a traceback at
  ``error``. Anything else aiohttp's handler is asked to answer (an exception in a
  handler, a 500) keeps aiohttp's answer and its traceback: that is a fault of the
  server's.
- An idle keep-alive connection is closed after :data:`KEEPALIVE_TIMEOUT` (75 s),
  not after aiohttp's default of an hour. Until it is lost (or becomes a WebSocket),
  the connection counts against its address's ``max_http_connections_per_ip``:
  :attr:`HttpProtocol.on_gone` gives its place back.
- No answer says which Python or aiohttp serves it: the ``Server`` header is
  :data:`SERVER`, without a version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from hubbub.server.http_api import error_body

log = logging.getLogger("hubbub.server")

SERVER = "hubbub"
"""The ``Server`` header of every HTTP answer."""

KEEPALIVE_TIMEOUT = 75.0
"""Seconds an HTTP connection may wait for its next request before it is closed:
longer than a reverse proxy keeps its idle connections to hubbub (nginx: 60 s), so
that the proxy closes one first rather than reuse one hubbub is closing."""


class HttpProtocol(web.RequestHandler):
    """One connection that :class:`~hubbub.server.websocket.HandshakeReader` found
    is not a WebSocket upgrade, served by aiohttp."""

    __slots__ = ("on_gone",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_gone: Callable[[], None] | None = None
        """Gives back the connection's place in its address's count (set when it is
        counted)."""

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.give_back()

    def give_back(self) -> None:
        """The connection is gone, or a WebSocket now: it no longer counts."""
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage):
            response = super().handle_error(request, status, exc, message)
        else:
            # 400 whoever found it: the parser, or a handler reading a malformed
            # body (which aiohttp would answer as its own 500).
            log.info(
                "event=refused remote=%s status=400 detail=%r",
                request.remote,
                "not a valid HTTP request",
            )
            response = web.Response(
                status=400,
                text=error_body("bad-request", "not a valid HTTP request"),
                content_type="application/json",
            )
            response.force_close()
        response.headers["Server"] = SERVER
        return response


async def name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer of the application says :data:`SERVER`."""
    response.headers["Server"] = SERVER


def now_a_websocket(request: web.BaseRequest) -> None:
    """``request``'s connection was upgraded (its 101 written): it counts as a
    WebSocket from now on, no longer as one of its address's HTTP connections."""
    protocol = request.protocol
    if isinstance(protocol, HttpProtocol):
        protocol.give_back()

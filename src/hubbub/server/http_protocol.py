"""aiohttp's protocol for the connections that are not WebSockets (the HTTP API,
the web app, the admin page), with two things of hubbub's own.

- A request aiohttp's parser cannot read (a malformed request line or header, a
  header line over its bounds) is bad input from the network, not a fault of the
  server's: it is answered with the documented ``400 bad-request`` and its JSON body
  (:mod:`hubbub.server.http_api`), and logged in one line at ``info``, as a refused
  handshake is, instead of aiohttp's plain-text 400 and a traceback at ``error``.
  Anything else aiohttp's handler is asked to answer (an exception in a handler, a
  500) keeps aiohttp's answer and its traceback: that is a fault of the server's.
- No answer says which Python or aiohttp serves it: the ``Server`` header is
  :data:`SERVER`, without a version.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hubbub.server.http_api import error_body

log = logging.getLogger("hubbub.server")

SERVER = "hubbub"
"""The ``Server`` header of every HTTP answer."""


class HttpProtocol(web.RequestHandler):
    """One connection that :class:`~hubbub.server.websocket.HandshakeReader` found
    is not a WebSocket upgrade, served by aiohttp."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            response = super().handle_error(request, status, exc, message)
        else:
            log.info(
                "event=refused remote=%s status=%d detail=%r",
                request.remote,
                status,
                "not a valid HTTP request",
            )
            response = web.Response(
                status=status,
                text=error_body("bad-request", "not a valid HTTP request"),
                content_type="application/json",
            )
            response.force_close()
        response.headers["Server"] = SERVER
        return response


async def name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer of the application says :data:`SERVER`."""
    response.headers["Server"] = SERVER

"""The HTTP API for an application's backend, under ``/api``.

Every endpoint is declared once with :meth:`Api.route`, which adds it to the
aiohttp router and to the OpenAPI description served at ``/api/openapi.json``.
Endpoints that need the server API key (``--api-key``, sent as
``Authorization: Bearer KEY``) say so with ``api_key=True``. Errors are JSON:
``{"error": {"code": "...", "message": "..."}}`` with a documented code. Integers
in a query or a body are bounded as in the WebSocket protocol (1 to
:data:`~hubbub.protocol.messages.MAX_INTEGER`), so none reaches the store out of
its range.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, overload

import msgspec
from aiohttp import web

from hubbub import __version__
from hubbub.protocol.messages import MAX_INTEGER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(web.HTTPException):
    """An API refusal: an HTTP status and a JSON body with a code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status_code = status
        super().__init__(
            text=error_body(code, message),
            content_type="application/json",
        )


def error_body(code: str, message: str) -> str:
    return json.dumps({"error": {"code": code, "message": message}})


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


class Api:
    """Routes under ``/api`` with their OpenAPI description."""

    def __init__(self, app: web.Application, api_key: str | None) -> None:
        self._app = app
        self._api_key = api_key
        self._paths: dict[str, dict[str, Any]] = {}
        app.router.add_get("/api/openapi.json", self._openapi)

    def route(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        summary: str,
        api_key: bool = True,
        request_body: dict[str, Any] | None = None,
        responses: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
    ) -> None:
        """Serve ``handler`` at ``METHOD /api/...`` and describe it."""
        if not path.startswith("/api/"):
            raise ValueError(f"API paths start with /api/: {path}")
        wrapped = self._with_api_key(handler) if api_key else handler
        self._app.router.add_route(method, path, wrapped)
        if method == "GET":  # HEAD is GET without the body (aiohttp leaves the body out)
            self._app.router.add_route("HEAD", path, wrapped)
        operation: dict[str, Any] = {"summary": summary, "responses": dict(responses or {})}
        operation["responses"].setdefault("default", _error_response("An error"))
        if api_key:
            operation["security"] = [{"apiKey": []}]
            operation["responses"].setdefault("401", _error_response("Missing or wrong API key"))
        if request_body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": request_body}},
            }
        if parameters:
            operation["parameters"] = parameters
        self._paths.setdefault(path, {})[method.lower()] = operation

    def _with_api_key(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            self.check_api_key(request)
            return await handler(request)

        return checked

    def check_api_key(self, request: web.Request) -> None:
        """Refuse the request unless it carries the server API key."""
        if not self._api_key:
            raise ApiError(403, "api-disabled", "this server has no API key set (--api-key)")
        if not bearer_matches(request, self._api_key):
            raise ApiError(401, "unauthorized", "send the API key as 'Authorization: Bearer KEY'")

    def openapi(self) -> dict[str, Any]:
        return {
            "openapi": "3.1.0",
            "info": {"title": "hubbub HTTP API", "version": __version__},
            "paths": self._paths,
            "components": {
                "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
                "schemas": {"Error": ERROR_SCHEMA},
            },
        }

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(self.openapi())


def bearer_matches(request: web.Request, key: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <key>`` (compared in
    constant time)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode())


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


BODY_TIMEOUT = 10.0
"""Seconds a request body may go without a byte arriving before the request is
answered 408 (as a connection's request head has 10 s to arrive whole): a client
that stops half-way does not hold its request for good."""


async def read_json(request: web.Request, max_bytes: int = 1024 * 1024) -> Any:
    """The request's JSON body, or an ``ApiError`` that says what is wrong with it."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "too-large", f"the body holds at most {max_bytes} bytes")
    # A read gives what has arrived so far: a body in several packets takes several.
    body = bytearray()
    try:
        while True:
            async with asyncio.timeout(BODY_TIMEOUT):
                chunk = await request.content.read(max_bytes + 1 - len(body))
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise ApiError(413, "too-large", f"the body holds at most {max_bytes} bytes")
    except ConnectionResetError:  # the client went away before its body was whole
        raise ApiError(400, "bad-request", "the body ended before it was whole") from None
    except TimeoutError:
        raise ApiError(
            408, "body-timeout", f"no part of the body came for {BODY_TIMEOUT:g} s"
        ) from None
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        raise ApiError(400, "bad-json", "the body is not valid JSON") from None


_INTEGER = re.compile(r"[0-9]{1,20}")
"""An integer as a query gives it: ASCII digits only (no sign, ``_`` or space), few
enough that parsing them costs nothing."""


@overload
def query_integer(request: web.Request, name: str, default: int) -> int: ...


@overload
def query_integer(request: web.Request, name: str, default: None) -> int | None: ...


def query_integer(request: web.Request, name: str, default: int | None) -> int | None:
    """The query parameter ``name``, an integer from 1 to :data:`MAX_INTEGER`;
    ``default`` when it is left out; else a 400 ``bad-request`` that names it."""
    given = request.query.get(name)
    if given is None:
        return default
    value = int(given) if _INTEGER.fullmatch(given) else 0
    if not 1 <= value <= MAX_INTEGER:
        raise ApiError(400, "bad-request", f"{name} is an integer from 1 to {MAX_INTEGER}")
    return value


def integer_schema(high: int = MAX_INTEGER) -> dict[str, Any]:
    """The OpenAPI schema of an integer the API takes (in a query or a body): 1 to
    ``high``."""
    return {"type": "integer", "minimum": 1, "maximum": high}


_HTTP_CODES = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under ``/api/``, aiohttp's own refusals (404, 405...) are JSON too."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http-error")
        raise ApiError(exc.status, code, exc.reason) from None

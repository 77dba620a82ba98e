"""The HTTP upgrade of a WebSocket (RFC 6455 section 4), read and answered with
as little as possible: no framework between the socket and the handshake.

Sans-I/O: :func:`read_request` takes the bytes of a request head and gives an
:class:`UpgradeRequest` (parsed by llhttp, through httptools); the answers
(:func:`switching_protocols`, :func:`refusal`) are bytes to write.
"""

from __future__ import annotations

import base64
import hashlib
import json

import httptools

MAX_HEAD_BYTES = 16 * 1024
"""The most of a request head the endpoint reads itself (request line and headers).
A larger head goes, as any other request, to the HTTP server and its own bounds."""

WEBSOCKET_PATHS = (b"/", b"/ws")
"""Where the WebSocket endpoint is: ``/`` (the seed's clients connect to the
bare URL; a plain GET there is the web app) and ``/ws``."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class UpgradeRequest:
    """A request head: its method, path and headers (names in lower case, the
    values of a repeated header joined by ``", "``, as HTTP allows for lists)."""

    __slots__ = ("headers", "method", "path", "remote", "version")

    def __init__(self) -> None:
        self.method = b""
        self.path = b""
        self.version = ""
        self.headers: dict[str, str] = {}
        self.remote = "-"
        """The address of the TCP peer (set by the caller)."""

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_items(self, name: str) -> list[str]:
        """The comma-separated items of a list header, stripped, empty ones left out."""
        value = self.headers.get(name)
        if value is None:
            return []
        return [item for item in (part.strip() for part in value.split(",")) if item]

    @property
    def is_websocket(self) -> bool:
        """A GET that asks for a WebSocket upgrade on hubbub's endpoint."""
        upgrade = self.headers.get("upgrade")
        return (
            self.method == b"GET"
            and upgrade is not None
            and upgrade.strip().lower() == "websocket"
            and self.path.partition(b"?")[0] in WEBSOCKET_PATHS
        )

    def handshake_problem(self) -> str | None:
        """What makes this upgrade invalid (section 4.2.1), or None."""
        if self.version != "1.1":
            return "a WebSocket handshake is an HTTP/1.1 request"
        if "upgrade" not in (item.lower() for item in self.header_items("connection")):
            return "Connection must include Upgrade"
        if self.headers.get("sec-websocket-version") != "13":
            return "Sec-WebSocket-Version must be 13"
        key = self.headers.get("sec-websocket-key", "")
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                return "Sec-WebSocket-Key must be 16 bytes in base64"
        except ValueError:
            return "Sec-WebSocket-Key must be 16 bytes in base64"
        return None


def head_end(data: bytes | bytearray) -> int:
    """Where the request head in ``data`` ends (after its blank line); -1: not yet."""
    end = data.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def read_request(head: bytes) -> UpgradeRequest | None:
    """The request in ``head`` (a whole head, blank line included); None if it is
    not a valid HTTP/1.x request head."""
    request = UpgradeRequest()
    parser = httptools.HttpRequestParser(request)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # an upgrade: the parser stops at the end of the head
    except httptools.HttpParserError:
        return None
    request.method = parser.get_method()
    request.version = parser.get_http_version()
    return request


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def switching_protocols(key: str, protocol: str | None) -> bytes:
    """The 101 answer that opens the WebSocket; no extension is agreed (hubbub
    does not compress: an offer of permessage-deflate is left unanswered)."""
    head = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
    )
    if protocol is not None:
        head += f"Sec-WebSocket-Protocol: {protocol}\r\n"
    return (head + "\r\n").encode()


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def refusal(status: int, code: str, message: str, extra_headers: str = "") -> bytes:
    """A refused handshake: the status and a JSON body ``{"error": {"code",
    "message"}}``; the connection is closed after it."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra_headers}"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body

"""The HTTP upgrade read and answered without a framework (RFC 6455 section 4)."""

from __future__ import annotations

import json

import pytest

from hubbub.server.upgrade import (
    head_end,
    read_request,
    refusal,
    switching_protocols,
)

HANDSHAKE = (
    b"GET /ws?x=1 HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8080\r\n"
    b"Upgrade: WebSocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: hubbub\r\n"
    b"Sec-WebSocket-Protocol: hubbub.token.abc\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\n"
    b"\r\n"
)


def test_a_handshake_is_read() -> None:
    assert head_end(HANDSHAKE + b"\x81\x80") == len(HANDSHAKE)
    assert head_end(HANDSHAKE[:-2]) == -1
    request = read_request(HANDSHAKE)
    assert request is not None
    assert request.is_websocket
    assert request.handshake_problem() is None
    assert (request.method, request.path, request.version) == (b"GET", b"/ws?x=1", "1.1")
    # a repeated header is one list, as HTTP allows
    assert request.header_items("sec-websocket-protocol") == ["hubbub", "hubbub.token.abc"]
    assert request.header("x-forwarded-for") == "203.0.113.7"


@pytest.mark.parametrize(
    ("change", "websocket"),
    [
        ((b"GET /ws?x=1", b"POST /ws"), False),
        ((b"GET /ws?x=1", b"GET /api/server"), False),
        ((b"GET /ws?x=1", b"GET /?room=r"), True),
        ((b"Upgrade: WebSocket", b"Upgrade: h2c"), False),
    ],
)
def test_only_an_upgrade_to_the_endpoint_is_a_websocket(
    change: tuple[bytes, bytes], websocket: bool
) -> None:
    request = read_request(HANDSHAKE.replace(*change))
    assert request is not None
    assert request.is_websocket is websocket


@pytest.mark.parametrize(
    "change",
    [
        (b"HTTP/1.1", b"HTTP/1.0"),
        (b"keep-alive, Upgrade", b"keep-alive"),
        (b"Version: 13", b"Version: 8"),
        (b"dGhlIHNhbXBsZSBub25jZQ==", b"c2hvcnQ="),  # 5 bytes
        (b"dGhlIHNhbXBsZSBub25jZQ==", b"not base64!!"),
    ],
)
def test_an_invalid_handshake_says_what_is_wrong(change: tuple[bytes, bytes]) -> None:
    request = read_request(HANDSHAKE.replace(*change))
    assert request is not None
    assert request.handshake_problem() is not None


@pytest.mark.parametrize(
    "head",
    [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"\x16\x03\x01\r\n\r\n"],
)
def test_what_is_not_http_is_none(head: bytes) -> None:
    assert read_request(head) is None


def test_the_answers() -> None:
    # the example of RFC 6455 section 1.3
    accepted = switching_protocols("dGhlIHNhbXBsZSBub25jZQ==", "hubbub")
    assert accepted.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in accepted
    assert b"Sec-WebSocket-Protocol: hubbub\r\n" in accepted
    assert b"Extensions" not in accepted  # permessage-deflate is never agreed
    assert accepted.endswith(b"\r\n\r\n")
    assert b"Sec-WebSocket-Protocol" not in switching_protocols("dGhlIHNhbXBsZSBub25jZQ==", None)
    refused = refusal(429, "address-connection-limit", "too many")
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    error = {"code": "address-connection-limit", "message": "too many"}
    assert json.loads(body) == {"error": error}

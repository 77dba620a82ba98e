"""WebSocket frames built by hand (RFC 6455 section 5.2), so that one message
is framed once and the same bytes go to every recipient.

Server frames are never masked (section 5.1) and hubbub does not compress, so a
frame is a 2 to 10 byte header and the payload as it is.
"""

from __future__ import annotations

import struct

_TEXT = 0x81  # FIN + opcode 1 (text)
_CLOSE = 0x88  # FIN + opcode 8 (close)
_PING = 0x89  # FIN + opcode 9 (ping)
_PONG = 0x8A  # FIN + opcode 10 (pong)
_pack_16 = struct.Struct("!BBH").pack


def _header(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def text_frame(payload: bytes) -> bytes:
    """A complete text frame carrying ``payload`` (UTF-8 JSON)."""
    return _header(_TEXT, len(payload)) + payload


def numbered_frame_head(n: int, payload_size: int) -> bytes:
    """The start of a text frame carrying ``payload`` with ``"n":N`` put first:
    the header and ``{"n":N,``; the frame goes on with ``payload[1:]``.

    Made for every recipient of every message: the header is built here rather
    than by :func:`_header`."""
    prefix = b'{"n":%d,' % n
    size = len(prefix) + payload_size - 1
    if size < 126:
        return bytes((_TEXT, size)) + prefix
    if size < 65536:
        return _pack_16(_TEXT, 126, size) + prefix
    return _header(_TEXT, size) + prefix


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; control frames carry at most 125 bytes (section 5.5)."""
    body = struct.pack("!H", code) + reason.encode()[:123]
    return _header(_CLOSE, len(body)) + body


def pong_frame(data: bytes) -> bytes:
    return _header(_PONG, len(data)) + data[:125]


PING_FRAME = bytes((_PING, 0))

"""WebSocket frames (RFC 6455 section 5): built by hand, so that one message is
framed once and the same bytes go to every recipient; and read from a client.

Server frames are never masked (section 5.1) and hubbub does not compress, so a
frame is a 2 to 10 byte header and the payload as it is. A client's frames are
always masked; what reading them can find wrong is a :class:`FrameError` with the
close code the connection ends with (never an exception into the event loop).
"""

from __future__ import annotations

import struct

from hubbub.protocol.errors import CloseCode

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8
PING = 0x9
PONG = 0xA

_TEXT = 0x81  # FIN + opcode 1 (text)
_CLOSE = 0x88  # FIN + opcode 8 (close)
_PING = 0x89  # FIN + opcode 9 (ping)
_PONG = 0x8A  # FIN + opcode 10 (pong)
_pack_16 = struct.Struct("!BBH").pack
_unpack_16 = struct.Struct("!H").unpack_from
_unpack_64 = struct.Struct("!Q").unpack_from

MAX_CONTROL_PAYLOAD = 125
"""Bytes a control frame (close, ping, pong) may carry (section 5.5)."""


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
    return _header(_PONG, len(data)) + data[:MAX_CONTROL_PAYLOAD]


PING_FRAME = bytes((_PING, 0))


# -- reading a client's frames --------------------------------------------------------


class FrameError(Exception):
    """A client's frame broke the protocol or a limit: the connection is closed
    with ``code`` (1002, 1007, 1009). The reason is sent in the close frame; it
    names the rule, never internal detail."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


FrameHead = tuple[int, int, int]
"""A frame's first byte (FIN, RSV, opcode), where its masking key starts, and
where its payload ends."""


def read_head(data: bytes | bytearray, offset: int, max_size: int) -> FrameHead | None:
    """The head of the client frame at ``data[offset:]``, once its whole head is
    there (None: more bytes are needed for it).

    Everything that can be refused from a head alone is refused here, before the
    payload is waited for: an unmasked frame, reserved bits or opcodes, a
    fragmented or oversized control frame (1002), and a payload over
    ``max_size`` (1009: a client that announces a gigabyte is closed at once).
    """
    available = len(data) - offset
    if available < 2:
        return None
    first = data[offset]
    second = data[offset + 1]
    length = second & 0x7F
    start = offset + 2
    if length == 126:
        if available < 4:
            return None
        (length,) = _unpack_16(data, start)
        start += 2
    elif length == 127:
        if available < 10:
            return None
        (length,) = _unpack_64(data, start)
        start += 8
    if not second & 0x80:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
    if first & 0x70:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "no extension was agreed")
    opcode = first & 0x0F
    if opcode >= CLOSE:
        if opcode > PONG:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "unknown opcode")
        if not first & 0x80 or length > MAX_CONTROL_PAYLOAD:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "control frames are whole and short")
    elif opcode > BINARY:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "unknown opcode")
    elif length > max_size:
        raise FrameError(CloseCode.MESSAGE_TOO_BIG, "message too big")
    return first, start, start + 4 + length


_from_bytes = int.from_bytes


def unmask(payload: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """``payload`` XORed with the 4-byte masking key repeated (section 5.3), as
    two integers: one C-level operation whatever the length."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size >> 2) + 1))[:size]
    return (_from_bytes(payload, "little") ^ _from_bytes(key, "little")).to_bytes(size, "little")


_CLOSE_CODES_RESERVED = frozenset((1004, 1005, 1006, 1015))


def read_close(payload: bytes) -> int | None:
    """The code of a client's close frame (None: it gave none), checked as
    section 7.4 says; its reason must be UTF-8."""
    if not payload:
        return None
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "a close code is two bytes")
    (code,) = _unpack_16(payload)
    if code < 1000 or code >= 5000 or code in _CLOSE_CODES_RESERVED or 1016 <= code < 3000:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "invalid close code")
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
    return int(code)

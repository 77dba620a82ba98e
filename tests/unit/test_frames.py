"""Frames built by hand, read back by a parser written from RFC 6455 section 5.2;
and a client's frames read by the server, with what it refuses and its close code."""

from __future__ import annotations

import json
import struct

import pytest

from hubbub.protocol.errors import CloseCode
from hubbub.server.frames import (
    FrameError,
    close_frame,
    numbered_frame_head,
    read_close,
    read_head,
    text_frame,
    unmask,
)


def parse(frame: bytes) -> tuple[int, bytes]:
    """The first byte and the payload of one unmasked frame; the frame must end there."""
    first, second = frame[0], frame[1]
    assert second & 0x80 == 0, "server frames are not masked"
    length, offset = second & 0x7F, 2
    if length == 126:
        (length,) = struct.unpack("!H", frame[2:4])
        offset = 4
        assert length >= 126, "the shortest form must be used"
    elif length == 127:
        (length,) = struct.unpack("!Q", frame[2:10])
        offset = 10
        assert length >= 65536, "the shortest form must be used"
    payload = frame[offset:]
    assert len(payload) == length
    return first, payload


@pytest.mark.parametrize(
    "size", [2, 100, 117, 118, 119, 125, 126, 127, 1000, 65525, 65530, 65536, 70000]
)
@pytest.mark.parametrize("n", [1, 9, 10, 99999, 12345678901])
def test_a_numbered_frame_is_the_message_with_n_first(size: int, n: int) -> None:
    body = {"type": "chat", "message": "x" * max(0, size - 30)}
    payload = json.dumps(body, separators=(",", ":")).encode()
    first, read = parse(numbered_frame_head(n, len(payload)) + payload[1:])
    assert first == 0x81
    assert list(json.loads(read).items()) == [("n", n), *body.items()]


def test_text_and_close_frames() -> None:
    assert parse(text_frame(b"{}")) == (0x81, b"{}")
    assert parse(text_frame(b"x" * 300)) == (0x81, b"x" * 300)
    assert parse(close_frame(1001, "bye")) == (0x88, struct.pack("!H", 1001) + b"bye")
    first, payload = parse(close_frame(4000, "y" * 200))
    assert (first, len(payload)) == (0x88, 125)


# -- reading a client's frames ------------------------------------------------------------


def masked(first: int, payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """A client frame: ``first`` byte (FIN, opcode), masked ``payload`` (section 5.3)."""
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return header + mask + body


def read_one(frame: bytes, max_size: int = 1 << 20) -> tuple[int, bytes]:
    head = read_head(frame, 0, max_size)
    assert head is not None
    first, start, end = head
    assert end == len(frame)
    return first, unmask(frame[start + 4 : end], frame[start : start + 4])


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 70001])
def test_a_masked_frame_reads_back(size: int) -> None:
    payload = bytes(range(256)) * (size // 256 + 1)
    assert read_one(masked(0x81, payload[:size])) == (0x81, payload[:size])


def test_a_head_that_has_not_all_arrived_waits() -> None:
    frame = masked(0x81, b"x" * 300)
    for cut in range(4):  # 2 bytes, then the 16-bit length
        assert read_head(frame[:cut], 0, 1 << 20) is None
    head = read_head(frame[:4], 0, 1 << 20)
    assert head is not None
    assert head[2] == len(frame)  # the head says where the frame ends
    assert read_head(b"ab" + frame, 2, 1 << 20) == (0x81, 6, len(frame) + 2)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x02hi", CloseCode.PROTOCOL_ERROR),  # not masked
        (masked(0xC1, b"x"), CloseCode.PROTOCOL_ERROR),  # RSV1: no extension agreed
        (masked(0x83, b"x"), CloseCode.PROTOCOL_ERROR),  # reserved opcode
        (masked(0x8B, b"x"), CloseCode.PROTOCOL_ERROR),  # reserved control opcode
        (masked(0x09, b"x"), CloseCode.PROTOCOL_ERROR),  # a fragmented ping
        (masked(0x89, b"x" * 126), CloseCode.PROTOCOL_ERROR),  # a long ping
        (masked(0x81, b"x" * 101), CloseCode.MESSAGE_TOO_BIG),
        (struct.pack("!BBQ", 0x81, 0xFF, 1 << 40), CloseCode.MESSAGE_TOO_BIG),  # head alone
    ],
)
def test_what_a_head_alone_refuses(frame: bytes, code: CloseCode) -> None:
    with pytest.raises(FrameError) as refused:
        read_head(frame, 0, 100)
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", None),
        (struct.pack("!H", 1000), 1000),
        (struct.pack("!H", 4000) + "bye é".encode(), 4000),
        (struct.pack("!H", 3000), 3000),
    ],
)
def test_a_close_code_read(payload: bytes, expected: int | None) -> None:
    assert read_close(payload) == expected


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x03", CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", 999), CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", 1005), CloseCode.PROTOCOL_ERROR),  # never sent on the wire
        (struct.pack("!H", 1006), CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", 2000), CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", 5000), CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", 1000) + b"\xff", CloseCode.INVALID_DATA),
    ],
)
def test_a_close_frame_that_breaks_the_rules(payload: bytes, code: CloseCode) -> None:
    with pytest.raises(FrameError) as refused:
        read_close(payload)
    assert refused.value.code == code

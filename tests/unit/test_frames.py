"""Frames built by hand, read back by a parser written from RFC 6455 section 5.2."""

from __future__ import annotations

import json
import struct

import pytest

from hubbub.server.frames import close_frame, numbered_frame_head, text_frame


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

"""The signaling protocol of y-webrtc (10.x), the WebRTC provider of Yjs: frames in,
typed messages out, and the bytes the server sends. Sans-I/O.

A client sends JSON text frames::

    {"type": "subscribe", "topics": ["doc-1", ...]}
    {"type": "unsubscribe", "topics": [...]}
    {"type": "publish", "topic": "doc-1", "data": ...}
    {"type": "ping"}

and gets every ``publish`` to a topic it subscribed to, its own included, with
``clients`` (how many subscribe to the topic) added, and ``{"type": "pong"}`` for a
ping. ``data`` goes through untouched: with a room password it is an encrypted
blob, and the server never sees the document either way.

y-webrtc has no error message. Refusals are sent as ``{"type": "error", "code",
"message"}`` (hubbub's own error, with ``topic`` when there is one), which the
client ignores and a person reading the frames understands.
"""

from __future__ import annotations

import msgspec

from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError

ABSENT = msgspec.Raw(b"")
"""A field the frame left out (a ``Raw`` cannot be ``None`` in msgspec)."""

ROOM_PREFIX = "y-webrtc:"
"""A topic's subscribers are the members of the room ``y-webrtc:TOPIC``."""


class Subscribe(msgspec.Struct, frozen=True):
    topics: list[str]


class Unsubscribe(msgspec.Struct, frozen=True):
    topics: list[str]


class Publish(msgspec.Struct, frozen=True):
    topic: str
    data: msgspec.Raw


class Ping(msgspec.Struct, frozen=True):
    pass


class _Incoming(msgspec.Struct):
    type: str
    topics: list[object] | None = None
    topic: object = None
    data: msgspec.Raw = ABSENT


class _Published(msgspec.Struct, tag_field="type", tag="publish"):
    topic: str
    data: msgspec.Raw
    clients: int


class _Error(msgspec.Struct, tag_field="type", tag="error", omit_defaults=True):
    code: str
    message: str
    topic: str | None = None


_decoder = msgspec.json.Decoder(_Incoming)
_encoder = msgspec.json.Encoder()

PING = Ping()
PONG = b'{"type":"pong"}'

IncomingYWebrtc = Subscribe | Unsubscribe | Publish | Ping


def decode(text: str | bytes, max_depth: int) -> IncomingYWebrtc:
    """One frame from a client; raises :class:`ProtocolError` for anything else than
    the messages above. Topics that are not strings are left out, as the reference
    server leaves them."""
    codec.check_depth(text, max_depth)
    try:
        message = _decoder.decode(text)
    except msgspec.ValidationError:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message is an object with a type") from None
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "the frame is not valid JSON") from None
    kind = message.type
    if kind == "publish":
        topic = message.topic
        if not isinstance(topic, str) or not topic or not message.data:
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "publish needs a topic and data")
        return Publish(topic, message.data)
    if kind == "ping":
        return PING
    if kind in ("subscribe", "unsubscribe"):
        topics = [topic for topic in message.topics or () if isinstance(topic, str)]
        return Subscribe(topics) if kind == "subscribe" else Unsubscribe(topics)
    raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:64]!r}")


def published(topic: str, data: msgspec.Raw, clients: int) -> bytes:
    return _encoder.encode(_Published(topic, data, clients))


def error(code: str, message: str, topic: str | None = None) -> bytes:
    return _encoder.encode(_Error(code, message, topic))


def room_name(topic: str) -> str:
    return ROOM_PREFIX + topic

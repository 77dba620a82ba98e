"""The PeerJS server protocol, as the ``peerjs`` client (1.5) speaks it to a
PeerServer (``peer`` 1.x): frames in, typed messages out, and the bytes of every
message the server sends. Sans-I/O.

A client opens ``{path}peerjs?key=KEY&id=ID&token=TOKEN&version=V`` and sends::

    {"type": "HEARTBEAT"}                                    every 5 s
    {"type": "OFFER"|"ANSWER"|"CANDIDATE", "dst": ID, "payload": {...}}
    {"type": "LEAVE"|"EXPIRE", "dst": ID}

The server answers ``OPEN`` (the id is the client's), ``ID-TAKEN`` or ``ERROR``
(``payload.msg``) and closes, and relays each message to its ``dst`` with ``src``
set to the sender's id (whatever the sender put there), its fields in the
reference server's order: ``type``, ``src``, ``dst``, ``payload``. ``payload`` goes
through untouched: the server never reads a session description.
"""

from __future__ import annotations

import re

import msgspec

from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError

ABSENT = msgspec.Raw(b"")
"""A field the frame left out (a ``Raw`` cannot be ``None`` in msgspec)."""

ID_PATTERN = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")
"""The ids the client accepts (its ``validateId``); the server holds others to it too."""

ROOM_PREFIX = "peerjs:"
"""A key's peers are the members of the room ``peerjs:KEY``."""

# The reference server's words, which clients and their users search for.
INVALID_KEY = "Invalid key provided"
INVALID_TOKEN = "Invalid token provided"
INVALID_WS_PARAMETERS = "No id, token, or key supplied to websocket server"
CONNECTION_LIMIT_EXCEED = "Server has reached its concurrent user limit"
ID_TAKEN = "ID is taken"
INVALID_ID = "Invalid id provided"

RELAYED_TYPES = frozenset({"OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"})
"""What a client sends to another peer through the server."""

NOT_QUEUED = frozenset({"LEAVE", "EXPIRE"})
"""Relayed only to a peer that is there: never kept for one that is not (yet)."""


class Heartbeat(msgspec.Struct, frozen=True):
    """The client is alive (every 5 s)."""


class Relay(msgspec.Struct, frozen=True):
    """A message for another peer of the same key."""

    type: str
    dst: str
    payload: msgspec.Raw = ABSENT


class _Incoming(msgspec.Struct):
    type: str
    dst: str | None = None
    payload: msgspec.Raw = ABSENT


class _Relayed(msgspec.Struct, omit_defaults=True):
    type: str
    src: str
    dst: str
    payload: msgspec.Raw = ABSENT


class _Msg(msgspec.Struct):
    msg: str


class _WithPayload(msgspec.Struct):
    type: str
    payload: _Msg


class _TypeOnly(msgspec.Struct):
    type: str


_decoder = msgspec.json.Decoder(_Incoming)
_encoder = msgspec.json.Encoder()

HEARTBEAT = Heartbeat()

IncomingPeerjs = Heartbeat | Relay


def decode(text: str | bytes, max_depth: int) -> IncomingPeerjs:
    """One frame from a client; raises :class:`ProtocolError` (sent back as ``ERROR``)
    for anything else than the messages above."""
    codec.check_depth(text, max_depth)
    try:
        message = _decoder.decode(text)
    except msgspec.ValidationError:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "Invalid message") from None
    except msgspec.DecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "Invalid message: not JSON") from None
    kind = message.type
    if kind == "HEARTBEAT":
        return HEARTBEAT
    if kind not in RELAYED_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"Invalid message type {kind[:32]!r}")
    if not message.dst:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"Invalid message: {kind} needs a dst")
    return Relay(kind, message.dst, message.payload)


def relayed(kind: str, src: str, dst: str, payload: msgspec.Raw) -> bytes:
    """A message as its ``dst`` gets it."""
    return _encoder.encode(_Relayed(kind, src, dst, payload))


def expire(absent: str, to: str) -> bytes:
    """What a sender gets when what it sent to ``absent`` expired unread."""
    return _encoder.encode(_Relayed("EXPIRE", absent, to))


def error(message: str) -> bytes:
    return _encoder.encode(_WithPayload("ERROR", _Msg(message)))


OPEN = _encoder.encode(_TypeOnly("OPEN"))
ID_TAKEN_MESSAGE = _encoder.encode(_WithPayload("ID-TAKEN", _Msg(ID_TAKEN)))


def valid_id(peer_id: str, max_length: int) -> bool:
    return len(peer_id) <= max_length and ID_PATTERN.match(peer_id) is not None


def room_name(key: str) -> str:
    return ROOM_PREFIX + key

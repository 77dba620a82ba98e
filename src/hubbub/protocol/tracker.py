"""The WebTorrent tracker protocol over WebSocket (as bittorrent-tracker's server
speaks it to webtorrent, trystero and p2pt): frames in, typed messages out, and
the bytes the server sends. Sans-I/O.

A client announces itself in a swarm (an ``info_hash``) with WebRTC offers::

    {"action": "announce", "info_hash": IH, "peer_id": PID, "numwant": 5,
     "event": "started", "left": 0, "offers": [{"offer_id": OID, "offer": {...}}]}

and gets ``{"complete", "incomplete", "action": "announce", "interval",
"info_hash"}``; each offer goes to a different peer of the swarm as
``{"action": "announce", "offer", "offer_id", "peer_id", "info_hash"}``. A peer that
takes an offer announces ``{"answer", "to_peer_id", "offer_id"}``, and the answer
goes to that peer alone. ``info_hash``, ``peer_id`` and ``to_peer_id`` are 20
characters of "binary string" (each a code point below 256); offers and answers go
through untouched. A refusal is ``{"failure reason": ...}`` (with ``action`` and
``info_hash`` once the request named them).
"""

from __future__ import annotations

import msgspec

from hubbub.protocol import codec
from hubbub.protocol.errors import ErrorCode, ProtocolError

ABSENT = msgspec.Raw(b"")
"""A field the frame left out (a ``Raw`` cannot be ``None`` in msgspec)."""

ROOM_PREFIX = "tracker:"
"""A swarm's peers are the members of the room ``tracker:HEX-INFO-HASH``."""

MAX_OFFERS = 82
"""Most offers one announce hands out (the reference server's MAX_ANNOUNCE_PEERS);
more are left out."""

EVENTS = frozenset({"started", "stopped", "completed", "update", "paused", "empty"})


class Offer(msgspec.Struct, frozen=True):
    offer_id: msgspec.Raw
    offer: msgspec.Raw


class Announce(msgspec.Struct, frozen=True):
    info_hash: str
    """As the client sent it (20 binary characters)."""
    peer_id: str
    event: str
    complete: bool
    """``left`` is 0: the peer has everything."""
    offers: list[Offer]
    answer: msgspec.Raw = ABSENT
    to_peer_id: str | None = None
    offer_id: msgspec.Raw = ABSENT

    @property
    def swarm(self) -> str:
        """The room of the swarm."""
        return ROOM_PREFIX + hex_of(self.info_hash)

    @property
    def peer(self) -> str:
        """The peer's id as a member of the swarm's room (hex)."""
        return hex_of(self.peer_id)


class Scrape(msgspec.Struct, frozen=True):
    info_hashes: list[str]


class _Offer(msgspec.Struct):
    offer: msgspec.Raw = ABSENT
    offer_id: msgspec.Raw = ABSENT


class _Incoming(msgspec.Struct):
    action: str
    info_hash: object = None
    peer_id: object = None
    to_peer_id: object = None
    numwant: object = None
    left: object = None
    event: object = None
    offers: list[_Offer] | None = None
    answer: msgspec.Raw = ABSENT
    offer_id: msgspec.Raw = ABSENT


class _AnnounceReply(msgspec.Struct):
    complete: int
    incomplete: int
    action: str
    interval: int
    info_hash: str


class _Forwarded(msgspec.Struct, omit_defaults=True):
    action: str
    offer: msgspec.Raw = ABSENT
    answer: msgspec.Raw = ABSENT
    offer_id: msgspec.Raw = ABSENT
    peer_id: str = ""
    info_hash: str = ""


class _Failure(msgspec.Struct, omit_defaults=True):
    action: str | None = None
    failure_reason: str = msgspec.field(default="", name="failure reason")
    info_hash: str | None = None


class _Counts(msgspec.Struct):
    complete: int
    incomplete: int
    downloaded: int


class _Flags(msgspec.Struct):
    min_request_interval: int


class _ScrapeReply(msgspec.Struct):
    action: str
    files: dict[str, _Counts]
    flags: _Flags


_decoder = msgspec.json.Decoder(_Incoming)
_encoder = msgspec.json.Encoder()

IncomingTracker = Announce | Scrape


class TrackerError(ProtocolError):
    """A refusal, sent as ``failure reason`` (with the request's action and
    info_hash once they are known)."""

    def __init__(self, message: str, action: str | None = None, info_hash: str | None = None):
        super().__init__(ErrorCode.BAD_MESSAGE, message)
        self.action = action
        self.info_hash = info_hash


def hex_of(binary: str) -> str:
    """A binary string's hex (each character a byte)."""
    return binary.encode("latin-1").hex()


def _binary(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) != 20:
        raise TrackerError(f"invalid {name}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise TrackerError(f"invalid {name}") from None
    return value


def decode(text: str | bytes, max_depth: int) -> IncomingTracker:
    """One frame from a client; raises :class:`TrackerError` with the reference
    server's words for what it refuses."""
    codec.check_depth(text, max_depth)
    try:
        message = _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise TrackerError(f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise TrackerError("invalid request: not JSON") from None
    if message.action == "scrape":
        hashes = message.info_hash
        if isinstance(hashes, str):
            hashes = [hashes]
        if not isinstance(hashes, list) or not hashes:
            raise TrackerError("invalid info_hash")
        return Scrape([_binary(item, "info_hash") for item in hashes])
    if message.action != "announce":
        raise TrackerError(f"invalid action in WS request: {message.action[:32]}")
    info_hash = _binary(message.info_hash, "info_hash")
    peer_id = _binary(message.peer_id, "peer_id")
    event = message.event if message.event is not None else "update"
    if not isinstance(event, str) or event not in EVENTS:
        raise TrackerError("invalid event", "announce", info_hash)
    left = message.left
    complete = left == 0 or left == "0"
    offers: list[Offer] = []
    for item in (message.offers or ())[:MAX_OFFERS]:
        if not item.offer or not item.offer_id:
            raise TrackerError("invalid offer", "announce", info_hash)
        offers.append(Offer(item.offer_id, item.offer))
    to_peer_id = None
    if message.answer:
        try:
            to_peer_id = _binary(message.to_peer_id, "`to_peer_id` (required with `answer`)")
        except TrackerError as error:
            raise TrackerError(str(error), "announce", info_hash) from None
    return Announce(
        info_hash,
        peer_id,
        "update" if event == "empty" else event,
        complete,
        offers,
        message.answer,
        to_peer_id,
        message.offer_id,
    )


def announce_reply(info_hash: str, complete: int, incomplete: int, interval: int) -> bytes:
    return _encoder.encode(_AnnounceReply(complete, incomplete, "announce", interval, info_hash))


def offer(offer: Offer, peer_id: str, info_hash: str) -> bytes:
    """An offer as the peer chosen for it gets it."""
    return _encoder.encode(
        _Forwarded(
            "announce",
            offer=offer.offer,
            offer_id=offer.offer_id,
            peer_id=peer_id,
            info_hash=info_hash,
        )
    )


def answer(answer: msgspec.Raw, offer_id: msgspec.Raw, peer_id: str, info_hash: str) -> bytes:
    """An answer as the peer that made the offer gets it."""
    return _encoder.encode(
        _Forwarded(
            "announce", answer=answer, offer_id=offer_id, peer_id=peer_id, info_hash=info_hash
        )
    )


def failure(message: str, action: str | None = None, info_hash: str | None = None) -> bytes:
    return _encoder.encode(_Failure(action, message, info_hash))


def scrape_reply(counts: dict[str, tuple[int, int]], interval: int) -> bytes:
    """``counts``: info_hash (binary) -> (complete, incomplete)."""
    files = {ih: _Counts(c, i, c) for ih, (c, i) in counts.items()}
    return _encoder.encode(_ScrapeReply("scrape", files, _Flags(interval)))

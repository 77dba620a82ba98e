"""What the nodes of a cluster say to each other through Redis: the kinds of
publication, and the bytes of each.

Sans-I/O: bytes in, typed values out, and back; no socket, no event loop. A
publication that is not one of these (malformed, or published on our channels by
something else) raises :class:`WireError` and nothing else, for the broker to drop
and count.

A publication is one byte naming its :class:`Kind`, then its body::

    kind            channel           body
    ROOM          m hubbub:r:<room>   <origin><number><exclude>\\n<payload>
    CHAT          h hubbub:r:<room>   <origin><number><exclude>\\n<seq>\\n<payload>
    ROOM_ENDED    e hubbub:r:<room>   <origin>
    TAKE          T hubbub:r:<room>   {"s": session id, "b": the session taking it,
                                       "m": [user id, entry...]: the room's members,
                                       "md": the room's calls as MEDIA has them,
                                       if it has any}
    JOINED        j hubbub:r:<room>   {"u": user id, "e": entry, "a": announce (0, 1)}
    LEFT          l hubbub:r:<room>   {"u": user id, "e": entry, "a": announce (0, 1),
                                       "t": last seen (ms; 0: it did not chat)}
    UPDATED       v hubbub:r:<room>   {"u": user id, "e": entry, "o": the session it
                                       replaces (moved to another node), or none}
    MEDIA         M hubbub:r:<room>   {"v": version, "m": mode, "f": {user id: feed},
                                       "s": setting or "", "r": reason}
    USER          u hubbub:u          <origin><exclude>\\n<user id>\\n<payload>
    SESSION       s hubbub:n:<node>   <session id>\\n<payload>
    SESSIONS      S hubbub:n:<node>   (<session id> <payload length>\\n<payload>)...:
                                      several SESSION in one, in order
    CLAIMED       c hubbub:n:<node>   {"s": session id, "r": room, "o": outcome,
                                       "p": the entry replaced, or "",
                                       "m": [user id, entry, user id, entry...],
                                       "md": the room's calls as MEDIA has them,
                                       if it has any}
    CLOSE_SESSION x hubbub:n:<node>   {"s": session id, "c": close code, "r": reason,
                                       "a": announce}
    SNAPSHOT      y hubbub:n:<node>   {"r": room, "m": [user id, entry...]}
    CALL_MOVE     k hubbub:n:<node>   {"c": call id, "m": move, "u": user id,
                                       "s": session id, "f": ref, "r": room}
    ASK_SESSION   q hubbub:n:<node>   {"s": session id, "t": resume token, "b": asked by}
    OFFER         Q hubbub:n:<node>   {"b": asked by, "s": session id, "r": room
                                       ("": refused), "u": user id, "m": the id it
                                       moved to (ask there), or ""}
    HANDED        z hubbub:n:<node>   MessagePack: {"b": taken by, "st": SessionState
                                       or null}
    ADOPT         a hubbub:n:<node>   {"s": session id, "t": resume token, "r": room,
                                       "u": user id}

``<origin>`` is the publishing node's id (:data:`NODE_ID_LENGTH` characters), and
``<number>`` (:data:`NUMBER_LENGTH` hexadecimal digits) the publication's number on
that node: a node hears its own ROOM and CHAT publications back, and knows them by
their number (it delivers them to its own members then, in the order Redis carried
the room's channel; see :mod:`hubbub.broker.redis.rooms`). A node writes and reads
those through its :class:`Endpoint`, which knows its id. ``<exclude>`` is the
session id not to deliver to, or nothing. An *entry* is a member as the room's
members hash holds it: ``<session id>|<join order>|<info>``, where info is
``{"n": name, "g": grants, "h": hidden, "s": status, "c": reconnecting}``. A
*feed* is ``f`` and a letter for each of audio (``a``), video (``v``), simulcast
(``s``) it has: ``fav``.

CHAT is a ``chat`` message that its node stored, with its ``seq``: every node
delivers a room's chat in ``seq`` order. The Lua scripts (this folder's ``*.lua``)
publish JOINED, LEFT, CLAIMED, SNAPSHOT and the ROOM messages of a claim themselves,
numbered :data:`UNNUMBERED` (their node's members hear them with the claim's answer).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from enum import Enum

import msgspec

from hubbub.broker import ClaimOutcome, Member, SessionState, SharedMedia
from hubbub.media.modes import MediaSetting, Mode
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import MediaFeed

NODE_ID_LENGTH = 8
"""Characters of a node id (hexadecimal); a session id or call id starts with its
node's id and a dot."""

WIRE_VERSION = 2
"""What a node's alive key holds: the publications it reads. 1 (or a node before
this value existed): every kind but SESSIONS; 2: SESSIONS too. A node sends
SESSIONS only to the nodes that say 2, so nodes of both kinds share a cluster (a
rolling upgrade)."""

NUMBER_LENGTH = 8
"""Hexadecimal digits of a ROOM or CHAT publication's number on its node (it wraps
around at 16**8)."""

UNNUMBERED = 0
"""The number of what a Lua script publishes for a node (never one of its own)."""


class Kind(Enum):
    """The first byte of a publication."""

    ROOM = b"m"
    CHAT = b"h"
    ROOM_ENDED = b"e"
    JOINED = b"j"
    LEFT = b"l"
    UPDATED = b"v"
    USER = b"u"
    SESSION = b"s"
    SESSIONS = b"S"
    CLAIMED = b"c"
    CLOSE_SESSION = b"x"
    SNAPSHOT = b"y"
    CALL_MOVE = b"k"
    ASK_SESSION = b"q"
    OFFER = b"Q"
    HANDED = b"z"
    ADOPT = b"a"
    TAKE = b"T"
    MEDIA = b"M"


class WireError(ValueError):
    """A publication that is not one of ours: unknown kind, on the wrong channel, or
    malformed."""


# -- identifiers ----------------------------------------------------------------


def new_node_id() -> str:
    return secrets.token_hex(NODE_ID_LENGTH // 2)


def node_of(session_id: str) -> str | None:
    """The node a session id (or call id) names, if it names one."""
    if len(session_id) > NODE_ID_LENGTH and session_id[NODE_ID_LENGTH] == ".":
        return session_id[:NODE_ID_LENGTH]
    return None


# -- typed values -----------------------------------------------------------------


class RoomMessage(msgspec.Struct, frozen=True):
    """ROOM: a message to every member of a room."""

    exclude: str | None
    payload: bytes


class ChatMessage(msgspec.Struct, frozen=True):
    """CHAT: a stored chat message to every member of a room but its sender."""

    seq: int
    exclude: str | None
    payload: bytes


class Echo(msgspec.Struct, frozen=True):
    """This node's own ROOM or CHAT publication, heard back: its number."""

    number: int


class RoomEnded(msgspec.Struct, frozen=True):
    """An admin ended the room through another node."""


class MemberJoined(msgspec.Struct, frozen=True):
    member: Member
    announce: bool
    """The member did not announce it itself (a node back after an outage)."""


class MemberLeft(msgspec.Struct, frozen=True):
    member: Member
    announce: bool
    """The member did not announce it itself (its node reaped, or resynchronized)."""
    last_seen: int | None = None
    """It chatted in the room: when it left (ms since the epoch)."""


class MemberUpdated(msgspec.Struct, frozen=True):
    """A member's status or connection changed (its room heard it from its node), or
    its session moved to another node (``moved_from``: its id before)."""

    member: Member
    moved_from: str | None = None


class MediaChanged(msgspec.Struct, frozen=True):
    """MEDIA: the room's calls changed (through any node, this one included)."""

    media: SharedMedia


class UserMessage(msgspec.Struct, frozen=True):
    exclude: str | None
    user_id: str
    payload: bytes


class SessionMessage(msgspec.Struct, frozen=True):
    session_id: str
    payload: bytes


class SessionMessages(msgspec.Struct, frozen=True):
    """SESSIONS: messages to sessions of one node, in the order they were sent."""

    messages: list[SessionMessage]


class ClaimAnswer(msgspec.Struct, frozen=True):
    session_id: str
    room: str
    outcome: ClaimOutcome
    members: list[Member]
    """Everyone in the room after the claim, in join order."""
    replaced: Member | None
    """Whom an admitted claimant took the place of."""
    media: SharedMedia | None = None
    """The room's calls then, if it has any."""


class Snapshot(msgspec.Struct, frozen=True):
    room: str
    members: list[Member]


class CloseSession(
    msgspec.Struct,
    frozen=True,
    rename={"session_id": "s", "code": "c", "reason": "r", "announce": "a"},
):
    session_id: str
    code: CloseCode
    reason: str
    announce: bool


class CallMoved(
    msgspec.Struct,
    frozen=True,
    rename={
        "call_id": "c",
        "move": "m",
        "user_id": "u",
        "session_id": "s",
        "ref": "f",
        "room": "r",
    },
):
    call_id: str
    move: str
    user_id: str
    session_id: str
    ref: str | int | None
    room: str | None


class AskSession(
    msgspec.Struct,
    frozen=True,
    rename={"session_id": "s", "resume_token": "t", "asked_by": "b"},
):
    """Another node's client came back with this session's id and token."""

    session_id: str
    resume_token: str
    asked_by: str


class Offer(
    msgspec.Struct,
    frozen=True,
    rename={
        "asked_by": "b",
        "session_id": "s",
        "room": "r",
        "user_id": "u",
        "moved_to": "m",
    },
):
    """The answer to :class:`AskSession`: the session's room and user (to take it
    there); or the id it moved on to (ask there); or neither: no such session with
    that token."""

    asked_by: str
    session_id: str
    room: str
    user_id: str
    moved_to: str = ""


class Adopt(
    msgspec.Struct,
    frozen=True,
    rename={"session_id": "s", "resume_token": "t", "room": "r", "user_id": "u"},
):
    """A node that stops asks another to take one of its sessions."""

    session_id: str
    resume_token: str
    room: str
    user_id: str


class Take(msgspec.Struct, frozen=True):
    """On a room's channel: from here on, what the room gets is ``taken_by``'s, no
    longer ``session_id``'s; ``members``: the room's members then; ``media``: its
    calls then, if it has any (None too from a node of wire version 1)."""

    session_id: str
    taken_by: str
    members: list[Member]
    media: SharedMedia | None = None


class Handed(msgspec.Struct, frozen=True, rename={"taken_by": "b", "state": "st"}):
    """The state of the session ``taken_by`` took (None: it is gone)."""

    taken_by: str
    state: SessionState | None


RoomPublication = (
    RoomMessage
    | ChatMessage
    | Echo
    | RoomEnded
    | MemberJoined
    | MemberLeft
    | MemberUpdated
    | Take
    | MediaChanged
)
NodePublication = (
    SessionMessage
    | SessionMessages
    | ClaimAnswer
    | CloseSession
    | Snapshot
    | CallMoved
    | AskSession
    | Offer
    | Adopt
    | Handed
)
Request = CloseSession | CallMoved | AskSession | Offer | Adopt
"""What a node sends to another's channel as JSON."""

_ROOM = Kind.ROOM.value
_CHAT = Kind.CHAT.value
_ROOM_ENDED = Kind.ROOM_ENDED.value
_TAKE = Kind.TAKE.value
_MEDIA = Kind.MEDIA.value
_USER = Kind.USER.value
_SESSION = Kind.SESSION.value
_SESSIONS = Kind.SESSIONS.value
_MESSAGES = (_ROOM, _CHAT)
_CHANGES = (Kind.JOINED.value, Kind.LEFT.value, Kind.UPDATED.value)
_ADDRESS = 1 + NODE_ID_LENGTH
"""Where the address after the origin begins (USER)."""
_NUMBERED = _ADDRESS + NUMBER_LENGTH
"""Where the address after the origin and number begins (ROOM, CHAT)."""
_NUMBER_MASK = 16**NUMBER_LENGTH - 1
_REQUEST_KINDS: dict[type[Request], Kind] = {
    CloseSession: Kind.CLOSE_SESSION,
    CallMoved: Kind.CALL_MOVE,
    AskSession: Kind.ASK_SESSION,
    Offer: Kind.OFFER,
    Adopt: Kind.ADOPT,
}
_KINDS = {kind.value: kind for kind in Kind}
_json_encode = msgspec.json.Encoder().encode
_msgpack_encode = msgspec.msgpack.Encoder().encode


# -- what carries its origin: one node's end of the wire ----------------------------


class Endpoint:
    """Writes ROOM, CHAT, ROOM_ENDED and USER as node ``node_id`` publishes them, and
    reads them as it hears them: its own ROOM and CHAT come back as an :class:`Echo`
    of their number; its own USER and ROOM_ENDED as None (its members had them
    directly).

    Reading a ROOM or USER publication of another node is the hot path of a cluster
    (once per message, whatever the number of receivers): kept to a few slices and
    one decode.
    """

    __slots__ = ("_origin", "node_id")

    def __init__(self, node_id: str) -> None:
        if len(node_id) != NODE_ID_LENGTH or not node_id.isascii() or "." in node_id:
            raise ValueError(f"a node id is {NODE_ID_LENGTH} ASCII characters, no dot")
        self.node_id = node_id
        self._origin = node_id.encode()

    def room(self, number: int, exclude: str | None, payload: bytes) -> bytes:
        head = b"%s%s%08x" % (_ROOM, self._origin, number & _NUMBER_MASK)
        return head + (exclude or "").encode() + b"\n" + payload

    def chat(self, number: int, seq: int, exclude: str | None, payload: bytes) -> bytes:
        head = b"%s%s%08x" % (_CHAT, self._origin, number & _NUMBER_MASK)
        return head + (exclude or "").encode() + b"\n%d\n" % seq + payload

    def room_ended(self) -> bytes:
        return _ROOM_ENDED + self._origin

    def user(self, exclude: str | None, user_id: str, payload: bytes) -> bytes:
        head = _USER + self._origin + (exclude or "").encode()
        return head + b"\n" + user_id.encode() + b"\n" + payload

    def read_room(self, data: bytes) -> RoomPublication | None:
        """A publication on a room's channel."""
        kind = data[:1]
        if kind in _MESSAGES:  # the hot path, inline
            try:
                if data[1:_ADDRESS] == self._origin:
                    return Echo(int(data[_ADDRESS:_NUMBERED], 16))
                newline = data.find(b"\n", _NUMBERED)
                if newline < 0:
                    raise WireError(f"malformed publication ({_describe(data)}): no address")
                exclude = data[_NUMBERED:newline].decode() or None
                if kind == _ROOM:
                    return RoomMessage(exclude, data[newline + 1 :])
                end = data.find(b"\n", newline + 1)
                if end < 0:
                    raise WireError("malformed publication (CHAT): no seq")
                return ChatMessage(int(data[newline + 1 : end]), exclude, data[end + 1 :])
            except WireError:
                raise
            except ValueError as error:  # int(), and UnicodeDecodeError
                raise WireError(f"malformed publication ({_describe(data)}): {error}") from None
        if kind == _ROOM_ENDED:
            if len(data) != _ADDRESS:
                raise WireError("malformed publication (ROOM_ENDED)")
            return None if data[1:] == self._origin else RoomEnded()
        if kind == _MEDIA:
            try:
                return MediaChanged(_shared(_media(data[1:])))
            except (msgspec.DecodeError, ValueError) as error:
                raise WireError(f"malformed publication (MEDIA): {error}") from None
        if kind == _TAKE:
            try:
                take = _take(data[1:])
                media = None if take.md is None else _shared(take.md)
            except (msgspec.DecodeError, ValueError) as error:  # ValueError: a bad mode
                raise WireError(f"malformed publication (TAKE): {error}") from None
            return Take(take.s, take.b, decode_members(take.m), media)
        if kind in _CHANGES:
            try:
                change = _change(data[1:])
            except msgspec.DecodeError as error:
                raise WireError(f"malformed publication ({_describe(data)}): {error}") from None
            _, member = decode_entry(change.u, change.e)
            if kind == Kind.JOINED.value:
                return MemberJoined(member, bool(change.a))
            if kind == Kind.UPDATED.value:
                return MemberUpdated(member, change.o or None)
            return MemberLeft(member, bool(change.a), change.t or None)
        raise WireError(f"not for a room's channel ({_describe(data)})")

    def read_user(self, data: bytes) -> UserMessage | None:
        """A publication on the users' channel."""
        if data[:1] != _USER:
            raise WireError(f"not for the users' channel ({_describe(data)})")
        exclude, rest = self._addressed(data)
        if rest is None:
            return None
        user_id, newline, payload = rest.partition(b"\n")
        if not newline:
            raise WireError("malformed publication (USER): no user id")
        try:
            return UserMessage(exclude, user_id.decode(), payload)
        except UnicodeDecodeError as error:
            raise WireError(f"malformed publication (USER): {error}") from None

    def _addressed(self, data: bytes) -> tuple[str | None, bytes | None]:
        """``<kind><origin><exclude>\\n<rest>``: (exclude, rest); rest None if this
        node is the origin."""
        if data[1:_ADDRESS] == self._origin:
            return None, None
        newline = data.find(b"\n", _ADDRESS)
        if newline < 0:
            raise WireError(f"malformed publication ({_describe(data)}): no address")
        try:
            exclude = data[_ADDRESS:newline].decode() or None
        except UnicodeDecodeError as error:
            raise WireError(f"malformed publication ({_describe(data)}): {error}") from None
        return exclude, data[newline + 1 :]


# -- what does not: to one node ---------------------------------------------------


def encode_session(session_id: str, payload: bytes) -> bytes:
    return _SESSION + session_id.encode() + b"\n" + payload


def encode_sessions(messages: Sequence[tuple[str, bytes]]) -> bytes:
    """Messages to sessions of one node (session id, payload) as one publication:
    SESSION for one, SESSIONS for more."""
    if len(messages) == 1:
        return encode_session(*messages[0])
    parts = [_SESSIONS]
    for session_id, payload in messages:
        parts.append(f"{session_id} {len(payload)}\n".encode())
        parts.append(payload)
    return b"".join(parts)


def _sessions(data: bytes) -> SessionMessages:
    messages = []
    offset = 1
    size = len(data)
    while offset < size:
        newline = data.find(b"\n", offset)
        space = data.rfind(b" ", offset, newline) if newline > 0 else -1
        if space < 0:
            raise WireError("malformed publication (SESSIONS): no session id and length")
        length = data[space + 1 : newline]
        start = newline + 1
        end = start + int(length) if length.isdigit() else size + 1
        if end > size:
            raise WireError("malformed publication (SESSIONS): a length past the end")
        messages.append(SessionMessage(data[offset:space].decode(), data[start:end]))
        offset = end
    if not messages:
        raise WireError("malformed publication (SESSIONS): no message")
    return SessionMessages(messages)


def encode_request(request: Request) -> bytes:
    return _REQUEST_KINDS[type(request)].value + _json_encode(request)


def encode_handed(handed: Handed) -> bytes:
    """MessagePack, not JSON: a session's replay buffer is bytes."""
    return Kind.HANDED.value + _msgpack_encode(handed)


def decode_node(data: bytes) -> NodePublication:
    """A publication on a node's channel."""
    if data[:1] == _SESSION:  # the hot path (a signal between two nodes' members)
        newline = data.find(b"\n")
        if newline < 0:
            raise WireError("malformed publication (SESSION): no session id")
        try:
            session_id = data[1:newline].decode()
        except UnicodeDecodeError as error:
            raise WireError(f"malformed publication (SESSION): {error}") from None
        return SessionMessage(session_id, data[newline + 1 :])
    kind = _KINDS.get(data[:1])
    try:
        match kind:
            case Kind.SESSIONS:
                return _sessions(data)
            case Kind.CLAIMED:
                claimed = _claimed(data[1:])
                members = decode_members(claimed.m)
                replaced = None
                if claimed.o is ClaimOutcome.ADMITTED and claimed.p:
                    claimant = next((m for m in members if m.session_id == claimed.s), None)
                    if claimant is not None:
                        _, replaced = decode_entry(claimant.user_id, claimed.p)
                media = None if claimed.md is None else _shared(claimed.md)
                return ClaimAnswer(claimed.s, claimed.r, claimed.o, members, replaced, media)
            case Kind.SNAPSHOT:
                snapshot = _snapshot(data[1:])
                return Snapshot(snapshot.r, decode_members(snapshot.m))
            case Kind.CLOSE_SESSION | Kind.CALL_MOVE | Kind.ASK_SESSION | Kind.OFFER | Kind.ADOPT:
                return _requests[kind](data[1:])
            case Kind.HANDED:
                return _handed(data[1:])
    except (msgspec.DecodeError, ValueError) as error:  # UnicodeDecodeError, a bad mode
        raise WireError(f"malformed publication ({_describe(data)}): {error}") from None
    raise WireError(f"not for a node's channel ({_describe(data)})")


# -- members ----------------------------------------------------------------------


class _Info(msgspec.Struct, frozen=True):
    """A member's fields in its entry (the Lua scripts look for ``"h":true``)."""

    n: str | None = None
    g: list[str] | None = None
    h: bool = False
    s: str | None = None
    c: bool = False


def encode_info(member: Member) -> str:
    """The ``<info>`` part of a member's entry."""
    info = _Info(
        n=member.name, g=member.grants, h=member.hidden, s=member.status, c=member.reconnecting
    )
    return _json_encode(info).decode()


def decode_entry(user_id: str | bytes, entry: str | bytes) -> tuple[int, Member]:
    """(join order, member) from a members hash's field and value."""
    try:
        user = user_id.decode() if isinstance(user_id, bytes) else user_id
        text = entry.decode() if isinstance(entry, bytes) else entry
        session_id, order, info = text.split("|", 2)
        fields = _info(info)
        member = Member(
            user_id=user,
            session_id=session_id,
            name=fields.n,
            grants=fields.g,
            hidden=fields.h,
            status=fields.s or "online",
            reconnecting=fields.c,
        )
        return int(order), member
    except (ValueError, msgspec.DecodeError) as error:  # UnicodeDecodeError among them
        raise WireError(f"malformed member entry: {error}") from None


def decode_members(flat: Sequence[str] | Mapping[str, str]) -> list[Member]:
    """The members of HGETALL's flat ``[user, entry, user, entry...]`` (or a mapping
    user -> entry), in join order."""
    if isinstance(flat, Mapping):
        pairs = list(flat.items())
    elif len(flat) % 2:
        raise WireError("malformed member list: an odd number of items")
    else:
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
    entries = [decode_entry(user_id, entry) for user_id, entry in pairs]
    entries.sort(key=lambda pair: pair[0])
    return [member for _, member in entries]


# -- what the Lua scripts write ---------------------------------------------------


class _Change(msgspec.Struct):
    """JOINED, LEFT, UPDATED."""

    u: str
    e: str
    a: int = 0
    t: int = 0
    o: str = ""


class _Media(msgspec.Struct):
    """MEDIA, and a claim's ``md``."""

    v: int
    m: str
    f: dict[str, str]
    """User id -> feed (cjson writes an empty table as ``{}``)."""
    s: str = ""
    r: str = "auto"


class _Claimed(msgspec.Struct):
    s: str
    r: str
    o: ClaimOutcome
    p: str
    m: list[str] | dict[str, str]
    """HGETALL's flat list, or ``{}`` (how Lua's cjson writes an empty table)."""
    md: _Media | None = None


class _Take(msgspec.Struct):
    s: str
    b: str
    m: list[str] | dict[str, str]
    md: _Media | None = None


class _Snapshot(msgspec.Struct):
    r: str
    m: list[str] | dict[str, str]


_change = msgspec.json.Decoder(_Change).decode
_media = msgspec.json.Decoder(_Media).decode
_claimed = msgspec.json.Decoder(_Claimed).decode
_snapshot = msgspec.json.Decoder(_Snapshot).decode
_info = msgspec.json.Decoder(_Info).decode
_handed = msgspec.msgpack.Decoder(Handed).decode
_take = msgspec.json.Decoder(_Take).decode
_requests: dict[Kind, Callable[[bytes], Request]] = {
    kind: msgspec.json.Decoder(value).decode for value, kind in _REQUEST_KINDS.items()
}


def encode_feed(feed: MediaFeed) -> str:
    """A feed as ``media.lua`` keeps it."""
    return "f" + "a" * feed.audio + "v" * feed.video + "s" * feed.simulcast


def decode_feed(user_id: str, text: str) -> MediaFeed:
    if text[:1] != "f" or not set(text[1:]) <= {"a", "v", "s"}:
        raise ValueError(f"not a feed: {text[:20]!r}")
    return MediaFeed(user_id, "a" in text, "v" in text, "s" in text)


def _shared(media: _Media) -> SharedMedia:
    return SharedMedia(
        media.v,
        Mode(media.m),
        [decode_feed(user_id, text) for user_id, text in media.f.items()],
        MediaSetting(media.s) if media.s else None,
        media.r,
    )


def _describe(data: bytes) -> str:
    kind = _KINDS.get(data[:1])
    return f"kind {data[:1]!r}" if kind is None else kind.name

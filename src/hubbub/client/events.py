"""What a :class:`~hubbub.client.Client` hands its user: one event per server message,
plus the client's own news about its connection.

Server messages are decoded into typed events where this client knows the type, and
into :class:`ServerMessage` (the type and the raw fields) where it does not, so a
newer server's additions reach the application instead of being dropped. Unknown
fields in a known message are ignored, as ``docs/protocol.md`` asks of clients.

The wire format is the one of :mod:`hubbub.protocol.messages`: each event takes its
``type`` from the protocol's struct for that message, and has the same fields under
the same names (``tests/sdk/test_state.py`` checks it). The events are that
format's reading by a client: frozen, and lenient where a server of the classic
protocol leaves something out (a ``room-joined`` without ``lastSeq``, a ``chat``
without ``seq``), where the protocol's structs are the server's strict encoding.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.client.outgoing import type_of
from hubbub.protocol import messages as protocol
from hubbub.protocol.messages import CONNECTED, ONLINE

__all__ = [
    "Broadcast",
    "CallAccepted",
    "CallAnsweredElsewhere",
    "CallCancelled",
    "CallDeclined",
    "CallEnded",
    "CallIncoming",
    "CallMissed",
    "CallRinging",
    "ChatAck",
    "ChatGap",
    "ChatMessage",
    "Disconnected",
    "Event",
    "History",
    "IceServers",
    "Notification",
    "NotificationReceived",
    "NotificationsRead",
    "OfflineMember",
    "Participant",
    "ParticipantRemoved",
    "ParticipantUpdated",
    "Pong",
    "PresenceChanged",
    "ReconnectHint",
    "Reconnected",
    "Resumed",
    "RoomEnded",
    "RoomJoined",
    "RoomLeft",
    "ServerError",
    "ServerMessage",
    "SignalReceived",
    "StoredChat",
    "TypingChanged",
    "UnreadNotifications",
    "UserJoined",
    "UserLeft",
    "WaitingForUserId",
    "decode_event",
    "decode_frame",
]


class _Message(msgspec.Struct, tag_field="type", rename="camel", frozen=True, kw_only=True):
    """Base of the server messages this client knows."""


class Participant(msgspec.Struct, rename="camel", frozen=True):
    """Another member of the room, and this client's negotiation role toward it."""

    user_id: str
    polite: bool
    """True when this client is the polite peer toward that member (it joined later)."""
    name: str | None = None
    """The display name from the member's token, if it has one."""
    grants: list[str] | None = None
    status: str = ONLINE
    """Its presence status: ``online``, ``away`` or ``busy``."""
    connection: str = CONNECTED
    """``reconnecting`` while its connection is lost and it may come back (the
    server keeps its place for a grace period), else ``connected``."""


class StoredChat(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A chat message the server has stored, as ``history`` lists it."""

    id: str
    seq: int
    """The room's sequence number: 1, 2, 3... with no gaps."""
    ts: int
    """When the server stored it, in milliseconds since 1970-01-01 UTC."""
    user_id: str
    message: str
    client_id: str | None = None


class OfflineMember(msgspec.Struct, rename="camel", frozen=True):
    """A user who chatted in the room and is not in it now, and when it was last
    there (milliseconds since 1970-01-01 UTC)."""

    user_id: str
    last_seen: int


class RoomJoined(_Message, tag=type_of(protocol.RoomJoined), frozen=True):
    """This client is in ``room`` as ``user_id``; ``participants`` were there first.

    On a server that stores chat, ``history`` holds the room's last messages (oldest
    first) and ``last_seq`` the room's last sequence number; every message after
    it arrives live. ``last_seq`` is None on a server that stores nothing."""

    room: str
    user_id: str
    session_id: str
    participants: list[Participant]
    ref: str | int | None = None
    name: str | None = None
    grants: list[str] | None = None
    """What this client's token grants (None without a token)."""
    ice_servers: list[dict[str, Any]] = msgspec.field(default_factory=list)
    """``RTCConfiguration.iceServers`` from the server: STUN, and TURN with credentials."""
    ice_servers_expire_at: float | None = None
    history: list[StoredChat] = msgspec.field(default_factory=list)
    last_seq: int | None = None
    resume_token: str | None = None
    status: str = ONLINE
    """This client's own presence status."""
    offline: list[OfflineMember] = msgspec.field(default_factory=list)
    """The room's offline members, most recently seen first."""
    media_mode: str | None = None
    """``sfu`` when the room's calls go through the media server (see
    :class:`hubbub.peer.sfu.SfuMedia`); None in a mesh."""


class RoomLeft(_Message, tag=type_of(protocol.RoomLeft), frozen=True):
    room: str
    ref: str | int | None = None


class UserJoined(_Message, tag=type_of(protocol.UserJoined), frozen=True):
    user_id: str
    polite: bool
    name: str | None = None
    grants: list[str] | None = None
    status: str = ONLINE


class ParticipantUpdated(_Message, tag=type_of(protocol.ParticipantUpdated), frozen=True):
    """Another member's connection was lost and it may come back
    (``connection="reconnecting"``), or it is back (``"connected"``). A member that
    does not come back within the server's grace period leaves (:class:`UserLeft`)."""

    user_id: str
    connection: str


class ReconnectHint(_Message, tag=type_of(protocol.Reconnect), frozen=True):
    """The server is shutting down and asks to be reconnected to after ``after_ms``
    milliseconds; the client does so by itself (the close with 1001 follows), and
    resumes its session where ``resume`` says another node of the cluster took it
    (else it joins afresh)."""

    after_ms: int
    resume: bool = False


class IceServers(_Message, tag=type_of(protocol.IceServers), frozen=True):
    """Fresh TURN credentials for the peer connections made from now on."""

    ice_servers: list[dict[str, Any]]
    ice_servers_expire_at: float | None = None


class UserLeft(_Message, tag=type_of(protocol.UserLeft), frozen=True):
    user_id: str


class ChatMessage(_Message, tag=type_of(protocol.ChatRelay), frozen=True):
    """Another member's chat message; ``id``, ``seq`` and ``ts`` are there when the
    server stores chat (as in :class:`StoredChat`)."""

    message: str
    user_id: str
    id: str | None = None
    seq: int | None = None
    ts: int | None = None
    client_id: str | None = None


class ChatAck(_Message, tag=type_of(protocol.ChatAck), frozen=True):
    """Our chat message ``client_id`` is stored as ``id``/``seq``; ``duplicate``
    when it had been stored before (a resend after a lost connection)."""

    id: str
    seq: int
    ts: int
    client_id: str | None = None
    duplicate: bool = False
    ref: str | int | None = None


class History(_Message, tag=type_of(protocol.HistoryPage), frozen=True):
    """A page of the room's stored chat, oldest first (the reply to ``history``)."""

    room: str
    messages: list[StoredChat]
    ref: str | int | None = None


class SignalReceived(_Message, tag=type_of(protocol.SignalRelay), frozen=True):
    """A ``signal`` relayed from ``from_user_id``; ``signal`` is any JSON value."""

    signal: Any
    from_user_id: str


class Pong(_Message, tag=type_of(protocol.Pong), frozen=True):
    ref: str | int | None = None


class PresenceChanged(_Message, tag=type_of(protocol.PresenceUpdate), frozen=True):
    """A member's presence status changed: ``online``, ``away``, ``busy``, or
    ``offline`` (with ``last_seen``) for one of the room's offline members who just
    left. Also the answer to :meth:`Client.set_status` (``user_id`` is then ours)."""

    status: str
    user_id: str | None = None
    last_seen: int | None = None
    ref: str | int | None = None


class TypingChanged(_Message, tag=type_of(protocol.TypingRelay), frozen=True):
    """A member started (``active``) or stopped typing. Take it as stopped when
    nothing renews it for a few seconds (:attr:`Client.typing_users` does)."""

    user_id: str
    active: bool


class Broadcast(_Message, tag=type_of(protocol.RoomBroadcast), frozen=True):
    """A message from the application's backend to everyone in the room."""

    room: str
    ts: int
    data: Any = None
    event: str | None = None


class Notification(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A notification for this user from the application's backend (unread until
    marked read, from any of the user's connections)."""

    id: int
    ts: int
    """When it was stored, in milliseconds since 1970-01-01 UTC."""
    title: str | None = None
    body: str | None = None
    data: Any = None


class NotificationReceived(_Message, tag=type_of(protocol.NotificationPush), frozen=True):
    """A notification sent to this user just now (as in :class:`Notification`)."""

    id: int
    ts: int
    title: str | None = None
    body: str | None = None
    data: Any = None

    @property
    def notification(self) -> Notification:
        return Notification(
            id=self.id, ts=self.ts, title=self.title, body=self.body, data=self.data
        )


class UnreadNotifications(_Message, tag=type_of(protocol.NotificationList), frozen=True):
    """The user's unread notifications, oldest first: sent when the connection
    joins its first room (or shows a token), and the answer to
    :meth:`Client.fetch_notifications`. ``more``: more wait after these."""

    notifications: list[Notification]
    more: bool = False
    ref: str | int | None = None


class NotificationsRead(_Message, tag=type_of(protocol.NotificationsRead), frozen=True):
    """These notifications were marked read (by this connection, or another of the
    user's)."""

    ids: list[int]
    ref: str | int | None = None


class CallRinging(_Message, tag=type_of(protocol.CallRinging), frozen=True):
    """Our call to ``target_user_id`` rings on its connections (the answer to
    :meth:`Client.call`); ``call_id`` names it from now on."""

    call_id: str
    target_user_id: str
    ref: str | int | None = None


class CallIncoming(_Message, tag=type_of(protocol.CallIncoming), frozen=True):
    """``from_user_id`` calls us: accept, decline, or let it ring."""

    call_id: str
    from_user_id: str
    name: str | None = None


class CallAccepted(_Message, tag=type_of(protocol.CallAccepted), frozen=True):
    """The call is on: both parties join ``room`` (a fresh room of the call's own)
    and connect there; ``peer_user_id`` is the other party."""

    call_id: str
    room: str
    peer_user_id: str
    ref: str | int | None = None


class CallAnsweredElsewhere(_Message, tag=type_of(protocol.CallAnsweredElsewhere), frozen=True):
    """Another connection of ours accepted the call: stop ringing."""

    call_id: str


class CallDeclined(_Message, tag=type_of(protocol.CallDeclined), frozen=True):
    call_id: str
    ref: str | int | None = None


class CallCancelled(_Message, tag=type_of(protocol.CallCancelled), frozen=True):
    call_id: str
    ref: str | int | None = None


class CallMissed(_Message, tag=type_of(protocol.CallMissed), frozen=True):
    """Nobody answered in time (or the callee's last connection went)."""

    call_id: str


class CallEnded(_Message, tag=type_of(protocol.CallEnded), frozen=True):
    """The call is over: ``reason`` is ``hung-up``, ``left`` (a party left the
    call's room) or ``disconnected``; ``by_user_id`` ended it."""

    call_id: str
    reason: str
    by_user_id: str
    ref: str | int | None = None


class ParticipantRemoved(_Message, tag=type_of(protocol.ParticipantRemoved), frozen=True):
    """The answer to :meth:`Client.remove_participant` (an admin's)."""

    user_id: str
    ref: str | int | None = None


class RoomEnded(_Message, tag=type_of(protocol.RoomEnded), frozen=True):
    """The answer to :meth:`Client.end_room` (an admin's): we are out of the room."""

    room: str
    ref: str | int | None = None


class MediaFeed(msgspec.Struct, rename="camel", frozen=True):
    """A member's feed on the media server."""

    user_id: str
    audio: bool
    video: bool
    simulcast: bool = False


class MediaMode(_Message, tag=type_of(protocol.MediaMode), frozen=True):
    """The room's calls go peer to peer (``mesh``) or through the media server
    (``sfu``) from now on (see :class:`hubbub.peer.sfu.SfuMedia`)."""

    mode: str
    feeds: list[MediaFeed] = msgspec.field(default_factory=list)
    reason: str | None = None


class MediaFeeds(_Message, tag=type_of(protocol.MediaFeeds), frozen=True):
    """The room's feeds on the media server, all of them, as they are now."""

    feeds: list[MediaFeed]


class SessionDescription(msgspec.Struct, frozen=True):
    type: str
    sdp: str


class MediaAnswered(_Message, tag=type_of(protocol.MediaAnswered), frozen=True):
    """The media server's answer to this client's offer on ``connection``."""

    connection: str
    jsep: SessionDescription
    ref: str | int | None = None


class MediaStream(msgspec.Struct, rename="camel", frozen=True):
    mid: str
    kind: str
    user_id: str
    active: bool


class MediaOffer(_Message, tag=type_of(protocol.MediaOffer), frozen=True):
    """An offer for subscriber connection ``connection``, to answer."""

    connection: str
    jsep: SessionDescription
    streams: list[MediaStream]
    ref: str | int | None = None


class MediaClosed(_Message, tag=type_of(protocol.MediaClosed), frozen=True):
    """A connection to the media server closed of its own accord."""

    connection: str


class ServerError(_Message, tag=type_of(protocol.Error), frozen=True):
    """The server refused something (see the error codes in ``docs/protocol.md``)."""

    code: str
    message: str
    ref: str | int | None = None
    reason: str | None = None
    """For some codes, which case it is (``resume-failed``: ``unknown-session``,
    ``overrun``)."""
    held_for_ms: int | None = None
    """For ``user-id-taken``: the id is held for a session that lost its connection
    and may still resume, for at most this long (then it is free)."""


class ServerMessage(msgspec.Struct, frozen=True):
    """A server message of a type this client does not know (yet)."""

    type: str
    data: dict[str, Any]


class Disconnected(msgspec.Struct, frozen=True):
    """The connection to the server is gone.

    ``code`` is the WebSocket close code, or None when the connection was lost
    without one; ``reason`` the words that came with it. ``will_retry`` says whether
    the client is reconnecting. ``name`` names a final close code, after which it
    never does (``replaced``, ``removed``, ``room-ended``...: the names of
    :data:`~hubbub.protocol.errors.FINAL_CLOSE_CODES`, which hubbub.js reports as
    ``room.closeReason.code``); it is None after any other close.
    """

    code: int | None
    reason: str
    will_retry: bool
    name: str | None = None


class Reconnected(msgspec.Struct, frozen=True):
    """The client is back in its room as a new member, after ``attempts`` tries; a
    :class:`RoomJoined` with the room as it is now follows, then the chat messages
    stored while it was away (as :class:`ChatMessage` events, oldest first), then
    the live stream.

    ``resume_refused`` says why the old session could not be resumed
    (``unknown-session``: the server restarted, or the grace period was over;
    ``overrun``: more was sent than it keeps), None when no resume was tried (the
    server closed the connection, or asked to be reconnected to)."""

    attempts: int
    resume_refused: str | None = None


class Resumed(msgspec.Struct, frozen=True):
    """The client took its session back after ``attempts`` tries: same room, same
    place, nobody saw it leave. The ``missed`` messages the server sent meanwhile
    follow as ordinary events, each once and in order, then the live stream."""

    attempts: int
    missed: int


class ChatGap(msgspec.Struct, frozen=True):
    """Chat stored while the client was away that it could not fetch: the messages
    numbered after ``after_seq`` and before ``before_seq`` (retention removed them,
    or there were more than the client's ``max_catch_up``). Page back with
    :meth:`Client.history` for what is still there."""

    after_seq: int
    before_seq: int


class WaitingForUserId(msgspec.Struct, frozen=True):
    """The join was refused ``user-id-taken``, the id held for a session that lost
    its connection and may still resume (often this very program's, from before it
    crashed or restarted): the join is tried again in ``seconds``, once the server
    lets the id go unless that session comes back."""

    user_id: str
    seconds: float


KnownMessage = (
    RoomJoined
    | RoomLeft
    | UserJoined
    | UserLeft
    | ParticipantUpdated
    | ReconnectHint
    | IceServers
    | ChatMessage
    | ChatAck
    | History
    | SignalReceived
    | Pong
    | PresenceChanged
    | TypingChanged
    | Broadcast
    | NotificationReceived
    | UnreadNotifications
    | NotificationsRead
    | CallRinging
    | CallIncoming
    | CallAccepted
    | CallAnsweredElsewhere
    | CallDeclined
    | CallCancelled
    | CallMissed
    | CallEnded
    | ParticipantRemoved
    | RoomEnded
    | MediaMode
    | MediaFeeds
    | MediaAnswered
    | MediaOffer
    | MediaClosed
    | ServerError
)

Event = (
    KnownMessage | ServerMessage | Disconnected | Reconnected | Resumed | ChatGap | WaitingForUserId
)
"""Everything ``async for event in client`` can yield."""


class _Numbered(msgspec.Struct):
    """A server message's number in its session (``n``), which the events leave out."""

    n: int | None = None


_known = msgspec.json.Decoder(KnownMessage)
_any = msgspec.json.Decoder(dict[str, Any])
_number = msgspec.json.Decoder(_Numbered)


def decode_frame(frame: str | bytes) -> tuple[int | None, KnownMessage | ServerMessage | None]:
    """One server frame as its ``n`` and its event (see :func:`decode_event`)."""
    event = decode_event(frame)
    if event is None:
        return None, None
    try:
        n = _number.decode(frame).n
    except msgspec.ValidationError:
        n = None
    return n, event


def decode_event(frame: str | bytes) -> KnownMessage | ServerMessage | None:
    """One server frame as an event; None for a frame that is not a JSON object with
    a string ``type`` (a broken server; the client logs and skips it)."""
    try:
        known: KnownMessage = _known.decode(frame)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError:
        return None
    else:
        return known
    try:
        data = _any.decode(frame)
    except msgspec.DecodeError:
        return None
    kind = data.pop("type", None)
    if not isinstance(kind, str):
        return None
    data.pop("n", None)
    return ServerMessage(type=kind, data=data)

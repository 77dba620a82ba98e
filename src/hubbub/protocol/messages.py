"""The messages of hubbub's WebSocket protocol, as typed structs.

Field names on the wire are camelCase, as in the seed protocol (``userId``,
``targetUserId``, ``fromUserId``); attributes here are snake_case. Unknown fields
in incoming messages are ignored, so a client may send more than hubbub reads.
``docs/protocol.md`` describes every message with examples.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_INTEGER = 2**53 - 1
"""The largest integer a client may send, in magnitude: JavaScript's
``Number.MAX_SAFE_INTEGER``, the largest a browser holds exactly. Seqs, ids and
counts never come near it, and it keeps every number far inside the store's 64-bit
integers: a larger one is refused here (``bad-message``) instead of failing there."""

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=MAX_INTEGER)]
"""A chat ``seq``, a notification id or a count: 1 to :data:`MAX_INTEGER`."""

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_INTEGER)]
"""A session's message number ``n``: 0 (none yet) to :data:`MAX_INTEGER`."""

Ref = (
    Annotated[str, msgspec.Meta(max_length=64)]
    | Annotated[int, msgspec.Meta(ge=-MAX_INTEGER, le=MAX_INTEGER)]
)
"""A client's own request id, echoed in the reply or error it caused."""


class Incoming(msgspec.Struct, tag_field="type", rename="camel", frozen=True, kw_only=True):
    """Base of every message a client sends."""

    ref: Ref | None = None


class JoinRoom(Incoming, tag="join-room", frozen=True):
    room: str
    user_id: str | None = None
    token: str | None = None
    """An access token; the identity comes from it, not from ``user_id``."""
    status: str | None = None
    """The presence status to join with (``online`` if left out)."""
    features: list[Annotated[str, msgspec.Meta(max_length=32)]] | None = None
    """What the client can do beyond the seed protocol: ``sfu`` (it takes part in
    calls through the media server, see ``media-mode``)."""


class LeaveRoom(Incoming, tag="leave-room", frozen=True):
    pass


class Signal(Incoming, tag="signal", frozen=True):
    target_user_id: str
    signal: msgspec.Raw
    """Relayed byte for byte: hubbub never looks inside an offer, answer or candidate."""


class Chat(Incoming, tag="chat", frozen=True):
    message: str
    client_id: str | None = None
    """The client's own id for this message: sent again (after a lost connection,
    say), it is stored once and acknowledged with the first copy's id and seq."""


class History(Incoming, tag="history", frozen=True):
    before_seq: PositiveInt | None = None
    limit: PositiveInt | None = None


class Ping(Incoming, tag="ping", frozen=True):
    pass


class SetPresence(Incoming, tag="presence", frozen=True):
    status: str
    """One of :data:`SETTABLE_STATUSES`."""


class Typing(Incoming, tag="typing", frozen=True):
    active: bool


class RemoveParticipant(Incoming, tag="remove-participant", frozen=True):
    """Admin: take a member out of the sender's room."""

    user_id: str


class EndRoom(Incoming, tag="end-room", frozen=True):
    """Admin: take every member out of the sender's room."""


class GetNotifications(Incoming, tag="notifications", frozen=True):
    """The user's unread notifications, oldest first."""

    limit: PositiveInt | None = None


class MarkNotificationsRead(Incoming, tag="notification-read", frozen=True):
    ids: list[PositiveInt]


class CallRequest(Incoming, tag="call-request", frozen=True):
    """Ring a user on every one of its connections."""

    target_user_id: str


class CallAccept(Incoming, tag="call-accept", frozen=True):
    call_id: str


class CallDecline(Incoming, tag="call-decline", frozen=True):
    call_id: str


class CallCancel(Incoming, tag="call-cancel", frozen=True):
    call_id: str


class CallEnd(Incoming, tag="call-end", frozen=True):
    """Hang up a call in progress."""

    call_id: str


class Resume(Incoming, tag="resume", frozen=True):
    """Take back a session whose connection was lost, from message ``last_n`` on."""

    session_id: str
    resume_token: str
    last_n: NonNegativeInt
    """The ``n`` of the last message the client received in that session (0: none)."""


# -- calls through the media server (rooms in SFU mode) -------------------------

Connection = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern="^[A-Za-z0-9_-]+$")]
"""A client's name for one of its WebRTC connections to the media server:
``publisher`` is the one it sends on; any other name is a subscriber connection."""

PUBLISHER = "publisher"
"""The connection a member sends its camera and microphone on."""
MAIN_SUBSCRIBER = "main"
"""The subscriber connection a client uses when it names none."""


class SessionDescription(msgspec.Struct, frozen=True):
    """An offer or an answer, as ``RTCSessionDescriptionInit`` has it."""

    type: Literal["offer", "answer"]
    sdp: str


class IceCandidate(msgspec.Struct, rename="camel", frozen=True, omit_defaults=True):
    """An ICE candidate, as ``RTCIceCandidateInit`` has it."""

    candidate: str
    sdp_mid: str | None = None
    sdp_m_line_index: Annotated[int, msgspec.Meta(ge=0, le=1024)] | None = None


class MediaPublish(Incoming, tag="media-publish", frozen=True):
    """Send this member's camera and microphone through the media server."""

    jsep: SessionDescription


class MediaUnpublish(Incoming, tag="media-unpublish", frozen=True):
    """Stop sending (the ``publisher`` connection closes)."""


class MediaSubscribe(Incoming, tag="media-subscribe", frozen=True):
    """Receive these members' feeds on subscriber connection ``connection``."""

    feeds: list[str]
    connection: Connection = MAIN_SUBSCRIBER


class MediaUnsubscribe(Incoming, tag="media-unsubscribe", frozen=True):
    feeds: list[str]
    connection: Connection = MAIN_SUBSCRIBER


class MediaAnswer(Incoming, tag="media-answer", frozen=True):
    """The client's answer to the latest ``media-offer`` of a subscriber connection."""

    jsep: SessionDescription
    connection: Connection = MAIN_SUBSCRIBER


class MediaConfigure(Incoming, tag="media-configure", frozen=True):
    """Change a connection: on ``publisher``, what is forwarded (``audio``,
    ``video``), the bitrate cap, or a new offer (``jsep``); on a subscriber
    connection, which simulcast layer of ``userId``'s video it gets."""

    connection: Connection = PUBLISHER
    audio: bool | None = None
    video: bool | None = None
    bitrate: Annotated[int, msgspec.Meta(ge=8_000, le=100_000_000)] | None = None
    jsep: SessionDescription | None = None
    user_id: str | None = None
    substream: Annotated[int, msgspec.Meta(ge=0, le=2)] | None = None
    temporal: Annotated[int, msgspec.Meta(ge=0, le=2)] | None = None


class MediaCandidate(Incoming, tag="media-candidate", frozen=True):
    """An ICE candidate of the client's end of a connection; ``null``: no more."""

    connection: Connection
    candidate: IceCandidate | None = None


class MediaLeave(Incoming, tag="media-leave", frozen=True):
    """Close one connection to the media server, or all of them."""

    connection: Connection | None = None


class MediaSending(Incoming, tag="media-sending", frozen=True):
    """The member sends a camera or a microphone (to its peers, in mesh mode), or
    stopped: how a room in ``auto`` mode counts its senders."""

    active: bool


_INCOMING = (
    JoinRoom,
    LeaveRoom,
    Signal,
    Chat,
    History,
    Ping,
    SetPresence,
    Typing,
    RemoveParticipant,
    EndRoom,
    GetNotifications,
    MarkNotificationsRead,
    CallRequest,
    CallAccept,
    CallDecline,
    CallCancel,
    CallEnd,
    Resume,
    MediaPublish,
    MediaUnpublish,
    MediaSubscribe,
    MediaUnsubscribe,
    MediaAnswer,
    MediaConfigure,
    MediaCandidate,
    MediaLeave,
    MediaSending,
)
IncomingMessage = (
    JoinRoom
    | LeaveRoom
    | Signal
    | Chat
    | History
    | Ping
    | SetPresence
    | Typing
    | RemoveParticipant
    | EndRoom
    | GetNotifications
    | MarkNotificationsRead
    | CallRequest
    | CallAccept
    | CallDecline
    | CallCancel
    | CallEnd
    | Resume
    | MediaPublish
    | MediaUnpublish
    | MediaSubscribe
    | MediaUnsubscribe
    | MediaAnswer
    | MediaConfigure
    | MediaCandidate
    | MediaLeave
    | MediaSending
)

ONLINE = "online"
"""The presence status a member has until it sets another."""
OFFLINE = "offline"
RECONNECTING = "reconnecting"
"""A member's ``connection`` while it is lost and may come back (``participant-updated``)."""
CONNECTED = "connected"
"""A member's ``connection`` once it is back."""
SETTABLE_STATUSES: frozenset[str] = frozenset({ONLINE, "away", "busy"})
"""The presence statuses a client may set; ``offline`` is the server's to say."""

INCOMING_TYPES: frozenset[str] = frozenset(str(cls.__struct_config__.tag) for cls in _INCOMING)


class Envelope(msgspec.Struct):
    """What is read of a message that did not match its schema, to say why."""

    type: str | None = None
    ref: Ref | None = None


class TypeOnly(msgspec.Struct):
    """What is read of such a message when its ``ref`` is what is wrong: the
    ``ref`` is not echoed then."""

    type: str | None = None


# -- outgoing -----------------------------------------------------------------


class Outgoing(msgspec.Struct, tag_field="type", rename="camel", omit_defaults=True):
    """Base of every message the server sends."""


class Participant(msgspec.Struct, rename="camel", omit_defaults=True):
    user_id: str
    polite: bool
    """The receiver's role toward this participant in perfect negotiation:
    the member who was in the room first is impolite."""
    status: str
    """Its presence status: ``online``, ``away`` or ``busy``."""
    name: str | None = None
    """The display name from the member's token."""
    grants: list[str] | None = None
    """What the member's token grants; absent for members without a token."""
    connection: str | None = None
    """``reconnecting`` while the member's connection is lost and may come back."""


class IceServer(msgspec.Struct, rename="camel", omit_defaults=True):
    """One entry of ``RTCConfiguration.iceServers``, as the browser takes it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class ChatEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """A stored chat message, as history carries it."""

    id: str
    seq: int
    ts: int
    user_id: str
    message: str
    client_id: str | None = None


class OfflineMember(msgspec.Struct, rename="camel"):
    """Someone who chatted in the room and is not in it now."""

    user_id: str
    last_seen: int
    """When it was last in the room, in milliseconds since the Unix epoch."""


class RoomJoined(Outgoing, tag="room-joined"):
    room: str
    user_id: str
    session_id: str
    participants: list[Participant]
    history: list[ChatEntry]
    """The room's last messages, oldest first."""
    last_seq: int
    """The room's last chat sequence number (0: none yet)."""
    resume_token: str
    """The secret that takes this session back after a lost connection (``resume``)."""
    ref: Ref | None = None
    name: str | None = None
    grants: list[str] | None = None
    ice_servers: list[IceServer] | None = None
    ice_servers_expire_at: int | None = None
    """Unix seconds after which the TURN credentials in ``ice_servers`` are refused."""
    status: str | None = None
    """The joiner's own presence status, when it is not ``online``."""
    offline: list[OfflineMember] | None = None
    """The room's offline members, most recently seen first; absent when none."""
    media_mode: str | None = None
    """``sfu`` when the room's calls go through the media server (a ``media-mode``
    follows); absent in a mesh."""


class IceServers(Outgoing, tag="ice-servers"):
    """Fresh TURN credentials, sent before the ones in hand expire."""

    ice_servers: list[IceServer]
    ice_servers_expire_at: int | None = None


class ParticipantRemoved(Outgoing, tag="participant-removed"):
    user_id: str
    ref: Ref | None = None


class RoomEnded(Outgoing, tag="room-ended"):
    room: str
    ref: Ref | None = None


class RoomLeft(Outgoing, tag="room-left"):
    room: str
    ref: Ref | None = None


class UserJoined(Outgoing, tag="user-joined"):
    user_id: str
    polite: bool
    status: str
    name: str | None = None
    grants: list[str] | None = None


class UserLeft(Outgoing, tag="user-left"):
    user_id: str


class SignalRelay(Outgoing, tag="signal"):
    signal: msgspec.Raw
    from_user_id: str


class ChatRelay(Outgoing, tag="chat"):
    message: str
    user_id: str
    id: str
    seq: int
    ts: int
    client_id: str | None = None


class ChatAck(Outgoing, tag="chat-ack"):
    id: str
    seq: int
    ts: int
    client_id: str | None = None
    duplicate: bool = False
    ref: Ref | None = None


class HistoryPage(Outgoing, tag="history"):
    room: str
    messages: list[ChatEntry]
    ref: Ref | None = None


class PresenceUpdate(Outgoing, tag="presence"):
    """A member's presence status changed; ``offline`` (with ``last_seen``) when a
    member who chatted in the room left it."""

    status: str
    user_id: str | None = None
    """Whose status; absent only in the reply to a ``presence`` sent outside a room."""
    last_seen: int | None = None
    """With ``offline``: when it left, in milliseconds since the Unix epoch."""
    ref: Ref | None = None


class TypingRelay(Outgoing, tag="typing"):
    user_id: str
    active: bool


class RoomBroadcast(Outgoing, tag="broadcast"):
    """A message from the application's backend to everyone in the room."""

    room: str
    data: msgspec.Raw
    ts: int
    """When the server sent it, in milliseconds since the Unix epoch."""
    event: str | None = None


class NotificationEntry(msgspec.Struct, rename="camel", omit_defaults=True):
    """A stored notification, as ``notifications`` lists it."""

    id: int
    ts: int
    title: str | None = None
    body: str | None = None
    data: Any = None


class NotificationPush(Outgoing, tag="notification"):
    """A notification for the user, delivered live to every connection of it."""

    id: int
    ts: int
    title: str | None = None
    body: str | None = None
    data: Any = None


class NotificationList(Outgoing, tag="notifications"):
    notifications: list[NotificationEntry]
    """Unread, oldest first."""
    more: bool = False
    """More unread notifications wait after these."""
    ref: Ref | None = None


class NotificationsRead(Outgoing, tag="notification-read"):
    """These notifications are read now (on any of the user's connections)."""

    ids: list[int]
    ref: Ref | None = None


class CallRinging(Outgoing, tag="call-ringing"):
    """To the caller: the call is placed and the callee's connections ring."""

    call_id: str
    target_user_id: str
    ref: Ref | None = None


class CallIncoming(Outgoing, tag="call-incoming"):
    call_id: str
    from_user_id: str
    name: str | None = None
    """The caller's display name, from its token."""


class CallAccepted(Outgoing, tag="call-accepted"):
    """To both parties: the call is on; join ``room`` to talk."""

    call_id: str
    room: str
    peer_user_id: str
    ref: Ref | None = None


class CallAnsweredElsewhere(Outgoing, tag="call-answered-elsewhere"):
    """To the callee's other connections: one of them took the call."""

    call_id: str


class CallDeclined(Outgoing, tag="call-declined"):
    call_id: str
    ref: Ref | None = None


class CallCancelled(Outgoing, tag="call-cancelled"):
    call_id: str
    ref: Ref | None = None


class CallMissed(Outgoing, tag="call-missed"):
    call_id: str


class CallEnded(Outgoing, tag="call-ended"):
    call_id: str
    reason: str
    """``hung-up``, ``left`` (a party left the call's room) or ``disconnected``."""
    by_user_id: str
    ref: Ref | None = None


class Pong(Outgoing, tag="pong"):
    ref: Ref | None = None


class Error(Outgoing, tag="error"):
    code: str
    message: str
    ref: Ref | None = None
    reason: str | None = None
    """For some codes (``resume-failed``), which case it was, for programs."""
    held_for_ms: int | None = None
    """For ``user-id-taken``: the id is held for a session whose connection was lost
    and that may still resume, for at most this long; then it is free."""


class Resumed(Outgoing, tag="resumed"):
    """The session is back on this connection; the messages it missed follow."""

    session_id: str
    room: str
    user_id: str
    last_n: int
    """The ``n`` of the last message sent in the session so far: those after the
    client's ``lastN``, up to this one, are replayed next."""
    ref: Ref | None = None


class ParticipantUpdated(Outgoing, tag="participant-updated"):
    """A member's connection was lost (it may come back) or is back."""

    user_id: str
    connection: str
    """``reconnecting`` or ``connected``."""


class Reconnect(Outgoing, tag="reconnect"):
    """The server is going away: connect again after ``after_ms`` milliseconds."""

    after_ms: int
    resume: bool = False
    """The session goes on elsewhere (another node of a cluster took it): resume it,
    rather than join afresh."""


class MediaFeed(msgspec.Struct, rename="camel", omit_defaults=True):
    """A member's feed on the media server, ready to subscribe to."""

    user_id: str
    audio: bool
    video: bool
    simulcast: bool = False


class MediaMode(Outgoing, tag="media-mode"):
    """How the room's calls go now: ``mesh`` (peer to peer, ``signal``) or ``sfu``
    (through the media server). Each one starts afresh: in ``sfu``, publish and
    subscribe (again, after ``reason: media-server-lost``)."""

    mode: str
    feeds: list[MediaFeed] | None = None
    """In ``sfu``: the feeds there are to subscribe to."""
    reason: str | None = None
    """Why it changed: ``auto`` (the number of senders), ``setting`` (the room's
    mode was set), ``media-server-lost`` (the call moves to another media server),
    ``session-moved`` (the member's session moved to another node of a cluster)."""


class MediaFeeds(Outgoing, tag="media-feeds"):
    """The room's feeds changed: all of them, as they are now."""

    feeds: list[MediaFeed]


class MediaStream(msgspec.Struct, rename="camel"):
    """One m-line of a subscriber connection."""

    mid: str
    kind: str
    user_id: str
    active: bool


class MediaAnswered(Outgoing, tag="media-answer"):
    """The media server's answer to a ``media-publish`` (or to a ``media-configure``
    with a new offer)."""

    connection: str
    jsep: SessionDescription
    ref: Ref | None = None


class MediaOffer(Outgoing, tag="media-offer"):
    """An offer for a subscriber connection, to answer with ``media-answer``: to a
    ``media-subscribe``/``media-unsubscribe`` (with its ``ref``), or of the media
    server's own accord when a feed the connection took stopped."""

    connection: str
    jsep: SessionDescription
    streams: list[MediaStream]
    ref: Ref | None = None


class MediaClosed(Outgoing, tag="media-closed"):
    """A connection to the media server closed of its own accord (ICE failed, the
    media server hung up): make it again if it is still wanted."""

    connection: str

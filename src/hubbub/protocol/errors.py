"""Error codes sent to clients, and the close codes hubbub uses.

Every refusal a client can see is one of the codes below; ``docs/protocol.md`` has
one line for each. The text that goes with a code is written for the client and
never carries internal detail (no exception text, no stack, no server paths).

Exception tree::

    ProtocolError          a client broke the protocol; answered with an ``error``
    └── (carries a code)   message and, where ``close_code`` is set, a close

"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``code`` field of an outgoing ``error`` message."""

    BAD_JSON = "bad-json"
    """The frame is not valid UTF-8 JSON, or not a JSON object."""
    BAD_MESSAGE = "bad-message"
    """The JSON does not match the message's schema (missing field, wrong type)."""
    UNKNOWN_TYPE = "unknown-type"
    """``type`` names no message hubbub knows."""
    TOO_LARGE = "too-large"
    """A field is longer than its limit (chat text, room name, user id...)."""
    TOO_DEEP = "too-deep"
    """JSON nested deeper than ``max_json_depth``."""
    BINARY_NOT_SUPPORTED = "binary-not-supported"
    """A binary frame arrived; hubbub speaks JSON text frames."""
    NOT_IN_ROOM = "not-in-room"
    """The message needs the connection to be in a room, and it is not."""
    ALREADY_IN_ROOM = "already-in-room"
    """``join-room`` for the room this connection is in already."""
    NO_SUCH_PEER = "no-such-peer"
    """``signal`` to a user who is not in the sender's room (or to oneself)."""
    USER_ID_TAKEN = "user-id-taken"
    """``join-room`` with a ``userId`` already present in that room."""
    ROOM_FULL = "room-full"
    """The room has ``max_participants`` members already."""
    RATE_LIMITED = "rate-limited"
    """The connection sent faster than its message rate; the message was dropped."""
    TOKEN_REQUIRED = "token-required"
    """``join-room`` without an access token on a server in ``token`` mode."""
    TOKEN_INVALID = "token-invalid"
    """The token is malformed, signed with another key or algorithm (``alg: none``
    included), or its claims are missing or unusable."""
    TOKEN_EXPIRED = "token-expired"
    """The token's ``exp`` has passed."""
    TOKEN_NOT_YET_VALID = "token-not-yet-valid"
    """The token's ``nbf`` is still to come."""
    FORBIDDEN = "forbidden"
    """The identity does not grant this: another room, a missing grant, a
    ``userId`` that is not the token's subject."""
    TOO_MANY_ROOMS = "too-many-rooms"
    """The server holds ``max_rooms`` rooms already; a new one cannot be made."""
    STORE_UNAVAILABLE = "store-unavailable"
    """The store could not take or give what was asked (it failed, or too much is
    waiting for it); nothing was stored. Send it again later (with the same
    ``clientId`` for a chat message)."""
    UNIDENTIFIED = "unidentified"
    """The message needs to know who the connection is (notifications, calls), and
    it does not yet: it showed no token and has not joined a room."""
    USER_UNAVAILABLE = "user-unavailable"
    """``call-request`` to a user with no connection to this server."""
    BUSY = "busy"
    """``call-request`` to a user who is in a call already (ringing or talking)."""
    ALREADY_IN_CALL = "already-in-call"
    """``call-request`` from a user who is in a call already."""
    NO_SUCH_CALL = "no-such-call"
    """A call message with a ``callId`` that names no current call of the sender's."""
    CALL_NOT_RINGING = "call-not-ringing"
    """``call-accept``, ``call-decline`` or ``call-cancel`` once the call was answered."""
    CALL_NOT_ACTIVE = "call-not-active"
    """``call-end`` for a call that has not been answered yet."""
    RESUME_FAILED = "resume-failed"
    """``resume`` cannot give back every message after ``lastN``: the session is
    unknown or over (``reason: unknown-session``), or messages the client missed are
    no longer held (``reason: overrun``). Join afresh and fetch the history."""
    CLUSTER_UNAVAILABLE = "cluster-unavailable"
    """The server cannot reach the rest of its cluster (Redis) to admit a join;
    nothing changed. Join again later, or through another server."""
    WRONG_MEDIA_MODE = "wrong-media-mode"
    """A ``media-*`` request in a room whose calls are in ``mesh`` mode now."""
    SFU_REQUIRED = "sfu-required"
    """The room's calls go through the media server (``sfu`` mode) and this client
    did not say it can take part (``features: ["sfu"]`` in ``join-room``): its
    ``signal`` reaches nobody. Chat and presence work as ever."""
    MEDIA_UNAVAILABLE = "media-unavailable"
    """No media server can be reached for the room now; try again shortly (a
    ``media-mode`` follows when the call moves to another)."""
    MEDIA_REFUSED = "media-refused"
    """The media server refused the request (an offer it cannot take, a connection
    that does not exist)."""
    NO_SUCH_FEED = "no-such-feed"
    """``media-subscribe`` to someone who is not sending through the media server in
    the subscriber's room."""


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455 section 7.4) that hubbub sends."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The server is shutting down; reconnect later."""
    PROTOCOL_ERROR = 1002
    """The client broke the WebSocket protocol (a bad frame)."""
    UNSUPPORTED_DATA = 1003
    """A frame of a kind the endpoint does not take."""
    INVALID_DATA = 1007
    """A text frame that is not valid UTF-8."""
    POLICY_VIOLATION = 1008
    """A sustained flood: the connection kept sending over its rate."""
    MESSAGE_TOO_BIG = 1009
    """A frame larger than ``max_frame_bytes``."""
    INTERNAL_ERROR = 1011
    AUTH_TIMEOUT = 4001
    """Token mode: no valid access token was shown within ``auth_timeout``."""
    REMOVED = 4003
    """An admin removed this participant from the room."""
    ROOM_ENDED = 4004
    """An admin ended the room."""
    SLOW_CONSUMER = 4008
    """The client did not read fast enough: its outgoing queue went over
    ``max_send_queue_bytes``."""
    REPLACED = 4009
    """The same identity joined the room again, from another connection; the
    newer one has the place. Do not reconnect automatically."""
    RESUMED_ELSEWHERE = 4010
    """The session was resumed from another connection, which has it now. Do not
    reconnect automatically."""


# -- what a client does with them ---------------------------------------------
# Both clients (hubbub.client and hubbub.js, through the generated protocol.js)
# follow these; docs/protocol.md says the same.

FINAL_CLOSE_CODES: dict[CloseCode, str] = {
    CloseCode.PROTOCOL_ERROR: "protocol-error",
    CloseCode.UNSUPPORTED_DATA: "unsupported-data",
    CloseCode.INVALID_DATA: "invalid-data",
    CloseCode.POLICY_VIOLATION: "flooded",
    CloseCode.MESSAGE_TOO_BIG: "too-big",
    CloseCode.REMOVED: "removed",
    CloseCode.ROOM_ENDED: "room-ended",
    CloseCode.REPLACED: "replaced",
    CloseCode.RESUMED_ELSEWHERE: "resumed-elsewhere",
}
"""Close codes after which a client does not reconnect by itself, each with the
name a client reports it by: coming back would be refused the same way (a broken
frame, a flood, a frame too large), or is not wanted (an admin removed the member or
ended the room, the same identity joined from elsewhere, another connection resumed
the session). After any other close (1001 going away, 1006 lost, 1011, 4001, 4008)
a client reconnects, with backoff."""

RETRIED_CHAT_ERRORS: frozenset[ErrorCode] = frozenset(
    {ErrorCode.STORE_UNAVAILABLE, ErrorCode.RATE_LIMITED, ErrorCode.NOT_IN_ROOM}
)
"""Refusals of a ``chat`` after which a client sends the same message again (same
``clientId``), after a delay, or once it is back in its room (``not-in-room``: the
chat crossed a reconnection). Any other refusal of a chat is final."""

RETRIED_REJOIN_ERRORS: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.USER_ID_TAKEN,
        ErrorCode.ROOM_FULL,
        ErrorCode.RATE_LIMITED,
        ErrorCode.STORE_UNAVAILABLE,
        ErrorCode.CLUSTER_UNAVAILABLE,
    }
)
"""Refusals of the ``join-room`` a client sends to get back into its room after a
reconnection that keep it trying (with backoff): they pass with time (the server has
not yet noticed that the client's old connection is dead, a store or cluster was
briefly out of reach). Any other refusal ends the reconnection. A first join is never
retried: its refusal is the application's to handle."""


class ResumeFailure(StrEnum):
    """The ``reason`` of a ``resume-failed`` error."""

    UNKNOWN_SESSION = "unknown-session"
    """No session has this id and token: it never did, it ended (left, closed,
    grace period over), or the server restarted."""
    OVERRUN = "overrun"
    """The session is gone too: messages sent after ``lastN`` no longer fit in
    its replay buffer."""
    OTHER_NODE = "other-node"
    """In a cluster, from an older node: the session was held by another node, which
    has now ended it (its place is free). A node of this version takes the session
    over instead."""
    NODE_GONE = "node-gone"
    """In a cluster: the node that held the session is gone (killed, cut off), and
    what it was sent since its connection was lost with it; its chat is stored, and
    its place is free."""


class ProtocolError(Exception):
    """A message from the network broke the protocol.

    ``message`` is safe to show to the client. Where ``close_code`` is set, the
    connection is closed after the error is sent.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        ref: str | int | None = None,
        close_code: CloseCode | None = None,
        reason: str | None = None,
        held_for_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.close_code = close_code
        self.reason = reason
        self.held_for_ms = held_for_ms


# -- refusals -----------------------------------------------------------------
# The errors more than one part of the core sends, each worded once.


def refusal(code: ErrorCode, message: str, ref: str | int | None = None) -> ProtocolError:
    return ProtocolError(code, message, ref=ref)


def not_in_room(ref: str | int | None, text: str = "join a room first") -> ProtocolError:
    return ProtocolError(ErrorCode.NOT_IN_ROOM, text, ref=ref)


def no_such_peer(ref: str | int | None) -> ProtocolError:
    return ProtocolError(ErrorCode.NO_SUCH_PEER, "no such user in this room", ref=ref)


def already_in_room(ref: str | int | None, text: str = "already in this room") -> ProtocolError:
    return ProtocolError(ErrorCode.ALREADY_IN_ROOM, text, ref=ref)


def user_id_taken(ref: str | int | None, held_for_ms: int | None = None) -> ProtocolError:
    """``held_for_ms``: the holder is a session that may still resume, for that long."""
    return ProtocolError(
        ErrorCode.USER_ID_TAKEN,
        "this user id is already in the room",
        ref=ref,
        held_for_ms=held_for_ms,
    )


def room_full(ref: str | int | None) -> ProtocolError:
    return ProtocolError(ErrorCode.ROOM_FULL, "the room is full", ref=ref)


def cluster_unavailable(ref: str | int | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.CLUSTER_UNAVAILABLE,
        "the server cannot reach the rest of its cluster; try again later",
        ref=ref,
    )


def store_unavailable(ref: str | int | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.STORE_UNAVAILABLE,
        "the store is unavailable; nothing was stored, try again later",
        ref=ref,
    )


def unknown_session(ref: str | int | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RESUME_FAILED,
        "there is no such session to resume; join the room afresh",
        ref=ref,
        reason=ResumeFailure.UNKNOWN_SESSION,
    )


def unidentified(ref: str | int | None) -> ProtocolError:
    return ProtocolError(
        ErrorCode.UNIDENTIFIED,
        "who are you? join a room, or show an access token, first",
        ref=ref,
    )


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_name(value: str, field: str, max_length: int, ref: str | int | None) -> None:
    """A name from a client (room, user id, clientId): not empty, not longer than
    its limit, no control characters."""
    if not value:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{field} must not be empty", ref=ref)
    if len(value) > max_length:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"{field} holds at most {max_length} characters", ref=ref
        )
    if _CONTROL_CHARACTERS.search(value):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"{field} must not hold control characters", ref=ref
        )


def check_status(status: str, settable: frozenset[str], ref: str | int | None) -> None:
    """A presence status a client may set."""
    if status not in settable:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, "status is one of " + ", ".join(sorted(settable)), ref=ref
        )

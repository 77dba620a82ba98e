"""Every bound hubbub puts on a client, with its name, unit and default.

Each one is a ``hubbub serve`` option (``--max-frame-bytes`` for
``max_frame_bytes``...) whose help is the text given here, and has a line in
``docs/protocol.md`` (a test checks both).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _limit(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_bytes: int = _limit(
        64 * 1024,
        "Largest WebSocket message accepted, in bytes; a larger one closes the "
        "connection with 1009 before it is parsed.",
    )
    max_json_depth: int = _limit(32, "Deepest JSON nesting accepted in a message ([] is 1).")
    max_room_name_length: int = _limit(128, "Longest room name, in characters.")
    max_user_id_length: int = _limit(64, "Longest user id, in characters.")
    max_chat_length: int = _limit(16_000, "Longest chat message, in characters.")
    max_client_id_length: int = _limit(64, "Longest chat clientId, in characters.")
    max_history_page: int = _limit(
        100, "Most chat messages in one history reply; a larger limit asked for is lowered."
    )
    typing_rate: float = _limit(
        2.0,
        "typing messages with active true a connection may send per second, sustained; "
        "more are refused with rate-limited.",
    )
    typing_burst: int = _limit(
        5, "typing messages with active true a connection may send at once above typing_rate."
    )
    typing_timeout: float = _limit(
        6.0,
        "Seconds after a member's last typing with active true, not renewed or stopped, "
        "after which its room is told it stopped typing.",
    )
    presence_rate: float = _limit(
        1.0,
        "presence messages a connection may send per second, sustained; more are "
        "refused with rate-limited.",
    )
    presence_burst: int = _limit(
        5, "presence messages a connection may send at once above presence_rate."
    )
    max_notification_bytes: int = _limit(
        8 * 1024,
        "Largest notification a backend may send a user (its title, body and data as JSON), "
        "in bytes.",
    )
    max_notification_page: int = _limit(
        100,
        "Most notifications in one notifications reply, and most ids in one notification-read.",
    )
    call_ring_timeout: float = _limit(
        30.0, "Seconds a call rings unanswered before both parties get call-missed."
    )
    max_participants: int = _limit(1_000, "Most members one room may hold.")
    max_topics_per_connection: int = _limit(
        64,
        "Most rooms one connection of a front-end may be in at once: y-webrtc topics, "
        "tracker swarms; past it a subscribe or announce is refused.",
    )
    max_media_connections: int = _limit(
        32,
        "Most connections to the media server one member may have at once (its "
        "publisher and its subscriber connections); past it a media-subscribe on a new "
        "connection is refused.",
    )
    max_sdp_length: int = _limit(
        60_000, "Longest session description in a media-publish or media-answer, in characters."
    )
    max_rooms: int = _limit(
        10_000, "Most rooms the server holds at once; a join that would make one more is refused."
    )
    max_connections: int = _limit(
        50_000,
        "Most WebSocket connections the server holds at once; past it the handshake "
        "is answered 503.",
    )
    max_connections_per_ip: int = _limit(
        1_000,
        "Most WebSocket connections from one IP address (IPv6: one /64) at once; past it "
        "the handshake is answered 429.",
    )
    max_http_connections_per_ip: int = _limit(
        1_000,
        "Most connections from one IP address (IPv6: one /64) at once that are not "
        "WebSockets: waiting for their request head, or serving HTTP and kept alive between "
        "requests; past it a new connection is closed at once. Not counted for a trusted "
        "proxy.",
    )
    message_rate: float = _limit(100.0, "Messages per second a connection may send, sustained.")
    message_burst: int = _limit(
        200, "Messages a connection may send at once above its rate (token bucket size)."
    )
    flood_disconnect_after: int = _limit(
        200,
        "Messages dropped for the rate in a row, with none accepted between, after which "
        "the connection is closed with 1008.",
    )
    max_send_queue_bytes: int = _limit(
        1024 * 1024,
        "Bytes waiting to be sent to one client; a client that lets more pile up has "
        "stopped reading and is disconnected with 4008.",
    )
    auth_timeout: float = _limit(
        20.0,
        "Seconds a connection to a server in token mode has to show a valid access token "
        "(at the handshake or in join-room) before it is closed with 4001.",
    )
    ping_interval: float = _limit(
        20.0, "Seconds of silence from a client after which the server pings it."
    )
    ping_timeout: float = _limit(
        20.0, "Seconds the server waits for any frame after a ping before dropping the client."
    )

    resume_grace: float = _limit(
        30.0,
        "Seconds a session whose connection was lost without a close frame keeps its "
        "place in the room, waiting for its client to resume it; then it leaves.",
    )
    resume_buffer_messages: int = _limit(
        256,
        "Most recent messages kept per session for a resume to replay; a client that "
        "missed more joins afresh.",
    )
    resume_buffer_bytes: int = _limit(
        256 * 1024,
        "Most bytes of recent messages kept per session for a resume to replay (the "
        "bytes are shared with the other recipients of a broadcast).",
    )

    def __post_init__(self) -> None:
        for limit in fields(self):
            value = getattr(self, limit.name)
            if value <= 0:
                raise ValueError(f"{limit.name} must be positive, got {value!r}")

    @staticmethod
    def help(name: str) -> str:
        """The documented meaning of one limit."""
        for limit in fields(Limits):
            if limit.name == name:
                return str(limit.metadata["help"])
        raise KeyError(name)

"""An async Python client for hubbub's WebSocket side.

::

    from hubbub.client import Client, ChatMessage

    async with Client("ws://127.0.0.1:8080", room="lobby", user="alice") as client:
        await client.chat("hello")
        async for event in client:
            if isinstance(event, ChatMessage):
                print(event.user_id, event.message)

See ``docs/python.md``.
"""

from hubbub.client.backoff import Backoff
from hubbub.client.connection import TYPING_EXPIRES, Client, websocket_url
from hubbub.client.errors import (
    Closed,
    ConnectError,
    HubbubClientError,
    JoinRefused,
    NotConnected,
    RequestFailed,
)
from hubbub.client.events import (
    Broadcast,
    CallAccepted,
    CallAnsweredElsewhere,
    CallCancelled,
    CallDeclined,
    CallEnded,
    CallIncoming,
    CallMissed,
    CallRinging,
    ChatAck,
    ChatGap,
    ChatMessage,
    Disconnected,
    Event,
    History,
    IceServers,
    Notification,
    NotificationReceived,
    NotificationsRead,
    OfflineMember,
    Participant,
    ParticipantRemoved,
    ParticipantUpdated,
    Pong,
    PresenceChanged,
    Reconnected,
    ReconnectHint,
    Resumed,
    RoomEnded,
    RoomJoined,
    RoomLeft,
    ServerError,
    ServerMessage,
    SignalReceived,
    StoredChat,
    TypingChanged,
    UnreadNotifications,
    UserJoined,
    UserLeft,
)

__all__ = [
    "TYPING_EXPIRES",
    "Backoff",
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
    "Client",
    "Closed",
    "ConnectError",
    "Disconnected",
    "Event",
    "History",
    "HubbubClientError",
    "IceServers",
    "JoinRefused",
    "NotConnected",
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
    "RequestFailed",
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
    "websocket_url",
]

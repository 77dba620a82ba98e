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
from hubbub.client.connection import Client, websocket_url
from hubbub.client.errors import (
    Closed,
    ConnectError,
    HubbubClientError,
    JoinRefused,
    NotConnected,
    RequestFailed,
)
from hubbub.client.events import (
    ChatAck,
    ChatGap,
    ChatMessage,
    Disconnected,
    Event,
    History,
    IceServers,
    Participant,
    ParticipantUpdated,
    Pong,
    Reconnected,
    ReconnectHint,
    Resumed,
    RoomJoined,
    RoomLeft,
    ServerError,
    ServerMessage,
    SignalReceived,
    StoredChat,
    UserJoined,
    UserLeft,
)

__all__ = [
    "Backoff",
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
    "Participant",
    "ParticipantUpdated",
    "Pong",
    "ReconnectHint",
    "Reconnected",
    "RequestFailed",
    "Resumed",
    "RoomJoined",
    "RoomLeft",
    "ServerError",
    "ServerMessage",
    "SignalReceived",
    "StoredChat",
    "UserJoined",
    "UserLeft",
    "websocket_url",
]

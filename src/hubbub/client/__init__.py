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
    ChatMessage,
    Disconnected,
    Event,
    IceServers,
    Participant,
    Pong,
    Reconnected,
    RoomJoined,
    RoomLeft,
    ServerError,
    ServerMessage,
    SignalReceived,
    UserJoined,
    UserLeft,
)

__all__ = [
    "Backoff",
    "ChatMessage",
    "Client",
    "Closed",
    "ConnectError",
    "Disconnected",
    "Event",
    "HubbubClientError",
    "IceServers",
    "JoinRefused",
    "NotConnected",
    "Participant",
    "Pong",
    "Reconnected",
    "RequestFailed",
    "RoomJoined",
    "RoomLeft",
    "ServerError",
    "ServerMessage",
    "SignalReceived",
    "UserJoined",
    "UserLeft",
    "websocket_url",
]

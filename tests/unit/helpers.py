"""A hub wired to a recording outbox and a hand-driven clock: no network, no loop."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

from hubbub.core import Hub, Limits, Session
from hubbub.protocol.errors import CloseCode


class RecordingOutbox:
    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}
        self.closed: dict[str, tuple[int, str]] = {}
        self.broadcasts = 0

    def send(self, session: Session, payload: bytes) -> None:
        self.sent.setdefault(session.session_id, []).append(json.loads(payload))

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        self.broadcasts += 1
        message = json.loads(payload)
        for session in sessions:
            if session.session_id != exclude:
                self.sent.setdefault(session.session_id, []).append(message)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        self.closed[session.session_id] = (int(code), reason)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A hub and named clients; ``take(name)`` pops what a client was sent."""

    def __init__(self, limits: Limits | None = None, **hub_options: Any) -> None:
        self.outbox = RecordingOutbox()
        self.clock = Clock()
        counter = itertools.count(1)
        self.hub = Hub(
            self.outbox,
            limits=limits,
            clock=self.clock,
            new_session_id=lambda: f"s{next(counter)}",
            **hub_options,
        )
        self.clients: dict[str, Session] = {}

    def connect(self, name: str) -> Session:
        session = self.hub.connect(link=name)
        self.clients[name] = session
        return session

    def send(self, name: str, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        self.hub.receive(self.clients[name], text)

    def take(self, name: str) -> list[dict[str, Any]]:
        return self.outbox.sent.pop(self.clients[name].session_id, [])

    def join(
        self, name: str, room: str, user_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        if name not in self.clients:
            self.connect(name)
        message: dict[str, Any] = {"type": "join-room", "room": room, **extra}
        if user_id is not None:
            message["userId"] = user_id
        self.send(name, message)
        replies = self.take(name)
        assert replies[-1]["type"] == "room-joined", replies
        return replies[-1]

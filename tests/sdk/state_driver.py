"""A :class:`~hubbub.client.state.ClientState` on a hand clock, with the server's side
played by the test: no socket, no event loop.

A scenario reads as a conversation::

    d = StateDriver()
    d.start()                                   # connects: the client sends join-room
    assert d.sent() == [{"type": "join-room", "room": "r", "userId": "alice", "ref": "join"}]
    d.server(room_joined())                     # numbered n=1, 2... per connection
    d.events()                                  # [RoomJoined(...)]
    d.advance(10)                               # time passes: ticks at each deadline

``server()`` feeds one frame as the server would send it, ``sent()`` / ``events()``
/ ``answers`` are what came out since the last look.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hubbub.client import Backoff, Event
from hubbub.client.state import (
    Answer,
    ClientState,
    CloseConnection,
    Connect,
    Emit,
    Finished,
    Send,
)

PREFIX = "p"
"""The client's clientId prefix: its chat messages are ``p-1``, ``p-2``..."""


class StateDriver:
    def __init__(self, room: str = "r", user: str | None = "alice", **options: Any) -> None:
        options.setdefault("backoff", Backoff(base=1.0, max_delay=4.0, random=random.Random(1)))
        options.setdefault("request_timeout", 10.0)
        self.state = ClientState(room, user=user, client_id_prefix=PREFIX, **options)
        self.now = 0.0
        self.n = 0
        """The ``n`` of the last message the server sent on this connection."""
        self.connected = False
        self.connects = 0
        """Connections asked for (Connect)."""
        self.closes = 0
        """Connections the client gave up (CloseConnection)."""
        self.finished: str | None = None
        self.answers: dict[str, Any] = {}
        """Answer key -> outcome, as they came."""
        self._sent: list[dict[str, Any]] = []
        self._events: list[Event] = []
        self._want_connect = False

    # -- the client side ---------------------------------------------------------

    def start(self, *, connect: bool = True) -> None:
        self.state.start(self.now)
        self._run()
        if connect:
            self.connect()

    def connect(self) -> None:
        """Open the connection the client asked for."""
        assert self._want_connect, "the client asked for no connection"
        self._want_connect = False
        self.connected = True
        self.n = 0
        self.state.connection_made(self.now)
        self._run()

    def fail_connect(self, reason: str = "refused") -> None:
        assert self._want_connect, "the client asked for no connection"
        self._want_connect = False
        self.state.connect_failed(reason, self.now)
        self._run()

    @property
    def wants_connection(self) -> bool:
        return self._want_connect

    def chat(self, text: str) -> str | None:
        key = self.state.chat(text, self.now)
        self._run()
        return key

    def request(self, message: dict[str, Any]) -> str:
        ref = self.state.request(message, self.now)
        self._run()
        return ref

    def close(self) -> None:
        self.state.close(self.now)
        self._run()

    # -- the server side ---------------------------------------------------------

    def server(self, message: dict[str, Any], *, n: int | str | None = "next") -> None:
        """The server sends ``message``, numbered with the next ``n`` (or ``n``
        as given; None: unnumbered, like ``resumed``)."""
        if n == "next":
            self.n += 1
            message = {"n": self.n, **message}
        elif isinstance(n, int):
            self.n = n
            message = {"n": n, **message}
        self.raw(json.dumps(message))

    def raw(self, frame: str | bytes) -> None:
        self.state.receive(frame, self.now)
        self._run()

    def shut_down(self) -> None:
        """The server goes away (restarting): it says so, then closes with 1001; the
        session goes with it, so the client joins afresh."""
        seen = len(self._events)
        self.server({"type": "reconnect", "afterMs": 0})
        del self._events[seen:]  # its ReconnectHint: the tests look at what follows
        self.lose(1001, "going away")

    def lose(self, code: int | None = None, reason: str = "connection lost") -> None:
        """The connection ends: closed by the server with ``code``, or lost (None)."""
        self.connected = False
        self.state.connection_lost(code, reason, self.now)
        self._run()

    # -- time --------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, ticking at every deadline on the way."""
        until = self.now + seconds
        while (deadline := self.state.next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.state.tick(self.now)
            self._run()
        self.now = until

    def wait_for_reconnection(self) -> None:
        """Until the client asks for a connection (its backoff), then open it."""
        self.advance_until(lambda: self._want_connect)
        self.connect()

    def advance_until(self, condition: Any, limit: float = 3600.0) -> None:
        while not condition():
            deadline = self.state.next_deadline()
            assert deadline is not None, "nothing is due and the condition does not hold"
            assert deadline - self.now <= limit, "not within the limit"
            self.advance(max(0.0, deadline - self.now))

    # -- what came out -------------------------------------------------------------

    def sent(self) -> list[dict[str, Any]]:
        """What the client wrote since the last look."""
        sent, self._sent = self._sent, []
        return sent

    def events(self) -> list[Event]:
        """What the client handed the application since the last look."""
        events, self._events = self._events, []
        return events

    def _run(self) -> None:
        while (action := self.state.next_action()) is not None:
            if isinstance(action, Send):
                assert self.connected, f"a frame with no connection: {action.text}"
                self._sent.append(action.message)
            elif isinstance(action, Emit):
                self._events.append(action.event)
            elif isinstance(action, Answer):
                assert action.key not in self.answers, f"answered twice: {action.key}"
                self.answers[action.key] = action.outcome
            elif isinstance(action, Connect):
                assert not self.connected, "a second connection while one is open"
                self._want_connect = True
            elif isinstance(action, CloseConnection):
                self.connected = False
                self.closes += 1
            elif isinstance(action, Finished):
                self.finished = action.reason


# -- what a hubbub server sends --------------------------------------------------


def room_joined(
    *,
    room: str = "r",
    user: str = "alice",
    session: str = "s1",
    ref: str | None = "join",
    participants: list[dict[str, Any]] | None = None,
    history: list[dict[str, Any]] | None = None,
    last_seq: int | None = 0,
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "room-joined",
        "room": room,
        "userId": user,
        "sessionId": session,
        "participants": participants or [],
        "history": history or [],
        "resumeToken": "token-" + session,
        **extra,
    }
    if last_seq is not None:
        message["lastSeq"] = last_seq
    if ref is not None:
        message["ref"] = ref
    return message


def resumed(last_n: int, session: str = "s1") -> dict[str, Any]:
    """The answer to a resume (unnumbered: feed it with ``n=None``)."""
    return {
        "type": "resumed",
        "sessionId": session,
        "room": "r",
        "userId": "alice",
        "lastN": last_n,
    }


def stored(seq: int, user: str = "bob", client_id: str | None = None) -> dict[str, Any]:
    """A stored chat message, as history and room-joined carry it."""
    entry = {"id": f"m{seq}", "seq": seq, "ts": 1000 + seq, "userId": user, "message": f"#{seq}"}
    if client_id is not None:
        entry["clientId"] = client_id
    return entry


def chat_ack(client_id: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "chat-ack",
        "id": f"m{seq}",
        "seq": seq,
        "ts": 1000 + seq,
        "clientId": client_id,
        "ref": "chat:" + client_id,
        **extra,
    }


def error(code: str, ref: str | None = None, **extra: Any) -> dict[str, Any]:
    message = {"type": "error", "code": code, "message": f"{code}!", **extra}
    if ref is not None:
        message["ref"] = ref
    return message


def joined_driver(**options: Any) -> StateDriver:
    """A driver whose client is in room ``r`` as alice, on a server that stores chat
    (last seq 0), with nothing sent or emitted left to look at."""
    d = StateDriver(**options)
    d.start()
    d.server(room_joined())
    d.sent()
    d.events()
    d.answers.clear()
    return d

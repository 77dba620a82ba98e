"""Random sequences of joins, leaves, chat, signals, pings, lost connections and
resumes against rooms that load slowly and chat that is stored late: every request
is answered exactly once, in order where the protocol promises it, and every member's
view of its room holds together. The core alone, with no network."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import Harness
from tests.unit.test_waiting import View

CLIENTS = ("c1", "c2", "c3")
ROOMS = ("r1", "r2")
USERS = ("alice", "bob", "carol")

step = st.one_of(
    st.tuples(
        st.just("join"),
        st.sampled_from(CLIENTS),
        st.sampled_from(ROOMS),
        st.sampled_from(USERS),
    ),
    st.tuples(st.just("leave"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("chat"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("signal"), st.sampled_from(CLIENTS), st.sampled_from(USERS)),
    st.tuples(st.just("ping"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("lose"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("resume"), st.sampled_from(CLIENTS)),
    st.tuples(st.just("load")),
    st.tuples(st.just("store")),
)


class Client:
    """One client as it would see things: its messages across its connections,
    checked as they come."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.links = itertools.count(1)
        self.link = f"{name}#1"
        next(self.links)
        self.last_n = 0
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.lost = False
        self.ended = False
        self.view = View(name)
        self.pings: list[int] = []
        self.pongs: list[int] = []
        self.asked: dict[str, str] = {}
        """ref -> what it asked (join, leave, chat or signal): answered at most once."""
        self.answered: dict[str, str] = {}
        self.heard: dict[str, list[int]] = {}
        """sender -> the numbers of the chat heard from it, in order."""
        self.seqs: dict[str, list[int]] = {}
        """room -> the seqs of the chat heard there, in order."""
        self.signals: list[str] = []
        """The refs of the signals it was sent."""
        self.room: str | None = None

    def read(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            kind = message["type"]
            if kind != "resumed":
                assert message["n"] == self.last_n + 1, (self.name, message, self.last_n)
                self.last_n = message["n"]
            if kind == "room-joined":
                self.session_id = message["sessionId"]
                self.resume_token = message["resumeToken"]
                self.room = message["room"]
            elif kind == "room-left":
                self.room = None
            self.view.see(message)
            ref = message.get("ref")
            if kind == "pong":
                self.pongs.append(ref)
            elif isinstance(ref, str) and ref in self.asked:
                assert ref not in self.answered, (self.name, "answered twice", message)
                self.answered[ref] = kind
            if kind == "chat":
                assert self.room is not None, (self.name, message)
                sender, number = message["message"].split(":")
                self.heard.setdefault(sender, []).append(int(number))
                self.seqs.setdefault(self.room, []).append(message["seq"])
            elif kind == "signal":
                self.signals.append(message["signal"]["ref"])


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(step, max_size=60))
def test_every_request_is_answered_once_and_every_view_holds(steps: list[tuple]) -> None:
    h = Harness(auto=False)
    clients = {name: Client(name) for name in CLIENTS}
    for client in clients.values():
        h.connect(client.link)
    counter = itertools.count(1)
    said: dict[str, int] = {}

    def send(client: Client, message: dict[str, Any]) -> None:
        h.send(client.link, message)

    def deliver() -> None:
        for client in clients.values():
            if not client.lost:
                client.read(h.wire(client.link))

    for action, *args in steps:
        if action in ("load", "store"):
            h.answer(frozenset({"room"} if action == "load" else {"append"}))
            deliver()
            continue
        client = clients[args[0]]
        if client.ended:
            continue
        if action == "lose":
            session = h.hub.sessions.get(client.session_id or "")
            if client.lost or session is None or session.room is None or h.hub.is_waiting(session):
                continue
            h.lose(client.link)
            client.lost = True
            continue
        if action == "resume":
            if not client.lost:
                continue
            client.lost = False
            client.link = f"{client.name}#{next(client.links)}"
            h.connect(client.link)
            send(
                client,
                {
                    "type": "resume",
                    "sessionId": client.session_id,
                    "resumeToken": client.resume_token,
                    "lastN": client.last_n,
                },
            )
            deliver()
            continue
        if client.lost:
            continue
        ref = f"{client.name}-{next(counter)}"
        if action == "join":
            _, room, user = args
            client.asked[ref] = "join"
            send(client, {"type": "join-room", "room": room, "userId": user, "ref": ref})
        elif action == "leave":
            client.asked[ref] = "leave"
            send(client, {"type": "leave-room", "ref": ref})
        elif action == "chat":
            said[client.name] = said.get(client.name, 0) + 1
            text = f"{client.name}:{said[client.name]}"
            client.asked[ref] = "chat"
            send(client, {"type": "chat", "message": text, "clientId": ref, "ref": ref})
        elif action == "signal":
            client.asked[ref] = "signal"
            payload = {"ref": ref}
            send(client, {"type": "signal", "targetUserId": args[1], "signal": payload, "ref": ref})
        elif action == "ping":
            number = next(counter)
            client.pings.append(number)
            send(client, {"type": "ping", "ref": number})
        deliver()

    # Everything waiting is answered; the lost come back.
    for client in clients.values():
        if client.lost and not client.ended:
            client.lost = False
            client.link = f"{client.name}#{next(client.links)}"
            h.connect(client.link)
            send(
                client,
                {
                    "type": "resume",
                    "sessionId": client.session_id,
                    "resumeToken": client.resume_token,
                    "lastN": client.last_n,
                },
            )
    h.answer()
    deliver()

    delivered = [ref for client in clients.values() for ref in client.signals]
    assert len(delivered) == len(set(delivered)), "a signal delivered twice"
    for client in clients.values():
        assert client.pongs == client.pings, (client.name, "pongs", client.pongs, client.pings)
        for ref, what in client.asked.items():
            answer = client.answered.get(ref)
            if what != "signal":
                expected = {"chat": "chat-ack", "join": "room-joined", "leave": "room-left"}
                assert answer in (expected[what], "error"), (client.name, ref, answer)
            elif answer is None:  # a signal is answered only when it is refused
                assert ref in delivered, (client.name, "signal neither sent nor refused", ref)
            else:
                assert answer == "error", (client.name, ref, answer)
                assert ref not in delivered, (client.name, "signal refused and sent", ref)
        for sender, numbers in client.heard.items():
            assert numbers == sorted(set(numbers)), (client.name, "from", sender, numbers)
        for room, seqs in client.seqs.items():
            assert seqs == sorted(set(seqs)), (client.name, "in", room, seqs)

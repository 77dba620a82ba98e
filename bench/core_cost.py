"""What the sans-I/O core costs per message, in-process, with no socket and no event
loop: a relayed ``signal`` between two members, and stored chat relayed to a room.

The server benchmarks (``python -m bench``) measure whole servers and need a quiet
machine to tell a few per cent apart; this measures the core alone, so that a change
to it can be compared before and after on a busy machine too. ``--src`` runs another
checkout's core (``git archive REF src | tar x -C DIR``, then ``--src DIR/src``); run
both alternately and compare the medians::

    python -m bench.core_cost
    python -m bench.core_cost --src /tmp/ref/src

The outbox numbers each message for each recipient, as the real one does, and
writes nothing; the store answers at once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any


def _load(src: str | None) -> Any:
    if src is not None:
        sys.path.insert(0, src)
    import hubbub.core.hub

    return hubbub


class _Outbox:
    def send(self, session: Any, payload: bytes) -> None:
        session.number(payload)

    def broadcast(self, sessions: Any, payload: bytes, exclude: str | None) -> None:
        for session in sessions:
            if session.session_id != exclude:
                session.number(payload)

    def relay_run(self, sessions: Any, run: Any) -> None:
        for session in sessions:
            for relay, sender, ack in run:
                if sender is session:
                    session.number(ack)
                elif relay is not None:
                    session.number(relay)

    def close(self, session: Any, code: Any, reason: str) -> None:
        pass

    def send_unnumbered(self, session: Any, payload: bytes) -> None:
        pass

    def replay(self, session: Any, first_n: int, payloads: Any) -> None:
        pass

    def moved(self, link: Any, session: Any) -> None:
        pass


class _Storage:
    def __init__(self) -> None:
        self.hub: Any = None
        self.loads: list[str] = []
        self.chats: list[Any] = []

    def append_chat(self, pending: Any) -> bool:
        self.chats.append(pending)
        return True

    def load_room(self, room: str, recent: int) -> None:
        self.loads.append(room)

    def record_seen(self, *args: Any) -> None:
        pass

    def load_history(self, *args: Any) -> None:
        pass

    def load_notifications(self, *args: Any) -> None:
        pass

    def mark_notifications_read(self, *args: Any) -> None:
        pass

    def store_notification(self, *args: Any) -> None:
        pass


def _room(hubbub: Any, members: int) -> tuple[Any, _Storage, list[Any]]:
    from hubbub.core.limits import Limits
    from hubbub.store import RoomState

    storage = _Storage()
    limits = Limits(message_rate=1e9, message_burst=10**9, max_participants=10**6)
    hub = hubbub.core.hub.Hub(_Outbox(), storage=storage, limits=limits)
    storage.hub = hub
    # What the store calls back: the hub itself in checkouts from before backend_events.
    events = getattr(hub, "backend_events", hub)
    sessions = []
    for i in range(members):
        session = hub.connect(f"link-{i}")
        hub.receive(session, json.dumps({"type": "join-room", "room": "r", "userId": f"u{i}"}))
        for room in storage.loads:
            events.room_loaded(room, RoomState(0, [], []))
        storage.loads.clear()
        sessions.append(session)
    return hub, storage, sessions


def relay(hubbub: Any, messages: int) -> float:
    """Nanoseconds per relayed signal."""
    hub, _, (alice, bob) = _room(hubbub, 2)
    payload = {"sdp": "x" * 180}
    to_bob = json.dumps({"type": "signal", "targetUserId": "u1", "signal": payload}).encode()
    to_alice = json.dumps({"type": "signal", "targetUserId": "u0", "signal": payload}).encode()
    sent_before = bob.last_n
    started = time.perf_counter()
    for _ in range(messages // 2):
        hub.receive(alice, to_bob)
        hub.receive(bob, to_alice)
    elapsed = time.perf_counter() - started
    _check(bob.last_n - sent_before, messages // 2, "signals relayed to one member")
    return elapsed / messages * 1e9


def join(hubbub: Any, joins: int, per_room: int) -> float:
    """Nanoseconds per connect and join, into rooms of ``per_room`` (a join storm)."""
    from hubbub.store import RoomState

    hub, storage, _ = _room(hubbub, 0)
    events = getattr(hub, "backend_events", hub)  # see _room
    frames = [
        json.dumps({"type": "join-room", "room": f"r{i // per_room}", "userId": f"u{i}"})
        for i in range(joins)
    ]
    last = None
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        last = hub.connect(f"link-{i}")
        hub.receive(last, frame)
        if storage.loads:
            for room in storage.loads:
                events.room_loaded(room, RoomState(0, [], []))
            storage.loads.clear()
    elapsed = time.perf_counter() - started
    _check(int(last is not None and last.room is not None), 1, "the last client in its room")
    return elapsed / joins * 1e9


def _check(got: int, expected: int, what: str) -> None:
    """A run that measured less than it says is no figure."""
    if got != expected:
        raise RuntimeError(f"{what}: {got}, expected {expected}")


def chat(hubbub: Any, messages: int, members: int, batch: int) -> float:
    """Nanoseconds per delivered chat (each message to each member), stored in
    batches of ``batch``."""
    from hubbub.store import StoredChat

    hub, storage, sessions = _room(hubbub, members)
    events = getattr(hub, "backend_events", hub)  # see _room
    frame = json.dumps({"type": "chat", "message": "x" * 200}).encode()
    seq = 0
    listener = sessions[-1]
    heard_before = listener.last_n
    started = time.perf_counter()
    for _ in range(messages // batch):
        for _ in range(batch):
            hub.receive(sessions[0], frame)
        pending, storage.chats = storage.chats, []
        stored = []
        for request in pending:
            seq += 1
            draft = request.draft
            stored.append(
                StoredChat(
                    room=draft.room,
                    seq=seq,
                    id=f"m{seq}",
                    ts=1,
                    user_id=draft.user_id,
                    text=draft.text,
                    client_id=None,
                )
            )
        events.chat_stored(pending, stored)
    elapsed = time.perf_counter() - started
    sent = (messages // batch) * batch
    _check(listener.last_n - heard_before, sent, "chat relayed to one member")
    return elapsed / (sent * members) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", help="another checkout's src/ folder to measure instead")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case (median)")
    args = parser.parse_args()
    hubbub = _load(args.src)
    cases = {
        "relay: ns per signal": lambda: relay(hubbub, 200_000),
        "chat, room of 200, batches of 4: ns per delivery": lambda: chat(hubbub, 8_000, 200, 4),
        "chat, room of 4, batches of 16: ns per delivery": lambda: chat(hubbub, 80_000, 4, 16),
        "join storm, rooms of 10: ns per connect and join": lambda: join(hubbub, 20_000, 10),
    }
    print(f"core at {hubbub.__file__.rsplit('/hubbub/', 1)[0]}")
    for name, case in cases.items():
        runs = [case() for _ in range(args.repeat)]
        print(f"  {name}: median {statistics.median(runs):.0f} (min {min(runs):.0f})")


if __name__ == "__main__":
    main()

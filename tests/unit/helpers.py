"""A hub wired to a recording outbox and a hand-driven clock: no network, no loop."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from hubbub.auth.grants import Identity
from hubbub.core import Hub, Limits, Session
from hubbub.core.storage import PendingChat, StorageEvents
from hubbub.protocol.errors import CloseCode
from hubbub.protocol.messages import Ref
from hubbub.store import Notification, RoomState, StoredChat, assign_sequence


class RecordingOutbox:
    """Records what each session's client would get, as the adapter numbers it.

    ``sent`` holds the messages without their ``n`` (what most tests compare);
    ``wire`` holds what went out on a live link, ``n`` included, in order,
    replays too. A detached session (no link) is numbered, nothing goes out.
    """

    def __init__(self) -> None:
        self.sent: dict[str, list[dict[str, Any]]] = {}
        self.wire: dict[Any, list[dict[str, Any]]] = {}
        """link -> every message written to it, with its ``n``."""
        self.closed: dict[str, tuple[int, str]] = {}
        self.closed_links: dict[Any, int] = {}
        self.broadcasts = 0
        self.relay_runs = 0
        self.on_moved: Any = None

    def _out(self, session: Session, n: int | None, payload: bytes) -> None:
        message = json.loads(payload)
        if session.link is None:
            return
        self.sent.setdefault(session.session_id, []).append(message)
        self.wire.setdefault(session.link, []).append(message if n is None else {"n": n, **message})

    def send(self, session: Session, payload: bytes) -> None:
        self._out(session, session.number(payload), payload)

    def send_unnumbered(self, session: Session, payload: bytes) -> None:
        self._out(session, None, payload)

    def replay(self, session: Session, first_n: int, payloads: list[bytes]) -> None:
        for n, payload in enumerate(payloads, first_n):
            self._out(session, n, payload)

    def moved(self, link: Any, session: Session) -> None:
        if self.on_moved is not None:
            self.on_moved(link, session)

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        self.broadcasts += 1
        for session in sessions:
            if session.session_id != exclude:
                self._out(session, session.number(payload), payload)

    def relay_run(
        self, sessions: Iterable[Session], run: list[tuple[bytes | None, Session, bytes]]
    ) -> None:
        self.relay_runs += 1
        for session in sessions:
            for relay, sender, ack in run:
                payload = ack if session is sender else relay
                if payload is not None:
                    self._out(session, session.number(payload), payload)

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        self.closed[session.session_id] = (int(code), reason)
        self.closed_links[session.link] = int(code)


class MemoryStorage:
    """The hub's storage requests, answered from memory when ``answer()`` is called.

    Requests wait, as they would for a real store, so tests can look at the hub
    in between; ``fail_next`` makes the next answers failures.
    """

    def __init__(self) -> None:
        self.events: StorageEvents | None = None
        self.requests: list[tuple[str, tuple[Any, ...]]] = []
        self.messages: dict[str, list[StoredChat]] = {}
        self.last_seqs: dict[str, int] = {}
        self.seen: dict[str, dict[str, int]] = {}
        """room -> user id -> last seen (ms): the store's room_users."""
        self.now_ms = Harness.storage_now_ms
        self.capacity = 1_000_000
        self.fail_next = 0
        self._ids = itertools.count(1)
        self.notifications: list[Notification] = []
        self._notification_ids = itertools.count(1)

    def append_chat(self, pending: PendingChat) -> bool:
        queued = sum(1 for kind, _ in self.requests if kind == "append")
        if queued >= self.capacity:
            return False
        self.requests.append(("append", (pending,)))
        return True

    def load_room(self, room: str, recent: int) -> None:
        self.requests.append(("room", (room, recent)))

    def load_history(
        self, session_id: str, room: str, before_seq: int | None, limit: int, ref: Ref | None
    ) -> None:
        self.requests.append(("history", (session_id, room, before_seq, limit, ref)))

    def load_chat_gap(self, room: str, after_seq: int, before_seq: int) -> None:
        self.requests.append(("gap", (room, after_seq, before_seq)))

    def record_seen(self, room: str, user_id: str, ts_ms: int) -> None:
        seen = self.seen.setdefault(room, {})
        seen[user_id] = max(seen.get(user_id, ts_ms), ts_ms)

    def load_notifications(
        self, session_id: str, user_id: str, limit: int, ref: Ref | None, asked: bool
    ) -> None:
        self.requests.append(("unread", (session_id, user_id, limit, ref, asked)))

    def mark_notifications_read(
        self, session_id: str, user_id: str, ids: list[int], ref: Ref | None
    ) -> None:
        self.requests.append(("mark-read", (session_id, user_id, ids, ref)))

    def store_notification(self, user_id: str, payload: dict[str, Any], key: str | None) -> None:
        self.requests.append(("notify", (user_id, payload, key)))

    def add_notification(self, user_id: str, **payload: Any) -> Notification:
        """What the HTTP API does before ``Hub.notify``."""
        key = payload.pop("key", None)
        for earlier in self.notifications:
            if key is not None and (earlier.user_id, earlier.key) == (user_id, key):
                return replace(earlier, duplicate=True)
        notification = Notification(
            id=next(self._notification_ids),
            user_id=user_id,
            ts=self.now_ms,
            payload=payload,
            key=key,
        )
        self.notifications.append(notification)
        return notification

    def answer(self, kinds: frozenset[str] | None = None) -> int:
        """Answer every waiting request (and those they cause); return how many.
        ``kinds``: only the requests of these kinds (``room``, ``append``...); the
        others keep waiting, in order."""
        assert self.events is not None
        answered = 0
        while True:
            if kinds is None:
                requests, self.requests = self.requests, []
            else:
                requests = [r for r in self.requests if r[0] in kinds]
                self.requests = [r for r in self.requests if r[0] not in kinds]
            if not requests:
                break
            appends = [args[0] for kind, args in requests if kind == "append"]
            if appends:
                answered += 1
                if self._failing():
                    self.events.chat_failed(appends)
                else:
                    self.events.chat_stored(appends, self._append(appends))
            for kind, args in requests:
                if kind == "append":
                    continue
                answered += 1
                failing = self._failing()
                if kind == "room":
                    room, recent = args
                    if failing:
                        self.events.room_load_failed(room)
                    else:
                        stored = self.messages.get(room, [])
                        seen = sorted(self.seen.get(room, {}).items(), key=lambda item: -item[1])
                        state = RoomState(
                            self.last_seqs.get(room, 0), stored[-recent:] if recent else [], seen
                        )
                        self.events.room_loaded(room, state)
                elif kind == "history":
                    session_id, room, before, limit, ref = args
                    if failing:
                        self.events.store_failed(session_id, ref)
                    else:
                        older = [
                            m
                            for m in self.messages.get(room, [])
                            if before is None or m.seq < before
                        ]
                        self.events.history_loaded(session_id, room, older[-limit:], ref)
                elif kind == "gap":
                    room, after, before = args
                    if failing:
                        self.events.chat_gap_failed(room)
                    else:
                        gap = [m for m in self.messages.get(room, []) if after < m.seq < before]
                        self.events.chat_gap_loaded(room, before, gap)
                elif kind == "unread":
                    session_id, user_id, limit, ref, asked = args
                    if failing:
                        self.events.store_failed(session_id, ref)
                    else:
                        unread = [
                            n for n in self.notifications if n.user_id == user_id and not n.read
                        ]
                        self.events.notifications_loaded(
                            session_id, user_id, unread[:limit], len(unread) > limit, ref, asked
                        )
                elif kind == "notify":
                    user_id, payload, key = args
                    if not failing:
                        stored = self.add_notification(user_id, **payload, key=key)
                        if not stored.duplicate:
                            self.events.notify(stored)
                elif kind == "mark-read":
                    session_id, user_id, ids, ref = args
                    if failing:
                        self.events.store_failed(session_id, ref)
                    else:
                        marked = []
                        for index, n in enumerate(self.notifications):
                            if n.id in ids and n.user_id == user_id and not n.read:
                                self.notifications[index] = replace(n, read=True)
                                marked.append(n.id)
                        self.events.notifications_marked(session_id, user_id, marked, ref)
        return answered

    def _failing(self) -> bool:
        if self.fail_next:
            self.fail_next -= 1
            return True
        return False

    def _append(self, appends: list[PendingChat]) -> list[StoredChat]:
        drafts = [p.draft for p in appends]
        for draft in drafts:
            self.last_seqs.setdefault(draft.room, 0)
        existing = {
            (m.room, m.user_id, m.client_id): m
            for stored in self.messages.values()
            for m in stored
            if m.client_id is not None
        }
        results, rows = assign_sequence(
            drafts, self.last_seqs, existing, self.now_ms, lambda: f"m{next(self._ids)}"
        )
        for row in rows:
            self.messages.setdefault(row.room, []).append(row)
            self.record_seen(row.room, row.user_id, row.ts)
        return results


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A hub and named clients; ``take(name)`` pops what a client was sent."""

    storage_now_ms = 1_700_000_000_000
    """Where both the store's clock and the hub's wall clock start."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        history_on_join: int = 50,
        auto: bool = True,
        **hub_options: Any,
    ) -> None:
        self.outbox = RecordingOutbox()
        self.clock = Clock()
        self.wall_clock = Clock()
        self.wall_clock.now = self.storage_now_ms / 1000
        self.storage = MemoryStorage()
        self.auto = auto
        """Answer storage requests after each message sent (else call ``answer()``)."""
        counter = itertools.count(1)
        self.hub = Hub(
            self.outbox,
            storage=self.storage,
            limits=limits,
            history_on_join=history_on_join,
            clock=self.clock,
            new_session_id=lambda: f"s{next(counter)}",
            **{"wall_clock": self.wall_clock, **hub_options},
        )
        self.events = self.hub.backend_events
        """What the store, the broker and the media bridge call."""
        self.storage.events = self.events
        self.clients: dict[str, Session] = {}
        self.outbox.on_moved = self._moved

    def _moved(self, link: Any, session: Session) -> None:
        self.clients[link] = session

    def lose(self, name: str) -> None:
        """The client's connection is lost: no close frame."""
        self.hub.disconnect(self.clients[name], lost=True)

    def hang_up(self, name: str) -> None:
        """The client closes its connection with a close frame."""
        self.hub.disconnect(self.clients[name])

    def wire(self, name: str) -> list[dict[str, Any]]:
        """Pop what went out on this client's connection, ``n`` included."""
        return self.outbox.wire.pop(name, [])

    def answer(self, kinds: frozenset[str] | None = None) -> int:
        return self.storage.answer(kinds)

    def connect(self, name: str, identity: Identity | None = None) -> Session:
        session = self.hub.connect(link=name, identity=identity)
        self.clients[name] = session
        if self.auto:
            self.storage.answer()
        return session

    def send(self, name: str, message: dict[str, Any] | str, *, connect: bool = False) -> None:
        if connect and name not in self.clients:
            self.connect(name)
        text = message if isinstance(message, str) else json.dumps(message)
        self.hub.receive(self.clients[name], text)
        if self.auto:
            self.storage.answer()

    def take(self, name: str) -> list[dict[str, Any]]:
        return self.outbox.sent.pop(self.clients[name].session_id, [])

    def join_now(
        self, name: str, room: str, user_id: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Join, answering the storage requests even when ``auto`` is off."""
        auto, self.auto = self.auto, True
        try:
            return self.join(name, room, user_id, **extra)
        finally:
            self.auto = auto

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
        kinds = [reply["type"] for reply in replies]
        assert "room-joined" in kinds, replies
        at = kinds.index("room-joined")
        if replies[at + 1 :]:
            # What came after the join (unread notifications...) stays to be taken.
            self.outbox.sent[self.clients[name].session_id] = replies[at + 1 :]
        return replies[at]

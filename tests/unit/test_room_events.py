"""What the hub tells its room observer (the webhooks' source), with no network."""

from __future__ import annotations

from typing import Any

from hubbub.core import Session
from tests.unit.helpers import Harness


class RecordingObserver:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def room_started(self, room: str) -> None:
        self.events.append(("started", room))

    def room_finished(self, room: str) -> None:
        self.events.append(("finished", room))

    def participant_joined(self, room: str, session: Session) -> None:
        self.events.append(("joined", room, session.user_id))

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        self.events.append(("left", room, user_id))

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        self.events.append(("chat", room, user_id, message["message"]))


def harness() -> tuple[Harness, RecordingObserver]:
    h = Harness()
    observer = RecordingObserver()
    h.hub.rooms.observer = observer
    return h, observer


def test_a_room_starts_with_its_first_member_and_finishes_with_its_last() -> None:
    h, observer = harness()
    h.join("a", "r", "a")
    h.join("b", "r", "b")
    h.send("a", {"type": "chat", "message": "hi"})
    h.send("a", {"type": "leave-room"})
    h.hub.disconnect(h.clients["b"])
    assert observer.events == [
        ("started", "r"),
        ("joined", "r", "a"),
        ("joined", "r", "b"),
        ("chat", "r", "a", "hi"),
        ("left", "r", "a"),
        ("left", "r", "b"),
        ("finished", "r"),
    ]


def test_moving_rooms_and_ending_a_room_tell_every_leave() -> None:
    h, observer = harness()
    h.join("a", "one", "a")
    h.join("a", "two", "a")
    h.join("b", "two", "b")
    assert h.hub.end_room("two") == 2
    assert observer.events == [
        ("started", "one"),
        ("joined", "one", "a"),
        ("left", "one", "a"),
        ("finished", "one"),
        ("started", "two"),
        ("joined", "two", "a"),
        ("joined", "two", "b"),
        ("left", "two", "a"),
        ("left", "two", "b"),
        ("finished", "two"),
    ]


def test_a_refused_chat_is_not_told() -> None:
    h, observer = harness()
    h.join("a", "r", "a")
    h.send("a", {"type": "chat", "message": "x" * 100_000})
    assert [event[0] for event in observer.events] == ["started", "joined"]

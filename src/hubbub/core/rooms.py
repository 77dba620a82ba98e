"""Rooms and the registry that holds them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from hubbub.core.session import Session


class RoomObserver(Protocol):
    """Told what happens in rooms, as it happens (the webhooks listen here).

    Called synchronously from the hub; an observer with slow work to do queues it
    and returns at once.
    """

    def room_started(self, room: str) -> None:
        """The room's first member joined."""

    def room_finished(self, room: str) -> None:
        """The room's last member left."""

    def participant_joined(self, room: str, session: Session) -> None:
        """``session`` joined ``room`` (under ``session.user_id``)."""

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        """``session`` left ``room``, where it was ``user_id``."""

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        """``user_id`` sent a chat message to ``room``: the fields it was relayed with."""


class NoRoomObserver:
    """Nobody listening."""

    def room_started(self, room: str) -> None:
        pass

    def room_finished(self, room: str) -> None:
        pass

    def participant_joined(self, room: str, session: Session) -> None:
        pass

    def participant_left(self, room: str, session: Session, user_id: str) -> None:
        pass

    def chat_message(self, room: str, user_id: str, message: dict[str, Any]) -> None:
        pass


class Room:
    """Members of one room, in the order they joined.

    The join order gives the negotiation roles: of any two members, the one who
    joined first is the impolite peer.
    """

    __slots__ = ("members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, Session] = {}
        """user id -> session; a dict keeps insertion (join) order."""

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} members={len(self.members)}>"


class RoomRegistry:
    """The rooms that have members; a room exists while someone is in it."""

    __slots__ = ("_rooms", "observer")

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}
        self.observer: RoomObserver = NoRoomObserver()

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def get_or_create(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name)
        return room

    def add(self, room: Room, session: Session) -> None:
        if session.user_id is None:  # pragma: no cover - the hub sets it first
            raise ValueError("a session joins a room with a user id")
        started = not room.members
        room.members[session.user_id] = session
        session.room = room
        if started:
            self.observer.room_started(room.name)
        self.observer.participant_joined(room.name, session)

    def remove(self, session: Session) -> Room | None:
        """Take the session out of its room; drop the room once empty."""
        room = session.room
        if room is None or session.user_id is None:
            return None
        user_id = session.user_id
        left = room.members.get(user_id) is session
        if left:
            del room.members[user_id]
        session.room = None
        if left:
            self.observer.participant_left(room.name, session, user_id)
            if not room.members:
                self.observer.room_finished(room.name)
        if not room.members:
            self._rooms.pop(room.name, None)
        return room

    def __len__(self) -> int:
        return len(self._rooms)

    def __iter__(self) -> Iterator[Room]:
        return iter(self._rooms.values())

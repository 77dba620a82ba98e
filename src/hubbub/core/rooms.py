"""Rooms and the registry that holds them."""

from __future__ import annotations

from collections.abc import Iterator

from hubbub.core.session import Session


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

    __slots__ = ("_rooms",)

    def __init__(self) -> None:
        self._rooms: dict[str, Room] = {}

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
        room.members[session.user_id] = session
        session.room = room

    def remove(self, session: Session) -> Room | None:
        """Take the session out of its room; drop the room once empty."""
        room = session.room
        if room is None or session.user_id is None:
            return None
        if room.members.get(session.user_id) is session:
            del room.members[session.user_id]
        session.room = None
        if not room.members:
            self._rooms.pop(room.name, None)
        return room

    def __len__(self) -> int:
        return len(self._rooms)

    def __iter__(self) -> Iterator[Room]:
        return iter(self._rooms.values())

"""Users and their connections: how a user is reached whatever room it is in.

A user's personal stream is every connection addressed as that user. A
connection is addressed as the user its token names from the moment it shows one
(at connect or in ``join-room``); without a token, as the ``userId`` it last
joined a room with. It stays addressed so after it leaves the room, until it
joins as someone else or disconnects.
"""

from __future__ import annotations

from collections.abc import Iterator

from hubbub.core.session import Session


class UserRegistry:
    """user id -> that user's connected sessions, in the order they were addressed."""

    __slots__ = ("_users",)

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Session]] = {}

    def address(self, session: Session, user_id: str) -> bool:
        """Address ``session`` as ``user_id``; ``False`` if it was already."""
        current = session.addressed_as
        if current == user_id:
            return False
        if current is not None:
            self.forget(session)
        self._users.setdefault(user_id, {})[session.session_id] = session
        session.addressed_as = user_id
        return True

    def forget(self, session: Session) -> str | None:
        """The session is no longer addressed as anyone; returns who it was."""
        user_id = session.addressed_as
        if user_id is None:
            return None
        sessions = self._users.get(user_id)
        if sessions is not None:
            sessions.pop(session.session_id, None)
            if not sessions:
                del self._users[user_id]
        session.addressed_as = None
        return user_id

    def sessions(self, user_id: str) -> list[Session]:
        sessions = self._users.get(user_id)
        return list(sessions.values()) if sessions else []

    def connected(self, user_id: str) -> bool:
        return user_id in self._users

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[str]:
        return iter(self._users)

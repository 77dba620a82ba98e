"""What a participant may do: grants, the rooms it may enter, and who it is.

An :class:`Identity` is what the hub knows of a session once it is admitted: in
``open`` mode, whatever the client said; with a token, only what the token says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Grant(StrEnum):
    """One thing a token allows. ``docs/protocol.md#grants`` describes each."""

    JOIN = "join"
    """Join the rooms the token names."""
    CHAT = "chat"
    """Send ``chat`` to the room."""
    SIGNAL = "signal"
    """Send ``signal`` (WebRTC negotiation: audio, video, data) to members."""
    PUBLISH = "publish"
    """Send a camera and a microphone. A member without it watches and listens: in a
    room in SFU mode its ``media-publish`` is refused; in a mesh its client sends
    nothing (hubbub relays signals without reading them)."""
    SCREEN = "screen"
    """Share a screen. hubbub relays signals without reading them, so this one is
    announced to the other members (``grants``) for their clients to honour."""
    ADMIN = "admin"
    """Remove a participant from the room, end the room."""
    HIDDEN = "hidden"
    """Join without being announced: not in ``participants``, no ``user-joined``
    or ``user-left`` (bots, recorders)."""


PARTICIPANT_GRANTS: frozenset[Grant] = frozenset(
    {Grant.JOIN, Grant.CHAT, Grant.SIGNAL, Grant.PUBLISH, Grant.SCREEN}
)
"""What a token without a ``grants`` claim allows, and what ``open`` mode allows
everyone: everything a participant does, nothing that acts on others."""


@dataclass(frozen=True, slots=True)
class RoomScope:
    """The rooms a token may enter: exact names, and prefixes (``"team-*"``).

    ``"*"`` alone is every room.
    """

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, patterns: list[str]) -> RoomScope:
        names = frozenset(pattern for pattern in patterns if not pattern.endswith("*"))
        prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith("*"))
        return cls(names, prefixes)

    def allows(self, room: str) -> bool:
        return room in self.names or any(room.startswith(prefix) for prefix in self.prefixes)


ANY_ROOM = RoomScope(prefixes=("",))


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a session is and what it may do.

    ``user_id`` is ``None`` when the client picks its own (``open`` mode, no
    token); ``verified`` is true when a token vouched for all of it.
    """

    user_id: str | None
    rooms: RoomScope
    grants: frozenset[Grant]
    name: str | None = None
    verified: bool = False
    expires_at: float | None = None
    """The token's ``exp`` (unix seconds): a connection that showed its token at
    connect may join rooms on it until then, not after."""

    def may(self, grant: Grant) -> bool:
        return grant in self.grants


OPEN_IDENTITY = Identity(user_id=None, rooms=ANY_ROOM, grants=PARTICIPANT_GRANTS)
"""Everyone in ``open`` mode who shows no token."""

"""Where each room is on the media servers: on which one, as which room there, with
which secret; and which nodes use it. In a cluster every node's members of a room
must use the same room on the same media server, so the first node to need it
places it, and the others take that placement
(:class:`~hubbub.broker.redis.media.RedisPlacements`); the last node done with it
removes it. A placement whose last node died is an orphan, and a live node that
reaches its media server removes its room there. On a lone node
(:class:`LocalPlacements`) the bridge is the only one.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Placement:
    """A room's place on the media servers."""

    server: str
    """The media server's name (its URL)."""
    room_id: str
    """The room's id there (never shown to a client)."""
    secret: str
    """What removing the room or kicking a feed from it takes there."""


def new_placement(room: str, server: str) -> Placement:
    """A placement on ``server`` with a new id and secret."""
    return Placement(server, f"{room}~{secrets.token_hex(4)}", secrets.token_urlsafe(24))


class Placements(Protocol):
    """The rooms' placements, as every node of the server sees them."""

    async def place(self, room: str, proposed: Placement, up: Collection[str]) -> Placement:
        """Where ``room`` is: where it is already, if that media server is among
        those ``up`` for this node; else ``proposed``, in place of any other. This
        node uses it from then on. Raises ``ConnectionError`` (or another
        ``OSError``) when the placements cannot be asked."""

    async def release(self, room: str, placement: Placement) -> bool:
        """This node no longer uses ``placement``: whether no node does any more
        (the room there is then this node's to remove)."""

    async def orphans(self) -> list[tuple[str, Placement]]:
        """The placements that no node uses any more because the last node that did
        died (with nobody to remove their rooms on the media servers), by room."""

    async def take_orphan(self, room: str, placement: Placement) -> bool:
        """Whether the orphaned ``placement`` is this node's to remove (it goes from
        the placements): False if a node uses it again, or another took it."""


class LocalPlacements:
    """A lone node's placements: it alone uses each."""

    def __init__(self) -> None:
        self._rooms: dict[str, Placement] = {}

    async def place(self, room: str, proposed: Placement, up: Collection[str]) -> Placement:
        placed = self._rooms.get(room)
        if placed is None or placed.server not in up:
            placed = self._rooms[room] = proposed
        return placed

    async def release(self, room: str, placement: Placement) -> bool:
        if self._rooms.get(room) == placement:
            del self._rooms[room]
        return True

    async def orphans(self) -> list[tuple[str, Placement]]:
        return []  # no other node to die and leave its rooms behind

    async def take_orphan(self, room: str, placement: Placement) -> bool:
        return False

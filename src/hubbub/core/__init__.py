"""The sans-I/O core: sessions, rooms, routing and limits, with no sockets and no event loop."""

from hubbub.core.hub import Hub
from hubbub.core.limits import Limits
from hubbub.core.outbox import Outbox
from hubbub.core.rooms import Room, RoomRegistry
from hubbub.core.session import Session

__all__ = ["Hub", "Limits", "Outbox", "Room", "RoomRegistry", "Session"]

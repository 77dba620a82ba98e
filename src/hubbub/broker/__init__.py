"""How a message reaches the members of a room, one session, and one user.

The hub publishes; the broker delivers to the subscribers it knows, by calling back
the :class:`Delivery` it was given. The in-memory broker (the default) delivers
at once, in-process; a clustered broker carries the same calls between nodes.
"""

from __future__ import annotations

from typing import Protocol


class Delivery(Protocol):
    """What a broker calls back to hand a message to this node's clients."""

    def deliver_to_room(self, room: str, payload: bytes, exclude: str | None) -> None:
        """Send ``payload`` to every local member of ``room`` but session ``exclude``."""

    def deliver_to_session(self, session_id: str, payload: bytes) -> None:
        """Send ``payload`` to the local session ``session_id``, if it is here."""

    def deliver_to_user(self, user_id: str, payload: bytes, exclude: str | None) -> None:
        """Send ``payload`` to every local connection of ``user_id`` but session ``exclude``."""


class Broker(Protocol):
    """Publishes room and session messages to wherever their receivers are."""

    def attach(self, delivery: Delivery) -> None:
        """Start delivering to ``delivery`` (this node's hub)."""

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        """Every member of ``room``, wherever connected, but session ``exclude``."""

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        """One session, wherever connected."""

    def lag_seconds(self) -> float:
        """How far deliveries lag behind publications now (for the metrics)."""

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        """Every connection of ``user_id``, wherever connected, but session ``exclude``.

        Published once per user, not once per connection: a clustered broker
        carries one message to each node, and each node fans it out locally.
        """


__all__ = ["Broker", "Delivery"]

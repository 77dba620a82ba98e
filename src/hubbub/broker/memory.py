"""The in-memory broker: one process, delivery at once, no copies."""

from __future__ import annotations

from hubbub import randomness
from hubbub.broker import Delivery


class MemoryBroker:
    """Delivers every publication synchronously to the one attached hub."""

    __slots__ = ("_delivery",)

    def __init__(self) -> None:
        self._delivery: Delivery | None = None

    def attach(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def new_session_id(self) -> str:
        return randomness.token_urlsafe(12)

    def publish_to_room(self, room: str, payload: bytes, exclude: str | None = None) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_room(room, payload, exclude)

    def publish_to_session(self, session_id: str, payload: bytes) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_session(session_id, payload)

    def lag_seconds(self) -> float:
        return 0.0  # delivered inside publish

    def publish_to_user(self, user_id: str, payload: bytes, exclude: str | None = None) -> None:
        if self._delivery is not None:
            self._delivery.deliver_to_user(user_id, payload, exclude)

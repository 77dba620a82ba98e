"""The media bridge's two sides, as the core sees them: what the core asks of it
(:class:`MediaRequests`, which the server's bridge to the media servers implements),
how its answers come back (:class:`MediaEvents`, which
:class:`~hubbub.core.backend_events.BackendEvents` implements), and :class:`NoMedia`,
the bridge of a server without a media server."""

from __future__ import annotations

from typing import Any, Protocol

from hubbub.media import Jsep, SubscriberOffer
from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.messages import Ref


class MediaRequests(Protocol):
    """What the hub asks of the media bridge. Each call returns at once; the answer
    comes through :class:`MediaEvents` as each docstring says. ``connection`` is the
    client's name (``publisher``, ``main``...); the bridge makes the handle's."""

    @property
    def available(self) -> bool:
        """Whether the server has a media server at all (``--janus-url``)."""

    def publish(
        self, room: str, session_id: str, user_id: str, offer: Jsep, ref: Ref | None
    ) -> None:
        """Answered with ``media_answered`` or ``media_failed``; later ``feed_up``."""

    def configure(
        self,
        room: str,
        session_id: str,
        changes: dict[str, Any],
        offer: Jsep | None,
        ref: Ref | None,
    ) -> None:
        """``changes``: ``audio``, ``video``, ``bitrate``. Answered with
        ``media_answered`` when there is an ``offer``; ``media_failed`` on failure."""

    def subscribe(
        self, room: str, session_id: str, connection: str, feeds: list[str], ref: Ref | None
    ) -> None:
        """Answered with ``media_offered`` or ``media_failed``."""

    def unsubscribe(
        self, room: str, session_id: str, connection: str, feeds: list[str], ref: Ref | None
    ) -> None:
        """Answered with ``media_offered`` or ``media_failed``."""

    def answer(
        self, room: str, session_id: str, connection: str, answer: Jsep, ref: Ref | None
    ) -> None:
        """Answered with ``media_failed`` on failure only."""

    def select_layer(
        self,
        room: str,
        session_id: str,
        connection: str,
        feed: str,
        substream: int | None,
        temporal: int | None,
        ref: Ref | None,
    ) -> None:
        """Answered with ``media_failed`` on failure only."""

    def trickle(
        self, room: str, session_id: str, connection: str, candidate: dict[str, Any] | None
    ) -> None:
        """Nothing answers it."""

    def hang_up(self, room: str, session_id: str, connection: str) -> None:
        """Close one connection. Nothing answers it."""

    def kick(self, room: str, user_id: str, session_id: str, connections: list[str]) -> None:
        """A member is out: its feed and its connections go. Nothing answers it."""

    def close_room(self, room: str) -> None:
        """The room needs the media server no more. Nothing answers it."""


class MediaEvents(Protocol):
    """How the media bridge's answers come back to the core."""

    def media_answered(
        self, session_id: str, connection: str, answer: Jsep, ref: Ref | None
    ) -> None: ...

    def media_offered(
        self, session_id: str, connection: str, offer: SubscriberOffer, ref: Ref | None
    ) -> None: ...

    def media_failed(
        self, session_id: str, connection: str, code: ErrorCode, ref: Ref | None
    ) -> None: ...

    def feed_up(self, room: str, session_id: str) -> None: ...

    def media_closed(self, room: str, session_id: str, connection: str) -> None: ...

    def media_lost(self, rooms: list[str]) -> None: ...


class NoMedia:
    """No media server: every room is a mesh, and no request reaches this."""

    available = False

    def publish(self, *args: Any) -> None:  # pragma: no cover - never in SFU mode
        pass

    def configure(self, *args: Any) -> None:  # pragma: no cover
        pass

    def subscribe(self, *args: Any) -> None:  # pragma: no cover
        pass

    def unsubscribe(self, *args: Any) -> None:  # pragma: no cover
        pass

    def answer(self, *args: Any) -> None:  # pragma: no cover
        pass

    def select_layer(self, *args: Any) -> None:  # pragma: no cover
        pass

    def trickle(self, *args: Any) -> None:  # pragma: no cover
        pass

    def hang_up(self, *args: Any) -> None:  # pragma: no cover
        pass

    def kick(self, *args: Any) -> None:  # pragma: no cover
        pass

    def close_room(self, room: str) -> None:  # pragma: no cover
        pass

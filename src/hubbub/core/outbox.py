"""The one way out of the core: what it asks the server adapter to do.

The core never writes to a socket. It hands encoded messages to an outbox, which
the adapter implements by framing them and writing the same bytes to every
recipient's transport; tests implement it by recording.

Every message an outbox queues to a session is numbered by it, in the order
queued: ``n = session.number(payload)`` (which also keeps the payload for a
replay), and the client gets the payload with ``"n":N`` added as its first field,
``{"n":N,`` + ``payload[1:]``: the payload itself is encoded once, whatever the
number of recipients. A session with no link (detached: its connection was lost)
is numbered all the same; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from hubbub.core.session import Session
from hubbub.protocol.errors import CloseCode

RelayItem = tuple[bytes | None, Session | None, bytes]
"""One stored chat of a :meth:`Outbox.relay_run`: the relay (``None`` for a
duplicate), the sender (``None``: not among the sessions of the run), the sender's
ack."""


class Outbox(Protocol):
    def send(self, session: Session, payload: bytes) -> None:
        """Queue one message to one session."""

    def broadcast(self, sessions: Iterable[Session], payload: bytes, exclude: str | None) -> None:
        """Queue the same message to many sessions, skipping session id ``exclude``."""

    def relay_run(self, sessions: Iterable[Session], run: list[RelayItem]) -> None:
        """Stored chat for one room, in order, to every session in ``sessions``: for
        each item, its sender gets the ack and every other session the relay
        (``None``: nothing, the chat was a duplicate). The same as a
        :meth:`broadcast` and a :meth:`send` per item, in that order; one pass over
        the sessions for the whole run."""

    def close(self, session: Session, code: CloseCode, reason: str) -> None:
        """Close the session's connection; the adapter then reports the disconnect."""

    def send_unnumbered(self, session: Session, payload: bytes) -> None:
        """Queue a message about the connection itself (``resumed``): no ``n``, not kept."""

    def replay(self, session: Session, first_n: int, payloads: list[bytes]) -> None:
        """Queue messages sent before, again, numbered ``first_n``, ``first_n + 1``..."""

    def moved(self, link: object, session: Session) -> None:
        """The connection ``link`` now carries ``session`` (a resume): what comes in
        on it is the session's, and its disconnect is reported for it."""
